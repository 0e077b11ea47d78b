"""One augmentation of a labelled image and its class (the supervised baseline)."""
from __future__ import annotations

import numpy as np

INPUTS = ()
IMAGE_KEYS = ("x",)
LABELS = True


def units(data) -> np.ndarray:
    return np.arange(len(data.labelled))


def frame_keys(data, unit) -> list[tuple[int, int]]:
    return []


def sample(data, unit, images: list[np.ndarray], rng: np.random.Generator) -> dict:
    image, label = data.labelled_image(int(unit))
    return {"x": data.augment(image, None, rng)[0], "y": label}
