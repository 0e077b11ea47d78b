"""Image files: the suffixes every stage reads as images, and the one reader they share."""
from __future__ import annotations

import os

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_image(path: str | os.PathLike, *, rgb: bool = False) -> np.ndarray | None:
    """The image at `path` as three-channel uint8, BGR (RGB when `rgb`); None when it is missing or does not decode."""
    path = str(path)
    if not os.path.exists(path):  # OpenCV would warn on stderr for every missing file
        return None
    return cv2.imread(path, cv2.IMREAD_COLOR_RGB if rgb else cv2.IMREAD_COLOR)
