"""Fixtures that make small real inputs (mp4 files, JPEG-frame folders), and the tiny config's whole-DAG run."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml


def moving_square_frames(n_frames: int, size=(64, 48), seed: int = 0) -> list[np.ndarray]:
    """A textured square sliding over a noisy background: enough structure for codecs and trackers."""
    rng = np.random.default_rng(seed)
    width, height = size
    background = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    frames = []
    for t in range(n_frames):
        frame = background.copy()
        x = int(4 + t * (width - 24) / max(n_frames, 1))
        frame[10:26, x:x + 16] = (40, 200, 90)
        frames.append(frame)
    return frames


def write_mp4(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def write_jpeg_folder(folder: Path, frames: list[np.ndarray], numbers=None, grayscale: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number, frame in zip(numbers if numbers is not None else range(len(frames)), frames):
        image = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if grayscale else frame
        cv2.imwrite(str(folder / f"{number}.jpg"), image)
    return folder


@pytest.fixture
def video_folder(tmp_path: Path) -> Path:
    """Two good mp4s (130 and 60 frames) and one JPEG-frame folder (90 frames)."""
    root = tmp_path / "videos"
    root.mkdir()
    write_mp4(root / "long.mp4", moving_square_frames(130))
    write_mp4(root / "exact.mp4", moving_square_frames(60, seed=1))
    write_jpeg_folder(root / "jpegs", moving_square_frames(90, seed=2))
    return root


ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
DEFAULT_CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def search_settings(**changes) -> dict:
    """selective_search's settings: the embedded default's `proposals` section, with `changes`."""
    return DEFAULT_CONFIG["proposals"] | changes


def track_params(**changes) -> dict:
    """link_chunk's and track_shard's settings as the embedded default's rule passes them, with `changes`."""
    from vidssl.tracking.tracks import link_settings

    return link_settings(DEFAULT_CONFIG["tracks"]) | changes


def search_params(**changes) -> dict:
    """propose_shard's settings as the embedded default's rule passes them, with `changes`."""
    config = DEFAULT_CONFIG
    return {**config["proposals"], "keyframe_every": config["tracks"]["keyframe_every"], "pairs": config["pairs"],
            **changes}


def snakemake(workdir: Path, *args: str, overlay: str | None = None,
              timeout: int = 2400) -> subprocess.CompletedProcess:
    """Real Snakemake on the tiny config (plus an optional overlay) in `workdir`. The limit only catches a hang: the
    whole tiny DAG takes about 2 minutes on 2 idle cores and 5-7 on a loaded machine."""
    configs = [str(ROOT / "config" / "tiny.yaml")]
    if overlay:
        (workdir / "overlay.yaml").write_text(overlay)
        configs.append(str(workdir / "overlay.yaml"))
    command = [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", *configs, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's job-stats table; the one training rule's jobs as `train[<method>]`."""
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    jobs = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}
    if "train" in jobs:
        trained = re.findall(r"^rule train:\n(?:\s+.*\n)*?\s+wildcards: method=(\S+)$", result.stdout, re.M)
        assert len(trained) == jobs.pop("train"), "a dry run lists every training job with its method"
        jobs |= {f"train[{method}]": trained.count(method) for method in trained}
    return jobs


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole DAG of the tiny config, run once per session and shared by the pipeline and cluster tests."""
    workdir = tmp_path_factory.mktemp("tiny")
    result = snakemake(workdir, "--cores", "2", "all")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir
