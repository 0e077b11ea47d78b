"""The benchmark runner lives beside the benchmarks and finds them from any working directory."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd

from conftest import ROOT


def test_runner_finds_its_benchmarks_from_elsewhere(tmp_path):
    out = tmp_path / "bench.csv"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "invariance", "--quick",
                             "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = pd.read_csv(out)
    # the rows' targets are timings, which a loaded machine can miss: make bench judges them, this test the runner
    assert set(rows.benchmark) == {"bench_invariance"} and len(rows) == 5 and (rows.value > 0).all()
