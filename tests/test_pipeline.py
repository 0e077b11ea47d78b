"""The whole DAG through real Snakemake on the tiny config, and what reruns after a config change."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, overlay: str | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    configs = [str(ROOT / "config" / "tiny.yaml")]
    if overlay:
        (workdir / "overlay.yaml").write_text(overlay)
        configs.append(str(workdir / "overlay.yaml"))
    command = [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", *configs, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's job-stats table."""
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("tiny")
    result = snakemake(workdir, "--cores", "2", "all")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_table5(tiny_run):
    table = pd.read_csv(tiny_run / "results" / "table5.csv")
    assert table.Method.tolist() == ["Random init", "Supervised", "MoCo v2", "Frame Temporal Invariance", "Region Tracker"]
    assert table.columns.tolist() == ["Method", "aeroplane", "car", "bird", "Avg"]
    classes = table[["aeroplane", "car", "bird"]]
    assert ((classes > 0) & (classes <= 100)).all().all()
    assert (table.Avg - classes.mean(axis=1)).abs().max() <= 0.051
    assert (tiny_run / "results" / "table5.md").read_text().startswith("| Method")


def test_invariance_and_features(tiny_run):
    scores = pd.read_csv(tiny_run / "results" / "invariance.csv")
    assert set(scores.method) == {"random", "supervised", "moco", "fti", "region_tracker"}
    assert set(scores.dataset) == {"viewpoint", "illumination", "occlusion", "instance"}
    assert set(scores.measure) == {"class_conditional", "goodfellow", "official"}
    assert scores.score.notna().all() and (scores.score >= 0).all()
    with h5py.File(tiny_run / "results" / "features" / "moco" / "viewpoint.h5") as h5:
        assert h5["features"].shape[1] == 512 and h5["features"].dtype == "float32"
        assert len(h5["label"]) == len(h5["set"]) == h5["features"].shape[0]
        assert h5.attrs["model"] == "moco" and h5.attrs["dataset"] == "viewpoint"


def test_every_rule_logged_and_artifacts_present(tiny_run):
    results = tiny_run / "results"
    for method in ("moco", "fti", "region_tracker", "supervised"):
        for name in ("checkpoint.pt", "backbone.pth", "train.csv", "run.json"):
            assert (results / "models" / method / name).stat().st_size > 0
        assert (results / "figures" / f"training_{method}.png").stat().st_size > 0
    assert (results / "figures" / "invariance.png").stat().st_size > 0
    assert (results / "figures" / "tracks_0000.png").stat().st_size > 0
    logs = list((tiny_run / "logs").rglob("*.log"))
    assert len(logs) >= 60 and all(log.stat().st_size > 0 for log in logs if "synth" not in log.name)


@pytest.mark.parametrize(
    "overlay, reruns",
    [
        ("invariance:\n  top_k: [3]\n", {"invariance", "invariance_summary", "all"}),
        ("partseg:\n  size: 32\n", {"partseg_probe", "table5", "all"}),
        ("tracks:\n  score_threshold: 0.6\n",
         {"tracks", "track_pairs", "track_sheet", "train_region_tracker", "training_plot", "features", "invariance",
          "invariance_summary", "partseg_probe", "table5", "all"}),
    ],
)
def test_config_change_reruns_only_what_it_feeds(tiny_run, overlay, reruns):
    result = snakemake(tiny_run, "-n", "--rerun-triggers", "params", "input", overlay=overlay)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result)
    assert set(jobs) == reruns
    if "train_region_tracker" in reruns:
        # only region_tracker's features and probe: one job per dataset, one probe
        assert jobs["features"] == 5 and jobs["partseg_probe"] == 1


def test_nothing_to_do_after_a_full_run(tiny_run):
    result = snakemake(tiny_run, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_html_report_renders(tiny_run, tmp_path):
    report = tiny_run / "results" / "report.html"
    result = snakemake(tiny_run, "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text(errors="replace")
    for expected in ("table5.csv", "invariance.png", "training_moco.png", "tracks_0000.png"):
        assert expected in html
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed: the report was built but not rendered")
    screenshot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900", "--virtual-time-budget=5000",
                    f"--screenshot={screenshot}", report.as_uri()], capture_output=True, timeout=120)
    assert screenshot.stat().st_size > 20_000, "the page rendered blank"
