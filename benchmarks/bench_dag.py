"""TrackingNet-scale DAG: seconds to list 30,132 videos and to dry-run `results/table5.csv` over them (target < 60 s each).

A fabricated TrackingNet layout (TRAIN_0 ... TRAIN_11, 2,511 videos each, one empty 0.jpg per video folder) in a temp
dir: the manifest listing (`fast=True`) only reads names, and the dry run only builds the DAG. The real manifest rule
probes every video's frames and is not timed here.

    .venv/bin/python benchmarks/bench_dag.py [--shards 64] [--videos-per-split 2511] [--keep DIR]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vidssl.video.manifest import build_manifest, list_videos

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SPLITS = [f"TRAIN_{i}" for i in range(12)]
TARGET_SECONDS = 60.0


def fabricate_trackingnet(root: Path, videos_per_split: int) -> int:
    """TrackingNet's folder layout with one empty frame per video; returns the number of videos."""
    for split in SPLITS:
        frames = root / split / "frames"
        for index in range(videos_per_split):
            video = frames / f"{split.lower()}_{index:05d}"
            video.mkdir(parents=True)
            (video / "0.jpg").touch()
        (root / split / "anno").mkdir()
    return len(SPLITS) * videos_per_split


def overlay(root: Path, shards: int) -> str:
    """Real-data layout for videos; the synthetic world stays for labels, evaluation and Pascal-Part.
    `supervised` needs a real labelled set outside the synthetic world, so it is left out."""
    return (f"videos: {{source: trackingnet, path: {root}, trackingnet_splits: [{', '.join(SPLITS)}], "
            f"shards: {shards}}}\n"
            "train: {methods: [moco, fti, region_tracker]}\n"
            "table5: {methods: [random, moco, fti, region_tracker]}\n")


def time_listing(root: Path, shards: int) -> tuple[float, int]:
    start = time.perf_counter()
    entries = list_videos("trackingnet", str(root), splits=SPLITS, fast=True)
    manifest = build_manifest(entries, shards=shards, chunk_len=60)
    return time.perf_counter() - start, len(manifest)


def time_dry_run(root: Path, workdir: Path, shards: int) -> tuple[float, int]:
    (workdir / "overlay.yaml").write_text(overlay(root, shards))
    # the target first: --configfile and --quiet take several values and would swallow it
    command = [str(SNAKEMAKE), "results/table5.csv", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "-n", "--configfile", str(ROOT / "config" / "config.yaml"), str(workdir / "overlay.yaml"),
               "--quiet", "rules"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"snakemake -n failed:\n{result.stderr[-3000:]}")
    total = re.search(r"^total\s+(\d+)$", result.stdout + result.stderr, re.M)
    return seconds, int(total[1]) if total else -1


def run(shards: int = 64, videos_per_split: int = 2511, keep: Path | None = None) -> list[dict]:
    """Fabricate the layout, time both steps; one dict per measurement (name, value, unit, target, ok)."""
    with tempfile.TemporaryDirectory(prefix="bench_dag_") as scratch:
        base = keep or Path(scratch)
        root, workdir = base / "TrackingNet", base / "work"
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        videos = fabricate_trackingnet(root, videos_per_split)
        fabricate_seconds = time.perf_counter() - start
        listing_seconds, rows = time_listing(root, shards)
        if rows != videos:
            raise RuntimeError(f"the manifest has {rows} rows for {videos} videos")
        dry_run_seconds, jobs = time_dry_run(root, workdir, shards)
    return [
        dict(name="videos", value=videos, unit="videos", target=None, ok=True),
        dict(name="fabricate layout", value=round(fabricate_seconds, 2), unit="s", target=None, ok=True),
        dict(name="manifest listing (list_videos fast + build_manifest)", value=round(listing_seconds, 2), unit="s",
             target=TARGET_SECONDS, ok=listing_seconds < TARGET_SECONDS),
        dict(name=f"snakemake -n results/table5.csv ({shards} shards)", value=round(dry_run_seconds, 2), unit="s",
             target=TARGET_SECONDS, ok=dry_run_seconds < TARGET_SECONDS),
        dict(name="jobs in the DAG", value=jobs, unit="jobs", target=None, ok=jobs > 0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--videos-per-split", type=int, default=2511)
    parser.add_argument("--keep", type=Path, help="build the layout here and keep it (default: a temp dir)")
    args = parser.parse_args()
    rows = run(args.shards, args.videos_per_split, args.keep)
    width = max(len(row["name"]) for row in rows)
    print(f"{'measure':<{width}}  {'value':>9} {'unit':<6} {'target':>7}  ok")
    for row in rows:
        target = f"< {row['target']:.0f}" if row["target"] else ""
        print(f"{row['name']:<{width}}  {row['value']:>9} {row['unit']:<6} {target:>7}  {'yes' if row['ok'] else 'NO'}")
    sys.exit(0 if all(row["ok"] for row in rows) else 1)


if __name__ == "__main__":
    main()
