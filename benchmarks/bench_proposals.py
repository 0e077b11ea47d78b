"""Selective-search throughput: frames/s through `propose_shard` (1 and 2 worker processes) against bare
`process()` calls on the same stored frames in one process; the pipeline should keep >= 0.9 of bare speed per core.

Per-core speed is measured in CPU seconds (this process and its workers) per frame, so other jobs on a shared machine
do not skew it; wall-clock frames/s are reported beside it. The default input is the size of one shard of the default
world (16 chunks of 60 frames at 128 px). As a reference for what the hardware allows, bare `process()` is also timed
in two processes at once: when both cores are busy, each core gets through fewer frames per CPU second.

    python benchmarks/bench_proposals.py [--videos N] [--max-side PX]
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import yaml

from vidssl import synthetic
from vidssl.tracking.proposals import propose_shard
from vidssl.tracking.selective_search import configured_search, single_opencv_thread
from vidssl.video.chunk_store import ChunkStore
from vidssl.video.chunks import extract_chunks
from vidssl.video.manifest import build_manifest, list_videos

TARGET = 0.9
# the embedded default's selective search, on every frame
SEARCH = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())["proposals"]


def synthetic_container(root: Path, *, videos: int, max_side: int, length: int = 60) -> str:
    """One 60-frame chunk per synthetic 4:3 video (1-3 moving objects) a little larger than `max_side`, stored at it."""
    width = max_side * 5 // 4  # 160x120 for 128 px, the default config's videos
    synthetic.generate_videos(root / "videos", classes=["car", "person", "bird"], n_videos=videos, n_frames=length,
                              size=(width, width * 3 // 4))
    manifest = build_manifest(list_videos("folder", str(root / "videos")), shards=1, chunk_len=length)
    out = str(root / "chunks.h5")
    extract_chunks(manifest, out, shard=0, per_video=1, length=length, max_side=max_side, jpeg_quality=90)
    return out


def bare_frames_per_s(images) -> float:
    """The floor: OpenCV's selective search alone (set up as the stage sets it up), one thread, no decoding, seeding
    or bookkeeping."""
    with single_opencv_thread():
        start = time.process_time()
        for image in images:
            configured_search(image, mode=SEARCH["mode"], min_region=SEARCH["min_region"]).process()
        return len(images) / (time.process_time() - start)


def _bare_in_worker(path: str, rows: list[int]) -> float:
    store = ChunkStore(path)
    return bare_frames_per_s([store.read(r) for r in rows])


def bare_frames_per_s_both_cores(path: str, n_frames: int) -> float:
    """Bare frames per CPU second of each of two processes running at the same time (each on half the frames)."""
    halves = [list(range(0, n_frames, 2)), list(range(1, n_frames, 2))]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        rates = pool.starmap(_bare_in_worker, [(path, half) for half in halves])
    return sum(rates) / 2


def cpu_seconds() -> float:
    """CPU time of this process and of its finished workers."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def run(videos: int = 16, max_side: int = 128) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        chunks = synthetic_container(Path(tmp), videos=videos, max_side=max_side)
        store = ChunkStore(chunks)
        images = [store.read(r) for r in range(len(store))]
        staged = {}
        bare_runs = [bare_frames_per_s(images)]
        for threads in (1, 2):  # bare runs before and after: this machine's speed drifts by a few % over minutes
            wall, cpu = time.perf_counter(), cpu_seconds()
            propose_shard(chunks, Path(tmp) / f"proposals{threads}.parquet", **SEARCH, keyframe_every=1,
                          pairs=dict(k=40, mode="strided"), threads=threads)
            staged[threads] = (time.perf_counter() - wall, cpu_seconds() - cpu)
        bare_runs.append(bare_frames_per_s(images))
        bare = sum(bare_runs) / len(bare_runs)
        rows = [dict(name=f"bare process() frames per CPU second ({len(store)} frames at {max_side} px, fast mode, "
                          f"mean of a run before and after the stage)", value=round(bare, 2), unit="frames/s",
                     target=None, ok=True)]
        both = bare_frames_per_s_both_cores(chunks, len(store))
        rows.append(dict(name="hardware reference: bare process() per core with both cores busy / one core busy",
                         value=round(both / bare, 3), unit="ratio", target=None, ok=True))
        for threads, (wall, cpu) in staged.items():
            ratio = len(store) / cpu / bare
            rows += [dict(name=f"propose_shard wall-clock frames/s, threads={threads}", value=round(len(store) / wall, 2),
                          unit="frames/s", target=None, ok=True),
                     dict(name=f"propose_shard per core / bare, threads={threads}", value=round(ratio, 3),
                          unit="ratio", target=f">= {TARGET}", ok=bool(ratio >= TARGET))]
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--max-side", type=int, default=128)
    args = parser.parse_args()
    rows = run(args.videos, args.max_side)
    for row in rows:
        print(f"{row['name']}: {row['value']} {row['unit']}" + (f" (target {row['target']})" if row["target"] else ""))
