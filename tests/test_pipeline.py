"""The whole DAG through real Snakemake on the tiny config, and what reruns after a config change."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import cv2
import h5py
import pandas as pd
import pytest
from conftest import ROOT, planned_jobs, snakemake

pytestmark = pytest.mark.slow
VIT = "dino-tracked_patch@vit_ti16"  # the tiny config's new objective on tracked patches, with a ViT


def test_table5(tiny_run):
    table = pd.read_csv(tiny_run / "results" / "table5.csv")
    assert table.Method.tolist() == ["Random init", "Supervised", "MoCo v2", "Frame Temporal Invariance",
                                     "Region Tracker", "DINO tracked patch ViT-Ti"]
    assert table.columns.tolist() == ["Method", "aeroplane", "car", "bird", "Avg"]
    classes = table[["aeroplane", "car", "bird"]]
    assert ((classes > 0) & (classes <= 100)).all().all()
    # Avg is the rounded mean of the unrounded accuracies: within 0.05 + 0.05 of the mean of the rounded cells
    assert (table.Avg - classes.mean(axis=1)).abs().max() <= 0.1 + 1e-9
    markdown = (tiny_run / "results" / "table5.md").read_text().splitlines()
    assert markdown[0] == "| Method | aeroplane | car | bird | Avg | Avg − Random init |"
    assert re.search(r"\| \d+\.\d (± |\+)\d+\.\d", markdown[2])  # a mean with its interval (+up/−down when skewed)
    assert "Mean over 2 probe seeds" in markdown[-1]  # the tiny config's partseg.seeds
    intervals = pd.read_csv(tiny_run / "results" / "table5_ci.csv")
    assert len(intervals) == 6 * 4 and intervals["class"].tolist()[:4] == ["aeroplane", "car", "bird", "Avg"]
    assert ((intervals.ci_low <= intervals["mean"]) & (intervals["mean"] <= intervals.ci_high)).all()
    # table5.csv holds the seed means that table5_ci.csv gives unrounded
    assert (intervals[intervals["class"] == "Avg"]["mean"].round(1).to_numpy() == table.Avg.to_numpy()).all()


def test_invariance_and_features(tiny_run):
    scores = pd.read_csv(tiny_run / "results" / "invariance.csv")
    assert set(scores.method) == {"random", "supervised", "moco", "fti", "region_tracker", VIT}
    assert set(scores.dataset) == {"viewpoint", "illumination", "occlusion", "instance"}
    assert set(scores.measure) == {"class_conditional", "goodfellow", "official"}
    assert scores.score.notna().all() and (scores.score >= 0).all()
    assert scores.ci_low.notna().all() and (scores.ci_low <= scores.ci_high).all()
    with h5py.File(tiny_run / "results" / "features" / "moco" / "viewpoint.h5") as h5:
        assert h5["features"].shape[1] == 128 and h5["features"].dtype == "float32"  # resnet18 at width 0.25
        assert len(h5["label"]) == len(h5["set"]) == h5["features"].shape[0]
        assert h5.attrs["model"] == "moco" and h5.attrs["dataset"] == "viewpoint"
    with h5py.File(tiny_run / "results" / "features" / VIT / "viewpoint.h5") as h5:  # the CLS token of a ViT-Ti
        assert h5["features"].shape[1] == 192 and h5.attrs["arch"] == "vit_ti16"


def test_classification_and_the_invariance_table(tiny_run):
    scores = pd.read_csv(tiny_run / "results" / "classification.csv")
    assert scores.columns.tolist() == ["method", "dataset", "metric", "value", "ci_low", "ci_high"]
    assert ((scores.ci_low <= scores.value) & (scores.value <= scores.ci_high)).all()
    assert set(scores.method) == {"random", "supervised", "moco", "fti", "region_tracker", VIT}
    assert set(scores.dataset) == {"synthetic_labelled"} and set(scores.metric) == {"knn_top1", "linear_top1"}
    assert len(scores) == 12 and ((scores.value >= 0) & (scores.value <= 100)).all()
    with h5py.File(tiny_run / "results" / "features" / "moco" / "synthetic_labelled.h5") as h5:
        assert h5.attrs["image_size"] == 32  # the tiny config's model.image_size
    table = (tiny_run / "results" / "invariance_table.md").read_text().splitlines()
    assert table[0] == ("| Method | Viewpoint (synthetic) top-5 | Illumination (synthetic) top-5 | "
                        "Occlusion (synthetic) top-5 | Instance (synthetic) top-5 |")
    assert len(table) == 2 + 6 and table[2].startswith("| Random init |")


def test_every_rule_logged_and_artifacts_present(tiny_run):
    results = tiny_run / "results"
    for method in ("moco", "fti", "region_tracker", "supervised", VIT):
        for name in ("checkpoint.pt", "backbone.pth", "train.csv", "run.json"):
            assert (results / "models" / method / name).stat().st_size > 0
        assert (results / "figures" / f"training_{method}.png").stat().st_size > 0
    assert (results / "figures" / "invariance.png").stat().st_size > 0
    assert (results / "figures" / "tracks_0000.png").stat().st_size > 0
    jobs = planned_jobs(snakemake(tiny_run, "-n", "--forceall", "all"))
    logs = list((tiny_run / "logs").rglob("*.log"))
    assert len(logs) == sum(jobs.values()) - jobs["all"], "one log per job"
    assert all("done in" in log.read_text() for log in logs)


@pytest.mark.parametrize(
    "overlay, reruns",
    [
        ("invariance:\n  top_k: [3]\n", {"invariance", "invariance_summary", "all"}),
        ("partseg:\n  size: 32\n", {"partseg_probe", "table5", "all"}),
        ("partseg:\n  seeds: [0, 1, 2]\n", {"partseg_probe", "table5", "all"}),
        ("table5:\n  bootstrap: 200\n", {"table5", "all"}),
        # loader workers, checkpoint and monitor intervals cannot change the weights: training does not rerun
        ("train:\n  workers: 1\n  checkpoint_every: 7\n  knn_every: 0\n  knn_samples: 10\n", {"all"}),
        ("invariance:\n  bootstrap: 50\n", {"invariance", "invariance_summary", "all"}),
        ("moco:\n  momentum: 0.9\n",
         {"train[moco]", "train[fti]", "train[region_tracker]", "training_plot", "features", "partseg_features",
          "invariance", "invariance_summary", "partseg_probe", "table5", "classification_features",
          "classification_scores", "classification", "all"}),
        # an objective's own optimiser settings retrain its methods only
        ("dino:\n  train:\n    optimizer: sgd\n    lr: 0.01\n",
         {f"train[{VIT}]", "training_plot", "features", "partseg_features", "invariance", "invariance_summary",
          "partseg_probe", "table5", "classification_features", "classification_scores", "classification", "all"}),
        ("tracks:\n  score_threshold: 0.6\n",
         {"tracks", "track_pairs", "track_sheet", "train[region_tracker]", f"train[{VIT}]", "training_plot", "features",
          "partseg_features", "invariance", "invariance_summary", "partseg_probe", "table5", "classification_features",
          "classification_scores", "classification", "all"}),
        ("tracks:\n  keyframe_every: 3\n",
         {"proposals", "tracks", "track_pairs", "track_sheet", "train[region_tracker]", f"train[{VIT}]",
          "training_plot", "features",
          "partseg_features", "invariance", "invariance_summary", "partseg_probe", "table5", "classification_features",
          "classification_scores", "classification", "all"}),
        # supervised trains on the labelled set's train split, so a new split retrains it (and only it)
        ("classification:\n  test_fraction: 0.5\n",
         {"eval_index", "train[supervised]", "training_plot", "features", "partseg_features", "invariance",
          "invariance_summary", "partseg_probe", "table5", "classification_features", "classification_scores",
          "classification", "all"}),
    ],
)
def test_config_change_reruns_only_what_it_feeds(tiny_run, overlay, reruns):
    result = snakemake(tiny_run, "-n", "--rerun-triggers", "params", "input", overlay=overlay)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result)
    # run_config records the resolved config, so it reruns on every change
    assert set(jobs) == reruns | {"run_config"}
    if "tracks" in reruns:
        # only the two tracked-patch methods' features, probes (one per probe seed of the tiny config) and curves
        assert jobs["features"] == jobs["partseg_features"] == jobs["training_plot"] == 2 and jobs["partseg_probe"] == 4
        assert jobs["classification_features"] == jobs["classification_scores"] == 2
    if "seeds" in overlay:
        assert jobs["partseg_probe"] == 6, "only the new seed's probes: seeds 0 and 1 are kept"
    if "eval_index" in reruns:
        # only the classification set's list; every method's classification features and scores
        assert jobs["eval_index"] == 1 and jobs["classification_features"] == jobs["classification_scores"] == 6


def test_pairs_change_reruns_proposals_only_when_it_changes_the_keyframes(tiny_run):
    """The proposals rule's params are the keyframes themselves: with keyframe_every 1 every frame is one whatever the
    pairs, so a new k reruns the pairs, not the search (with keyframe_every > 1 a k that moves a pair frame would)."""
    result = snakemake(tiny_run, "-n", "--rerun-triggers", "params", "input", overlay="pairs:\n  k: 12\n")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result)
    assert "frame_pairs" in jobs and "proposals" not in jobs and "tracks" not in jobs


def test_nothing_to_do_after_a_full_run(tiny_run):
    result = snakemake(tiny_run, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


class VisibleText(HTMLParser):
    """The text a page shows: everything outside <script>, <style> and <template>."""

    HIDDEN = {"script", "style", "template"}

    def __init__(self):
        super().__init__()
        self.depth, self.parts = 0, []

    def handle_starttag(self, tag, attrs):
        self.depth += tag in self.HIDDEN

    def handle_endtag(self, tag):
        self.depth -= tag in self.HIDDEN and self.depth > 0

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def chromium_or_skip() -> str:
    """Debian's Chromium; `make chromium` (which `make test` runs) installs it where that can be done."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["make", "chromium"], cwd=ROOT, check=True, timeout=1800)  # apt: minutes at most; a hang stops
        found = shutil.which("chromium")
        assert found, "make chromium installed Debian's chromium package, yet no chromium is on PATH"
    if found is None:
        pytest.skip("Chromium is not installed and cannot be installed here (Debian's package needs root and apt-get): "
                    "the report was built but not rendered")
    return found


def headless_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """One headless Chromium run in a fresh profile, with nothing that reaches for the network (it is closed)."""
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--window-size=1280,900", "--virtual-time-budget=5000", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)  # seconds normally; only a hang stops
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_html_report_renders(tiny_run, tmp_path):
    report = tiny_run / "results" / "report.html"
    result = snakemake(tiny_run, "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text(errors="replace")
    for expected in ("table5.csv", "invariance.png", "training_moco.png", "tracks_0000.png", "config.yaml",
                     "classification.csv", "invariance_table.md"):
        assert expected in html
    assert "Table 5" not in visible_text(html), "the report's page is drawn by its scripts, not served as text"
    chromium = chromium_or_skip()
    dom = headless_chromium(chromium, tmp_path / "profile_dom", "--dump-dom", report.as_uri()).stdout
    shown = visible_text(dom)
    # the categories of the report's menu and the workflow description, as the report's scripts draw them
    for expected in ("Table 5", "Invariance", "Classification", "Configuration",
                     "Demystifying Contrastive Self-Supervised Learning"):
        assert expected in shown, f"{expected!r} not drawn: {shown[:2000]!r}"
    screenshot = tmp_path / "report.png"
    headless_chromium(chromium, tmp_path / "profile_png", f"--screenshot={screenshot}", report.as_uri())
    pixels = cv2.imread(str(screenshot), cv2.IMREAD_GRAYSCALE)
    assert pixels.shape == (900, 1280)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01, "the page rendered blank"


def test_track_purity_scores_a_finished_run(tiny_run):
    """benchmarks/track_purity.py maps each patch pair to its video frame through the chunk stores: a pair whose first
    box is a true object box scores IoU 1, a pair in an empty corner 0, and the whole run's shares are fractions."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import track_purity

    results = tiny_run / "results"
    sources = track_purity.source_frames(sorted((results / "chunks").glob("*.h5")))
    truth = pd.read_parquet(tiny_run / "resources" / "synthetic" / "videos" / "boxes.parquet")
    seen = set(zip(truth.video, truth.frame))
    (video, chunk, frame), source = next((key, s) for key, s in sources.items() if key[2] > 0 and (key[0], s) in seen)
    true = truth[(truth.video == video) & (truth.frame == source)].iloc[0]
    scale = 0.5
    pairs = pd.DataFrame({"video": [video, video], "chunk": [chunk, chunk], "frame_a": [frame, frame],
                          "ax1": [true.x1 * scale, 0.0], "ay1": [true.y1 * scale, 0.0],
                          "ax2": [true.x2 * scale, 0.5], "ay2": [true.y2 * scale, 0.5]})
    assert track_purity.best_overlaps(pairs, truth, scale, sources).tolist() == [1.0, 0.0]
    printed = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "track_purity.py"), str(tiny_run)],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    on_object, background = (float(x) for x in re.findall(r"(\d\.\d+) (?:on an object|background)", printed[0]))
    assert len(printed) == 5 and 0 <= on_object <= 1 and 0 <= background <= 1 - on_object
