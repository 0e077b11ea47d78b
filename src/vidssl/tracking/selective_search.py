"""Selective search on stored frames, deterministic; the code the proposals stage's worker processes run.

OpenCV ranks selective-search regions by `level * rand()` with the C library's unseeded `rand()`, so the same image
gives the same boxes in a different order on every call. We seed `srand(0)` right before each `process()` call; with one
OpenCV thread per process that makes the order, and so the kept top-k, a pure function of the image.

This module imports only OpenCV and NumPy: each spawned worker imports it, and pandas/pyarrow would add ~0.3 s of CPU
per worker, a few percent of a default-world shard.
"""
from __future__ import annotations

import contextlib
import ctypes

import cv2
import numpy as np

from vidssl.core.errors import UserError
from vidssl.core.images import decode_jpeg

MODES = ("fast", "quality")
REFERENCE_SIDE = 128  # the long side at which `min_region` is given: the frames' stored size by default
_LIBC = ctypes.CDLL(None)  # the process's own symbols, which include the libc rand() that OpenCV calls


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A 3-channel BGR uint8 view of a grayscale, BGR or BGRA uint8 image (selective search needs exactly that)."""
    if image.dtype != np.uint8 or image.size == 0:
        raise UserError(f"selective search needs a non-empty uint8 image, got {image.dtype} of shape {image.shape}")
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise UserError(f"proposals.mode {mode!r} is not one of {', '.join(MODES)}")


def configured_search(bgr: np.ndarray, *, mode: str, min_region: int):
    """OpenCV's fast or quality selective search on `bgr`, except that its graph segmentations keep regions down to
    `min_region` pixels of a frame whose long side is 128 px, scaled with the frame's area: OpenCV's 100 merges away
    anything under 10 x 10 px, a common object size in frames stored at 128 px, which then has no proposal of its
    own. At 128 px, `min_region=100` is OpenCV's own set-up."""
    check_mode(mode)
    bgr = as_bgr(bgr)
    # Scaled with the area, the smallest region is the same part of the scene at any stored size; a fixed count would
    # multiply the regions to merge, and the cost, at larger sizes.
    smallest = max(1, round(min_region * (max(bgr.shape[:2]) / REFERENCE_SIDE) ** 2))
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(bgr)
    if mode == "fast":
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
    # OpenCV's own images and strategies; its graph segmentations again (k from 150 in steps of 150, sigma 0.8), but
    # with our smallest region
    search.clearGraphSegmentations()
    for k in range(150, 150 * (3 if mode == "fast" else 5) + 1, 150):
        search.addGraphSegmentation(cv2.ximgproc.segmentation.createGraphSegmentation(0.8, float(k), smallest))
    return search


def selective_search(bgr: np.ndarray, *, mode: str, top_k: int, min_size: int, min_region: int) -> np.ndarray:
    """The first `top_k` boxes of `configured_search` at least `min_size` pixels wide and tall, as n x 4 float32
    x1, y1, x2, y2 (with `min_region=100`, OpenCV's own boxes in its order)."""
    search = configured_search(bgr, mode=mode, min_region=min_region)
    _LIBC.srand(0)
    rects = search.process()
    if len(rects) == 0:
        return np.zeros((0, 4), np.float32)
    rects = rects[(rects[:, 2] >= min_size) & (rects[:, 3] >= min_size)][:top_k].astype(np.float32)
    rects[:, 2:] += rects[:, :2]
    return rects


@contextlib.contextmanager
def single_opencv_thread():
    """One OpenCV thread, restored afterwards: parallelism comes from processes, one frame each at a time."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def init_worker() -> None:
    cv2.setNumThreads(1)


def propose_chunk(task: tuple) -> tuple:
    """(video, chunk, frame numbers, stored JPEG bytes, params) -> (video, chunk, column arrays, skipped frames)."""
    video, chunk, frames, jpegs, params = task
    columns = {name: [] for name in ("frame", "rank", "boxes")}
    skipped = []
    for frame, jpeg in zip(frames, jpegs):
        where = dict(video=video, chunk=int(chunk), frame=int(frame))
        image = decode_jpeg(jpeg)
        if image is None:
            skipped.append({**where, "reason": "stored JPEG does not decode"})
            continue
        try:
            boxes = selective_search(image, **params)
        except cv2.error as error:
            skipped.append({**where, "reason": f"OpenCV error: {error.err or error}".strip()})
            continue
        if len(boxes) == 0:
            skipped.append({**where, "reason": "no proposals"})
            continue
        columns["frame"].append(np.full(len(boxes), frame, np.int32))
        columns["rank"].append(np.arange(len(boxes), dtype=np.int32))
        columns["boxes"].append(boxes)
    return video, int(chunk), columns, skipped
