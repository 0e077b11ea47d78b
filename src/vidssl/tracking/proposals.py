"""The proposals stage: selective search on the keyframes of a shard, deterministic across runs and worker counts.

The per-frame search and its seeding live in `vidssl.tracking.selective_search`, the only module the worker processes import.
"""
from __future__ import annotations

import collections
import contextlib
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
from tqdm import tqdm

from vidssl.contracts import BOX, CHUNK_KEY, PROPOSALS
from vidssl.core.errors import UserError
from vidssl.tracking.pairs import keyframes
from vidssl.tracking.selective_search import check_mode, init_worker, propose_chunk, single_opencv_thread
from vidssl.video.chunk_store import ChunkStore


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


def _in_workers(tasks: Iterable[tuple], threads: int, chunks_path: str) -> Iterator[tuple]:
    """propose_chunk of each task over `threads` spawned processes, in task order, at most 2 x `threads` in flight.

    A worker that dies (a segfault, an out-of-memory kill) breaks the pool, so the stage fails at once with one line
    instead of waiting forever for the dead worker's chunk.
    """
    # spawn: no inherited OpenCV state; the workers get each chunk's JPEG bytes and import only OpenCV and NumPy.
    context = multiprocessing.get_context("spawn")
    in_flight: collections.deque = collections.deque()
    # Workers start on demand during submissions, so the main script stays hidden for the pool's whole life.
    with main_script_hidden(), ProcessPoolExecutor(threads, mp_context=context, initializer=init_worker) as pool:
        try:
            for task in tasks:
                in_flight.append(pool.submit(propose_chunk, task))
                if len(in_flight) >= 2 * threads:
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()
        except BrokenProcessPool as error:
            raise UserError(f"proposals {chunks_path}: a selective-search worker process died (a crash, or a kill "
                            "such as out of memory); nothing was written; rerun, with more memory or fewer threads "
                            "if it recurs") from error


def propose_shard(chunks_path: str, out_path: str, *, mode: str, top_k: int, min_size: int, min_region: int,
                  keyframe_every: int, pairs: dict, threads: int = 1, log=None) -> dict:
    """Selective search on the keyframes of a shard's chunk container, one chunk per task over `threads` processes.

    The keyframes are `vidssl.tracking.pairs.keyframes` of each chunk for `keyframe_every` and the frame pairs `pairs` (k, mode):
    every frame when `keyframe_every` is 1. Writes the `vidssl.contracts.PROPOSALS` table to `out_path`, with the search and keyframe parameters in its metadata (the tracks stage reads them there); frames
    that fail or give no box are listed in the metadata's "skipped". The file does not depend on `threads`.
    """
    check_mode(mode)
    store = ChunkStore(chunks_path)
    pairs = dict(k=int(pairs["k"]), mode=pairs["mode"])
    search = dict(mode=mode, top_k=int(top_k), min_size=int(min_size), min_region=int(min_region))
    frames, chunks = store.index.frame.to_numpy(), store.chunks()
    keys = {n: np.asarray(keyframes(int(n), int(keyframe_every), **pairs)) for n in set(chunks.n_frames)}

    def tasks():  # read lazily: only the chunks in flight are held in memory
        for row in chunks.itertuples():
            rows = store.chunk_rows(row.video, row.chunk)
            rows = rows[np.isin(frames[rows], keys[row.n_frames])]
            yield row.video, int(row.chunk), frames[rows], store.jpeg_rows(rows), search

    progress = dict(total=len(chunks), desc=f"proposals {chunks_path}", unit="chunk")
    if threads <= 1:
        with single_opencv_thread():
            results = [propose_chunk(task) for task in tqdm(tasks(), **progress)]
    else:
        results = list(tqdm(_in_workers(tasks(), threads, chunks_path), **progress))

    parts, skipped = [], []
    for video, chunk, columns, chunk_skipped in results:
        skipped += chunk_skipped
        if not columns["frame"]:
            continue
        boxes = np.concatenate(columns["boxes"])
        part = pd.DataFrame({"video": video, "chunk": np.full(len(boxes), chunk, np.int32),
                             "frame": np.concatenate(columns["frame"]), "rank": np.concatenate(columns["rank"])})
        part[BOX] = boxes
        parts.append(part)
    table = pd.concat(parts, ignore_index=True) if parts else PROPOSALS.empty()
    for item in skipped:
        if log:
            log.warning("proposals skipped %s", item)
    searched = int(sum(len(keys[n]) for n in chunks.n_frames))
    summary = dict(frames=len(store), frames_searched=searched,
                   frames_with_proposals=int(table.groupby([*CHUNK_KEY, "frame"]).ngroups),
                   proposals=len(table), skipped=skipped,
                   params=dict(**search, keyframe_every=int(keyframe_every), pairs=pairs))
    PROPOSALS.write(table, out_path, metadata=summary)
    if log:
        log.info("proposals: %d boxes on %d of %d keyframes (%d frames)", len(table), summary["frames_with_proposals"],
                 searched, len(store))
    return summary

