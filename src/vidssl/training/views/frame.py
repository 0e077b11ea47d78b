"""Two augmentations of one stored frame (the paper's "MoCo v2" row on video frames)."""
from __future__ import annotations

import numpy as np

INPUTS = ("chunks",)
IMAGE_KEYS = ("x_q", "x_k")
LABELS = False


def units(data) -> np.ndarray:
    """(store, row) of every stored frame."""
    return np.concatenate([np.stack([np.full(len(s), i), np.arange(len(s))], 1) for i, s in enumerate(data.stores)])


def frame_keys(data, unit) -> list[tuple[int, int]]:
    return [(int(unit[0]), int(unit[1]))]


def sample(data, unit, images: list[np.ndarray], rng: np.random.Generator) -> dict:
    views = {"x_q": data.augment(images[0], None, rng)[0], "x_k": data.augment(images[0], None, rng)[0]}
    return views | data.local_views(images, None, rng)
