"""How many of Region Tracker's patch pairs lie on an object? `python benchmarks/track_purity.py [RUN_DIR]`

Reads a finished synthetic run's track pairs (`results/pairs/*.tracks.parquet`, the patches `region_tracker` trains on)
and the world's true object boxes (`resources/synthetic/videos/boxes.parquet`), and prints the share of pairs whose
first box overlaps a true box at IoU >= 0.5 (on an object) or < 0.1 (background), overall and by quartile of the
track's link score. docs/results.md ("why Region Tracker does not beat MoCo v2") has the figures.
"""
from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from vidssl.contracts import BOX, BOX_A, MANIFEST, SYNTHETIC_BOXES, TRACK_PAIRS
from vidssl.tracking.tracks import box_iou
from vidssl.video.chunk_store import ChunkStore
from vidssl.video.chunks import stored_size


def source_frames(chunk_paths: list[Path]) -> dict[tuple[str, int, int], int]:
    """(video, chunk, frame in chunk) -> the frame's index in its video, from the chunk stores."""
    return {(video, int(chunk), int(frame)): int(source) for path in chunk_paths
            for video, chunk, frame, source in ChunkStore(path).index.itertuples(index=False)}


def best_overlaps(pairs: pd.DataFrame, truth: pd.DataFrame, scale: float, sources: dict) -> np.ndarray:
    """Per pair, the largest IoU of its first box with a true object box in the same frame (0 where none)."""
    boxes = {key: group[BOX].to_numpy() * scale for key, group in truth.groupby(["video", "frame"])}
    best = np.zeros(len(pairs))
    firsts = pairs[BOX_A].to_numpy()
    for i, key in enumerate(pairs[["video", "chunk", "frame_a"]].itertuples(index=False)):
        true = boxes.get((key.video, sources[(key.video, int(key.chunk), int(key.frame_a))]))
        if true is not None:
            best[i] = box_iou(firsts[i:i + 1], true).max()
    return best


def main(run_dir: Path) -> None:
    results = run_dir / "results"
    pairs = pd.concat([TRACK_PAIRS.read(p) for p in sorted((results / "pairs").glob("*.tracks.parquet"))])
    truth = SYNTHETIC_BOXES.read(run_dir / "resources" / "synthetic" / "videos" / "boxes.parquet")
    chunk_paths = sorted((results / "chunks").glob("*.h5"))
    with h5py.File(chunk_paths[0], "r") as store:
        max_side = int(store.attrs["max_side"])
    width, height = (int(v) for v in MANIFEST.read(results / "manifest.parquet")[["width", "height"]].iloc[0])
    scale = stored_size(width, height, max_side)[0] / width  # the chunk stage's resize of every frame
    best = best_overlaps(pairs, truth, scale, source_frames(chunk_paths))
    print(f"{len(pairs)} patch pairs: {np.mean(best >= 0.5):.3f} on an object (IoU >= 0.5), "
          f"{np.mean(best < 0.1):.3f} background (IoU < 0.1)")
    scores = pairs.score.to_numpy()
    quartile = pd.qcut(scores, 4, labels=False)
    for q in range(4):
        chosen = quartile == q
        print(f"link-score quartile {q + 1} (mean score {scores[chosen].mean():.3f}): "
              f"{np.mean(best[chosen] >= 0.5):.3f} on an object, {np.mean(best[chosen] < 0.1):.3f} background")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
