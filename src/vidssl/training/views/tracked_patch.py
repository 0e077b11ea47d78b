"""A frame pair with one of its tracks as a box in each view (the Region Tracker): the objective sees the frames and,
pooled inside the boxes, the patches."""
from __future__ import annotations

import numpy as np

from vidssl.training.views import frame_pair

INPUTS = ("chunks", "frame_pairs", "track_pairs")
IMAGE_KEYS = ("x_q", "x_k")
LABELS = False
units, frame_keys = frame_pair.units, frame_pair.frame_keys


def sample(data, unit, images: list[np.ndarray], rng: np.random.Generator) -> dict:
    """A view of each frame, and one of the pair's tracks drawn at random as a box in each view; a pair without tracks,
    or whose box leaves a crop (see vidssl.training.augment), uses the whole crops as its patch pair. Local crops
    (multi-crop objectives) are drawn around the tracked box in each frame: the object the track follows."""
    image_a, image_b = images
    candidates = data.tracks.get((unit[0], int(unit[1]), int(unit[2]), int(unit[3])))
    box_a = box_b = None
    if candidates is not None:
        box_a, box_b = np.split(candidates[rng.integers(len(candidates))], 2)
    x_q, boxes_q, kept_q = data.augment(image_a, box_a, rng)
    x_k, boxes_k, kept_k = data.augment(image_b, box_b, rng)
    tracked = candidates is not None and kept_q and kept_k
    if not tracked:  # whole crops: the patch pair is the frame pair seen through the box pooling
        boxes_q = boxes_k = x_q.new_tensor([0.0, 0.0, x_q.shape[-1], x_q.shape[-2]])
    views = {"x_q": x_q, "x_k": x_k, "boxes_q": boxes_q, "boxes_k": boxes_k, "tracked": tracked}
    return views | data.local_views(images, None if candidates is None else [box_a, box_b], rng)
