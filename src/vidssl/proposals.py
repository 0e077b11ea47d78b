"""Selective-search region proposals for every frame of a shard, deterministic across runs and worker counts.

OpenCV ranks selective-search regions by `level * rand()` with the C library's unseeded `rand()`, so the same image
gives the same boxes in a different order on every call. We seed `srand(0)` right before each `process()` call; with one
OpenCV thread per worker that makes the order, and so the kept top-k, a pure function of the image.
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import sys

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from vidssl.io import UserError, write_parquet
from vidssl.video import ChunkStore

MODES = ("fast", "quality")
BOX_COLUMNS = ["x1", "y1", "x2", "y2"]
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


def selective_search(bgr: np.ndarray, *, mode: str = "fast", top_k: int = 300, min_size: int = 4) -> np.ndarray:
    """The first `top_k` selective-search boxes at least `min_size` pixels wide and tall, as n x 4 float32 x1, y1, x2, y2."""
    if mode not in MODES:
        raise UserError(f"proposals.mode {mode!r} is not one of {', '.join(MODES)}")
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(as_bgr(bgr))
    if mode == "fast":
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
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


def _propose_chunk(store: ChunkStore, video: str, chunk: int, params: dict):
    """Proposals of every frame of one chunk: (rows as column arrays, skipped frames)."""
    columns = {name: [] for name in ("frame", "rank", "boxes")}
    skipped = []
    rows = store.index.index[(store.index.video == video) & (store.index.chunk == chunk)]
    for row in rows:
        frame = int(store.index.frame.iat[row])
        where = dict(video=video, chunk=int(chunk), frame=frame)
        image = store.read(row)
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


@contextlib.contextmanager
def main_script_hidden():
    """Spawned workers re-execute the parent's main script unless it is hidden while they start.

    A Snakemake `script:` has no `if __name__ == "__main__"` guard, so each worker would rerun the whole stage.
    The workers need only vidssl, which they import by name.
    """
    main = sys.modules["__main__"]
    saved_spec, saved_file = getattr(main, "__spec__", None), main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__spec__ = saved_spec
        if saved_file is not None:
            main.__file__ = saved_file


_WORKER_STORE: ChunkStore | None = None


def _init_worker(store: ChunkStore) -> None:
    global _WORKER_STORE
    _WORKER_STORE = store
    cv2.setNumThreads(1)


def _worker_chunk(task):
    video, chunk, params = task
    return _propose_chunk(_WORKER_STORE, video, chunk, params)


def propose_shard(chunks_path: str, out_path: str, *, mode: str = "fast", top_k: int = 300, min_size: int = 4,
                  threads: int = 1, log=None) -> dict:
    """Selective search on every frame of a shard's chunk container, one chunk per task over `threads` processes.

    Writes video, chunk, frame, rank, x1, y1, x2, y2 (one row group per chunk) to `out_path`; frames that fail or give no
    box are listed in the metadata's "skipped". The file does not depend on `threads`.
    """
    if mode not in MODES:
        raise UserError(f"proposals.mode {mode!r} is not one of {', '.join(MODES)}")
    store = ChunkStore(chunks_path)
    params = dict(mode=mode, top_k=int(top_k), min_size=int(min_size))
    tasks = [(r.video, int(r.chunk), params) for r in store.chunks().itertuples()]
    progress = dict(total=len(tasks), desc=f"proposals {chunks_path}", unit="chunk")
    if threads <= 1:
        with single_opencv_thread():
            results = [_propose_chunk(store, video, chunk, params) for video, chunk, params in tqdm(tasks, **progress)]
    else:
        # spawn: no inherited OpenCV/HDF5 state; each worker opens the container itself.
        with main_script_hidden():
            pool = multiprocessing.get_context("spawn").Pool(threads, initializer=_init_worker, initargs=(store,))
        with pool:
            results = list(tqdm(pool.imap(_worker_chunk, tasks, chunksize=1), **progress))

    parts, skipped = [], []
    for video, chunk, columns, chunk_skipped in results:
        skipped += chunk_skipped
        if not columns["frame"]:
            continue
        boxes = np.concatenate(columns["boxes"])
        part = pd.DataFrame({"video": video, "chunk": np.full(len(boxes), chunk, np.int32),
                             "frame": np.concatenate(columns["frame"]), "rank": np.concatenate(columns["rank"])})
        part[BOX_COLUMNS] = boxes
        parts.append(part)
    table = pd.concat(parts, ignore_index=True) if parts else empty_proposals()
    for item in skipped:
        if log:
            log.warning("proposals skipped %s", item)
    summary = dict(frames=len(store), frames_with_proposals=int(table.groupby(["video", "chunk", "frame"]).ngroups),
                   proposals=len(table), skipped=skipped, params=params)
    write_parquet(table, out_path, sort_by=["video", "chunk", "frame", "rank"], group_by=["video", "chunk"],
                  metadata=summary)
    if log:
        log.info("proposals: %d boxes on %d of %d frames", len(table), summary["frames_with_proposals"], len(store))
    return summary


def empty_proposals() -> pd.DataFrame:
    frame = pd.DataFrame({"video": pd.Series([], dtype=object), "chunk": np.zeros(0, np.int32),
                          "frame": np.zeros(0, np.int32), "rank": np.zeros(0, np.int32)})
    frame[BOX_COLUMNS] = np.zeros((0, 4), np.float32)
    return frame
