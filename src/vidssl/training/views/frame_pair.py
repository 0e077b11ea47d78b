"""One augmentation of each frame of a pair k frames apart (Frame Temporal Invariance)."""
from __future__ import annotations

import numpy as np

from vidssl.contracts import PAIR_KEY
from vidssl.core.errors import UserError

INPUTS = ("chunks", "frame_pairs")
IMAGE_KEYS = ("x_q", "x_k")
LABELS = False


def units(data) -> np.ndarray:
    """(video, chunk, frame_a, frame_b) of every frame pair; each pair's chunk must be stored."""
    units = data.frame_pairs[PAIR_KEY].to_numpy()
    missing = {(v, int(c)) for v, c, _, _ in units} - set(data.store_of)
    if missing:
        raise UserError(f"frame pairs name {len(missing)} chunks absent from the chunk containers, "
                        f"e.g. {sorted(missing)[:3]}")
    return units


def frame_keys(data, unit) -> list[tuple[int, int]]:
    video, chunk, frame_a, frame_b = unit
    store = data.store_of[(video, int(chunk))]
    return [(store, data.stores[store].row(video, chunk, frame)) for frame in (frame_a, frame_b)]


def sample(data, unit, images: list[np.ndarray], rng: np.random.Generator) -> dict:
    views = {"x_q": data.augment(images[0], None, rng)[0], "x_k": data.augment(images[1], None, rng)[0]}
    return views | data.local_views(images, None, rng)
