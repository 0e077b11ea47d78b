"""One command for every benchmark: `python benchmarks/run.py [--only NAME] [--quick]` (also `make bench`).

Runs `run()` of each `bench_*.py` beside this file (rows of name, value, unit, target, ok), prints one table and writes
results/bench.csv with the machine it ran on. A benchmark that raises is reported as a failed row; the others still run.
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import pandas as pd

from vidssl.core.io import write_csv

BENCHMARKS = Path(__file__).resolve().parent
COLUMNS = ["benchmark", "name", "value", "unit", "target", "ok", "machine"]
# --quick: the same measurements on inputs small enough that the whole set runs in about two minutes on 2 cores.
QUICK = {
    "bench_augment": dict(samples=64, batch=16, repeats=1),
    "bench_dag": dict(shards=4, videos_per_split=50),
    "bench_features": dict(images=256),
    "bench_invariance": dict(samples=20_000, units=256, sets=2_000),
    "bench_objectives": dict(steps=1, size=32, batch=8),
    "bench_proposals": dict(videos=1, max_side=64),
    "bench_tracks": dict(cases=(("synthetic", 128),), scenes=("moving and scaling",), chunks_per_scene=1),
    "bench_train": dict(steps=3, workers=0),
}


def machine() -> str:
    """CPU model, usable cores and the torch device, e.g. "Intel Xeon ... x 2 cores, cuda (NVIDIA H100 80GB HBM3)"."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import torch

    device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    return f"{model} x {cores} cores, {device}"


def available() -> list[str]:
    return sorted(path.stem for path in BENCHMARKS.glob("bench_*.py"))


def run_one(name: str, quick: bool) -> list[dict]:
    try:
        # A sibling module when run as a script, benchmarks.<name> under `python -m benchmarks.run`.
        module = importlib.import_module(f"{__package__}.{name}" if __package__ else name)
        rows = module.run(**(QUICK.get(name, {}) if quick else {}))
    except Exception as error:  # one broken benchmark must not hide the others' numbers
        traceback.print_exc()
        return [dict(name=f"failed: {type(error).__name__}: {error}".splitlines()[0], value=None, unit="", target=None,
                     ok=False)]
    return rows


def print_table(frame: pd.DataFrame) -> None:
    width = min(100, max(len(n) for n in frame.name))
    print(f"{'benchmark':<17} {'measure':<{width}} {'value':>10} {'unit':<9} {'target':<8} ok")
    for row in frame.itertuples():
        value = "" if row.value is None or row.value != row.value else row.value
        print(f"{row.benchmark:<17} {row.name[:width]:<{width}} {value!s:>10} {row.unit:<9} {row.target:<8} "
              f"{'yes' if row.ok else 'NO'}")


def main(argv: list[str] | None = None) -> None:
    names = available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(n.removeprefix('bench_') for n in names)}")
    parser.add_argument("--quick", action="store_true", help="small inputs: checks that every benchmark runs")
    parser.add_argument("--out", default="results/bench.csv", help="CSV to write (default: results/bench.csv)")
    args = parser.parse_args(argv)
    if not names:
        sys.exit(f"error: no bench_*.py in {BENCHMARKS}")
    chosen = names
    if args.only:
        wanted = {f"bench_{n.removeprefix('bench_')}" for n in args.only}
        unknown = sorted(wanted - set(names))
        if unknown:
            parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(names)}")
        chosen = [n for n in names if n in wanted]

    where = machine()
    print(f"machine: {where}", file=sys.stderr)
    rows = []
    for name in chosen:
        start = time.perf_counter()
        print(f"running {name}{' (quick)' if args.quick else ''} ...", file=sys.stderr)
        rows += [{"benchmark": name, **row} for row in run_one(name, args.quick)]
        print(f"{name} took {time.perf_counter() - start:.0f} s", file=sys.stderr)
    frame = pd.DataFrame(rows, columns=COLUMNS[1:-1], dtype=object).assign(benchmark=[r["benchmark"] for r in rows],
                                                                            machine=where)
    frame["target"] = frame.target.map(lambda t: "" if t is None else (f"< {t:g}" if isinstance(t, (int, float)) else str(t)))
    frame["ok"] = frame.ok.astype(bool)
    write_csv(frame[COLUMNS], args.out)
    print_table(frame)
    missed = int((~frame.ok).sum())
    print(f"wrote {args.out}; {missed} of {len(frame)} rows below target or failed" if missed else f"wrote {args.out}")
    sys.exit(1 if frame.name.str.startswith("failed: ").any() else 0)


if __name__ == "__main__":
    main()
