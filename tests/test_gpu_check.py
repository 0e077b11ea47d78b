"""`make gpu-check` (benchmarks/gpu_check.py) at its CPU size, so that the GPU check keeps working between GPU runs."""
from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
from conftest import ROOT


def test_the_gpu_check_runs_every_check_at_its_cpu_size(tmp_path):
    out = tmp_path / "gpu_check.csv"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}  # the CPU size, even on a GPU machine
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = pd.read_csv(out)
    assert set(rows.check) == {"train step", "train loop", "augment", "features", "roi_align", "ddp"} and rows.ok.all()
    measured = rows[rows.unit.isin(["images/s", "ms"])]
    waiting = rows[rows.unit == "share"].value.astype(float)
    assert len(waiting) == 2 and ((waiting >= 0) & (waiting <= 1)).all()  # augment_on workers and device
    assert (measured.value.astype(float) > 0).all() and len(rows[rows.check == "ddp"]) == 2  # two CPU processes ran
