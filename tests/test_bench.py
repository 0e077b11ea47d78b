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


def test_background_diagnostic_draws_the_labelled_set_and_its_objects_on_grey(tmp_path):
    """diagnose_knn_background.py must score the very images `synth_labelled` writes (up to JPEG), and the grey copy
    must hold the same object on a flat background."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import diagnose_knn_background as diagnose

    from vidssl import synthetic
    from vidssl.training.samples import read_labelled_image

    world = {"seed": 3, "classes": ["car", "bird"], "labelled_per_class": 2, "image_size": 48, "materials": "class"}
    synthetic.generate_labelled(tmp_path, classes=world["classes"], per_class=2, image_size=48, seed=3,
                                materials="class")
    images, labels = diagnose.labelled_images(world)
    assert labels.tolist() == [0, 0, 1, 1]
    written = [read_labelled_image(str(tmp_path / c / f"{i:04d}.jpg")) for c in world["classes"] for i in range(2)]
    distance = np.array([[np.abs(a.astype(int) - b.astype(int)).mean() for b in written]
                         for a in images["as generated"]])
    assert (distance.argmin(axis=1) == np.arange(4)).all() and distance.diagonal().max() < 8  # JPEG of fine grain
    for drawn, grey in zip(images["as generated"], images["grey background"]):
        object_pixels = (grey != diagnose.GREY).any(axis=2)
        assert 0.05 < object_pixels.mean() < 0.9 and (grey[object_pixels] == drawn[object_pixels]).all()
