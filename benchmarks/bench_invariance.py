"""Seconds per invariance measure on 100,000 x 2,048 float32 features in 10,000 sets (target: < 10 s each on 2 cores),
and the cost of 200 bootstrap resamples of every score (target: at most 20x one score_all without them).

    .venv/bin/python benchmarks/bench_invariance.py [--samples N] [--units D] [--sets S] [--classes C]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from vidssl.evaluation.invariance import MEASURES, invariance_score, score_all

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())["invariance"]
SETTINGS = {key: CONFIG[key] for key in ("firing_rate", "min_set_size")}  # the pipeline's

TARGET_SECONDS = 10.0
RESAMPLES = 200
TARGET_BOOTSTRAP_RATIO = 20.0


def synthetic_features(samples: int, units: int, sets: int, classes: int, seed: int = 0):
    """ReLU features with a per-set offset; set sizes vary (random cut points), each set one class."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, samples), sets - 1, replace=False))
    set_of = np.repeat(np.arange(sets), np.diff(np.concatenate([[0], cuts, [samples]])))
    labels = rng.integers(0, classes, sets)[set_of]
    features = rng.standard_normal((samples, units), dtype=np.float32)
    features += rng.standard_normal((sets, units), dtype=np.float32)[set_of]
    np.maximum(features, 0, out=features)
    return features, labels, set_of


def run(samples: int = 100_000, units: int = 2048, sets: int = 10_000, classes: int = 10) -> list[dict]:
    """Seconds per measure (top-K 10) and for score_all, one row each (name, value, unit, target, ok)."""
    features, labels, set_ids = synthetic_features(samples, units, sets, classes)
    where = f"{samples} x {units} float32, {sets} sets"
    rows = []
    for method in MEASURES:
        start = time.perf_counter()
        invariance_score(features, labels, set_ids, method=method, top_k=10, **SETTINGS)
        seconds = time.perf_counter() - start
        rows.append(dict(name=f"invariance {method} ({where})", value=round(seconds, 2), unit="s",
                         target=f"< {TARGET_SECONDS:.0f}", ok=seconds < TARGET_SECONDS))
    start = time.perf_counter()
    score_all(features, labels, set_ids, top_ks=(10, 25), bootstrap=0, seed=0, **SETTINGS)
    plain = time.perf_counter() - start
    rows.append(dict(name=f"score_all, 3 measures x 2 top_k ({where})", value=round(plain, 2), unit="s", target=None,
                     ok=True))
    start = time.perf_counter()
    score_all(features, labels, set_ids, top_ks=(10, 25), bootstrap=RESAMPLES, seed=0, **SETTINGS)
    ratio = (time.perf_counter() - start) / plain
    rows.append(dict(name=f"score_all with {RESAMPLES} bootstrap resamples / without ({where})", value=round(ratio, 2),
                     unit="x", target=f"<= {TARGET_BOOTSTRAP_RATIO:.0f}", ok=ratio <= TARGET_BOOTSTRAP_RATIO))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=2048)
    parser.add_argument("--sets", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    features, labels, sets = synthetic_features(args.samples, args.units, args.sets, args.classes)
    print(f"{args.samples} x {args.units} float32, {args.sets} sets, {args.classes} classes")
    for method in MEASURES:
        start = time.perf_counter()
        score = invariance_score(features, labels, sets, method=method, top_k=10, **SETTINGS)
        print(f"{method:>18}: {time.perf_counter() - start:6.2f} s  (score {score:.4f})")
    start = time.perf_counter()
    score_all(features, labels, sets, top_ks=(10, 25), bootstrap=0, seed=0, **SETTINGS)
    print(f"{'score_all':>18}: {time.perf_counter() - start:6.2f} s  (3 measures x 2 top_k)")
    start = time.perf_counter()
    score_all(features, labels, sets, top_ks=(10, 25), bootstrap=RESAMPLES, seed=0, **SETTINGS)
    print(f"{'+ bootstrap':>18}: {time.perf_counter() - start:6.2f} s  ({RESAMPLES} resamples)")


if __name__ == "__main__":
    main()
