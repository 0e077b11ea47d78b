"""Images: the suffixes every stage reads as images, the one reader they share, and the ImageNet channel statistics
every network input is normalised with (RGB, in [0, 1])."""
from __future__ import annotations

import os

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
