"""Images: the suffixes every stage reads as images, the one reader they share, the one decoder of stored JPEG frames,
and the ImageNet channel statistics every network input is normalised with (RGB, in [0, 1])."""
from __future__ import annotations

import os

import cv2
import numpy as np
import simplejpeg

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


def decode_jpeg(blob: np.ndarray, *, rgb: bool = False, out: np.ndarray | None = None) -> np.ndarray | None:
    """A stored JPEG's three-channel uint8 pixels, BGR (RGB when `rgb`), decoded into `out` when given (a C-contiguous
    H x W x 3 uint8 array of the image's size); None when it does not decode.

    libjpeg-turbo through simplejpeg gives OpenCV's pixels exactly (every subsampling, progressive, greyscale; tested)
    in 12-17% less CPU (benchmarks/bench_augment.py), and can write straight into a batch's memory; OpenCV decodes what
    it refuses.
    """
    try:
        return simplejpeg.decode_jpeg(blob, "RGB" if rgb else "BGR", buffer=out)
    except ValueError:
        image = cv2.imdecode(blob, cv2.IMREAD_COLOR_RGB if rgb else cv2.IMREAD_COLOR) if blob.size else None
    if image is not None and out is not None:
        out[...] = image
    return image


def jpeg_shape(blob: np.ndarray) -> tuple[int, int] | None:
    """(height, width) from a JPEG's header; None when it cannot be read."""
    try:
        return simplejpeg.decode_jpeg_header(blob)[:2]
    except ValueError:
        return None
