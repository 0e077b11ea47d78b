"""The synthetic videos: moving objects over a textured background, a drifting light and passing occluders."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from vidssl.contracts import SYNTHETIC_BOXES
from vidssl.core.errors import UserError
from vidssl.core.io import atomic_path
from vidssl.synthetic.render import (VIDEO_STREAM, class_materials, draw_instance, hsv_bgr, item_rng, lit,
                                     make_background, make_leaves_background, paste, sample_instance)
from vidssl.synthetic.templates import check_classes


def _wave(rng: np.random.Generator, n_frames: int, amplitude: float, min_period: float) -> np.ndarray:
    """A smooth random oscillation of the given amplitude over the frames (two sinusoids)."""
    t = np.arange(n_frames, dtype=np.float64)
    wave = np.zeros(n_frames)
    for weight in (0.7, 0.3):
        period = rng.uniform(min_period, 2.5 * min_period)
        wave += weight * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    return amplitude * wave


def _draw_occluder(frame: np.ndarray, event: dict, t: int) -> None:
    progress = (t - event["start"]) / event["duration"]
    if not 0.0 <= progress <= 1.0:
        return
    height, width = frame.shape[:2]
    colour = tuple(float(v) for v in event["colour"])
    if event["kind"] == "bar":
        if event["vertical"]:
            half = event["thickness"] * width / 2
            x = -half + progress * (width + 2 * half)
            cv2.rectangle(frame, (int(x - half), 0), (int(x + half), height), colour, -1)
        else:
            half = event["thickness"] * height / 2
            y = -half + progress * (height + 2 * half)
            cv2.rectangle(frame, (0, int(y - half)), (width, int(y + half)), colour, -1)
    else:
        start, end = event["path"]
        x, y = start + progress * (end - start)
        axes = (int(event["radius"] * 1.3), int(event["radius"]))
        cv2.ellipse(frame, (int(x), int(y)), axes, event["angle"], 0, 360, colour, -1)


def _occluder_events(rng: np.random.Generator, n_frames: int, width: int, height: int) -> list[dict]:
    events = []
    for _ in range(int(rng.integers(1, 3))):
        duration = int(rng.integers(30, 90))
        event = {"start": int(rng.integers(0, max(1, n_frames - duration // 2))), "duration": duration,
                 "colour": hsv_bgr(rng.uniform(0, 1), rng.uniform(0, 0.6), rng.uniform(0.15, 0.9))}
        if rng.random() < 0.5:
            event.update(kind="bar", vertical=bool(rng.random() < 0.7), thickness=rng.uniform(0.06, 0.14))
        else:
            radius = rng.uniform(0.12, 0.2) * min(width, height)
            y0, y1 = rng.uniform(0, height, 2)
            xs = (-radius * 1.3, width + radius * 1.3)
            if rng.random() < 0.5:
                xs = xs[::-1]
            event.update(kind="blob", radius=radius, angle=rng.uniform(0, 180),
                         path=(np.array([xs[0], y0]), np.array([xs[1], y1])))
        events.append(event)
    return events


def _write_video(frames: Iterable[np.ndarray], size: tuple[int, int], path: Path, fps: float = 30.0) -> None:
    """Stream BGR frames of `size` (width, height) into an mp4v video at `path`, atomically."""
    with atomic_path(path) as tmp:
        staging = tmp.with_name(tmp.name + path.suffix)  # VideoWriter picks the container from the suffix
        try:
            writer = cv2.VideoWriter(str(staging), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write mp4v video {path}")
            for frame in frames:
                writer.write(frame)
            writer.release()
            os.replace(staging, tmp)
        finally:
            staging.unlink(missing_ok=True)


def _moving_object(rng: np.random.Generator, classes: list[str], n_frames: int, width: int, height: int,
                   size: tuple[float, float], material) -> dict:
    """One object of a video: its class, instance, layer side (`size`: the range of its share of the frame's short
    side), and per-frame centre, angle and scale."""
    layer = int(rng.uniform(*size) * min(width, height) / 0.9) + 1  # the drawn object fills about 0.8 of its layer
    reach = 0.45 * layer  # keep most of the object inside the frame
    span_x, span_y = max(width / 2 - reach, 1.0), max(height / 2 - reach, 1.0)
    class_name = classes[int(rng.integers(len(classes)))]
    return {
        "class_name": class_name,
        "instance": sample_instance(class_name, rng, material=material(class_name)),
        "layer": layer,
        "x": width / 2 + rng.uniform(-0.3, 0.3) * span_x + _wave(rng, n_frames, 0.6 * span_x, 80),
        "y": height / 2 + rng.uniform(-0.3, 0.3) * span_y + _wave(rng, n_frames, 0.6 * span_y, 80),
        "angle": rng.uniform(-20, 20) + _wave(rng, n_frames, rng.uniform(8, 25), 100),
        "scale": 0.85 + _wave(rng, n_frames, 0.12, 100),
        "flip": bool(rng.random() < 0.5),
    }


def camera_path(rng: np.random.Generator, n_frames: int, pad: int) -> np.ndarray:
    """Per frame, the (x, y) offset of the view inside a background `pad` pixels larger on every side: a slow pan."""
    if pad == 0:
        return np.zeros((n_frames, 2), dtype=int)
    path = [pad + _wave(rng, n_frames, pad, 60) for _ in range(2)]
    return np.clip(np.round(np.stack(path, 1)), 0, 2 * pad).astype(int)


def _checked_world(n_videos: int, n_frames: int, width: int, height: int, camera: float, background: str,
                   object_size) -> Callable:
    """The background painter of a valid world; one line naming the setting otherwise."""
    draw_background = {"smooth": make_background, "leaves": make_leaves_background}.get(background)
    if draw_background is None:
        raise UserError(f"synthetic.background: {background!r} is not smooth or leaves")
    if not 0 < object_size[0] <= object_size[1] <= 1:
        raise UserError(f"synthetic.object_size: need 0 < low <= high <= 1, got {list(object_size)}")
    if n_videos < 1 or n_frames < 1 or width < 16 or height < 16 or not 0 <= camera <= 1:
        raise UserError(f"synthetic: need videos >= 1, frames >= 1, a size of at least 16x16 and camera in [0, 1], "
                        f"got {n_videos} videos, {n_frames} frames, {width}x{height}, camera {camera}")
    return draw_background


def generate_videos(out_dir, *, classes: Sequence[str], n_videos: int, n_frames: int,
                    size: tuple[int, int] = (160, 120), seed: int = 0, camera: float = 0.0,
                    background: str = "smooth", object_size: tuple[float, float] = (0.3, 0.5),
                    materials: str = "instance") -> dict:
    """Write out_dir/video_XXX.mp4 (mp4v, 30 fps) and out_dir/boxes.parquet.

    Each video holds one to three objects moving smoothly (translation, rotation, scale) over a textured
    background, under a drifting global light, crossed by passing occluders. `camera` > 0 pans the view over a
    background larger by that fraction of the frame's long side on every side (0: a static camera). `background`:
    smooth (`make_background`) or leaves (`make_leaves_background`); `object_size`: the range of an object's layer
    side as a share of the frame's short side; `materials`: whose texture an object wears (`class_materials`).
    boxes.parquet has
    one row per object and frame: the box of the object's own pixels (occluders ignored) clipped to the frame.
    """
    classes = check_classes(classes)
    width, height = map(int, size)
    draw_background = _checked_world(n_videos, n_frames, width, height, camera, background, object_size)
    material = class_materials(materials, seed)
    pad = int(round(camera * max(width, height)))
    out_dir = Path(out_dir)
    rows = []
    for v in tqdm(range(n_videos), desc="synthetic videos", unit="video"):
        rng = item_rng(seed, VIDEO_STREAM, v)
        scenery = draw_background(rng, height + 2 * pad, width + 2 * pad)
        # one to three objects, every count present in a small world
        objects = [_moving_object(rng, classes, n_frames, width, height, tuple(object_size), material)
                   for _ in range(1 + v % 3)]
        light = 1.0 + _wave(rng, n_frames, rng.uniform(0.1, 0.3), 120)
        cast = rng.uniform(-0.06, 0.06, 3)
        occluders = _occluder_events(rng, n_frames, width, height)
        view = camera_path(rng, n_frames, pad)

        def frames():
            for t in range(n_frames):
                x0, y0 = view[t]
                frame = scenery[y0:y0 + height, x0:x0 + width].copy()
                for index, obj in enumerate(objects):
                    drawn = draw_instance(obj["instance"], obj["layer"], obj["angle"][t], obj["scale"][t], obj["flip"])
                    left = int(round(obj["x"][t] - obj["layer"] / 2))
                    top = int(round(obj["y"][t] - obj["layer"] / 2))
                    box = paste(frame, drawn, left, top)
                    if box is not None:
                        rows.append((f"video_{v:03d}", t, index, obj["class_name"], *box))
                for event in occluders:
                    _draw_occluder(frame, event, t)
                yield lit(frame, light[t] * (1 + cast * np.sin(np.pi * t / n_frames)))

        _write_video(frames(), (width, height), out_dir / f"video_{v:03d}.mp4")

    boxes = pd.DataFrame(rows, columns=SYNTHETIC_BOXES.names)
    SYNTHETIC_BOXES.write(boxes, out_dir / "boxes.parquet",
                          metadata={"seed": int(seed), "size": [width, height], "frames": int(n_frames),
                                    "camera": float(camera), "background": background})
    return {"videos": n_videos, "frames": n_frames, "objects": int(boxes.groupby("video")["object"].nunique().sum())}

