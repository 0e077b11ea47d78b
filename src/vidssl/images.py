"""Image files: the suffixes every stage reads as images, and the one reader they share."""
from __future__ import annotations

import os

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_image(path: str | os.PathLike, *, rgb: bool = False) -> np.ndarray | None:
    """The image at `path` as three-channel uint8, BGR (RGB when `rgb`), EXIF orientation applied; None when it is
    missing or does not decode.

    Python reads the bytes and OpenCV decodes them in memory: OpenCV's own file reader crashes on a name that is not
    valid UTF-8, and warns on stderr for every missing file.
    """
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR_RGB if rgb else cv2.IMREAD_COLOR) if data.size else None
