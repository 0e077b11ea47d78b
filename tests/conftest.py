"""Fixtures that make small real inputs: mp4 files, JPEG-frame folders, a TrackingNet layout."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


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
