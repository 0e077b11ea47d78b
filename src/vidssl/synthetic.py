"""The embedded default world: videos, a Pascal-Part-format part set, a labelled set and invariance sets.

Every object is drawn from a per-class template of named parts (polygons, ellipses and thick lines in a
canonical frame spanning [-1, 1]). Drawing rasterises part *instances* into one label map and colours the
image from that map, so the part masks are exact by construction. Every image, video and trajectory draws
its randomness from its own seed stream (seed, kind, ids), so outputs do not depend on generation order
or on how many other items are generated.
"""
from __future__ import annotations

import colorsys
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from vidssl.datasets.pascal_part import PascalObject, write_annotation
from vidssl.io import UserError, atomic_path, write_parquet

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

TRAJECTORY_DATASETS = ("viewpoint", "illumination", "occlusion", "instance")

# Seed-stream tags: one per kind of generated item, so streams never collide.
_VIDEO, _PARTSEG, _LABELLED, _TRAJECTORY = 1, 2, 3, 4

_JPEG_QUALITY = 95
_SUBPIXEL_BITS = 4  # cv2 drawing `shift`: vertices carry 1/16-pixel precision


class Stroke(NamedTuple):
    """One drawn primitive of a part instance in canonical coordinates."""

    part: str
    index: int  # 0 for a part that occurs once; 1, 2, ... for repeated parts (wheel_1, wheel_2)
    points: np.ndarray  # (n, 2) float, x right, y down, within about [-1, 1]
    width: float = 0.0  # 0: filled polygon; > 0: polyline of this canonical thickness
    closed: bool = False  # polyline closes on itself (a ring)


def _ellipse(cx: float, cy: float, ax: float, ay: float, degrees: float = 0.0, n: int = 28) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    x, y = ax * np.cos(t), ay * np.sin(t)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _pts(*xy: float) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64).reshape(-1, 2)


# Side views (person: front view); later strokes paint over earlier ones.
_TEMPLATES: dict[str, list[Stroke]] = {
    "aeroplane": [
        Stroke("wing", 2, _pts(0.15, -0.02, -0.1, -0.02, -0.32, -0.4, -0.16, -0.4)),
        Stroke("body", 0, _ellipse(0.0, 0.0, 0.9, 0.15)),
        Stroke("body", 0, _pts(0.75, -0.1, 0.97, 0.0, 0.75, 0.1)),
        Stroke("tail", 0, _pts(-0.88, 0.0, -0.58, 0.0, -0.78, -0.55, -0.94, -0.55)),
        Stroke("wing", 1, _pts(0.2, 0.04, -0.15, 0.04, -0.5, 0.65, -0.26, 0.65)),
        Stroke("engine", 1, _ellipse(0.02, 0.26, 0.16, 0.08)),
        Stroke("engine", 2, _ellipse(-0.2, 0.5, 0.15, 0.075)),
    ],
    "car": [
        Stroke("body", 0, _pts(-0.92, 0.32, 0.92, 0.32, 0.92, -0.02, 0.5, -0.1, 0.28, -0.46,
                               -0.42, -0.46, -0.62, -0.1, -0.92, -0.04)),
        Stroke("window", 1, _pts(-0.37, -0.38, -0.06, -0.38, -0.06, -0.13, -0.53, -0.13)),
        Stroke("window", 2, _pts(0.02, -0.38, 0.24, -0.38, 0.4, -0.13, 0.02, -0.13)),
        Stroke("wheel", 1, _ellipse(-0.55, 0.32, 0.22, 0.22)),
        Stroke("wheel", 2, _ellipse(0.55, 0.32, 0.22, 0.22)),
    ],
    "bird": [
        Stroke("tail", 0, _pts(-0.38, 0.02, -0.92, 0.3, -0.86, 0.46, -0.32, 0.22)),
        Stroke("leg", 1, _pts(-0.02, 0.22, -0.08, 0.78, -0.2, 0.8), width=0.07),
        Stroke("leg", 2, _pts(0.14, 0.22, 0.17, 0.78, 0.05, 0.8), width=0.07),
        Stroke("torso", 0, _ellipse(0.0, 0.02, 0.46, 0.29, -12)),
        Stroke("head", 0, _ellipse(0.46, -0.36, 0.2, 0.19)),
        Stroke("head", 0, _pts(0.6, -0.44, 0.86, -0.34, 0.6, -0.28)),
        Stroke("wing", 0, _ellipse(-0.08, -0.02, 0.38, 0.15, -18)),
    ],
    "cat": [
        Stroke("tail", 0, _pts(-0.45, -0.04, -0.72, -0.22, -0.86, -0.58), width=0.09),
        Stroke("leg", 1, _pts(-0.38, 0.08, -0.4, 0.66), width=0.11),
        Stroke("leg", 2, _pts(-0.2, 0.1, -0.2, 0.66), width=0.11),
        Stroke("leg", 3, _pts(0.24, 0.1, 0.26, 0.66), width=0.11),
        Stroke("leg", 4, _pts(0.42, 0.08, 0.44, 0.66), width=0.11),
        Stroke("torso", 0, _ellipse(0.0, 0.0, 0.52, 0.22)),
        Stroke("head", 0, _ellipse(0.62, -0.3, 0.22, 0.2)),
        Stroke("head", 0, _pts(0.46, -0.4, 0.5, -0.64, 0.62, -0.46)),
        Stroke("head", 0, _pts(0.66, -0.46, 0.8, -0.64, 0.8, -0.38)),
    ],
    "bicycle": [
        Stroke("wheel", 1, _ellipse(-0.55, 0.28, 0.36, 0.36), width=0.1, closed=True),
        Stroke("wheel", 2, _ellipse(0.55, 0.28, 0.36, 0.36), width=0.1, closed=True),
        Stroke("frame", 0, _pts(-0.55, 0.28, -0.25, -0.2, 0.32, -0.2, -0.08, 0.28, -0.55, 0.28), width=0.08),
        Stroke("frame", 0, _pts(-0.08, 0.28, -0.25, -0.2, -0.28, -0.3), width=0.08),
        Stroke("frame", 0, _pts(0.55, 0.28, 0.32, -0.2, 0.38, -0.42), width=0.08),
        Stroke("handlebar", 0, _pts(0.3, -0.46, 0.44, -0.46, 0.56, -0.38), width=0.08),
        Stroke("saddle", 0, _pts(-0.44, -0.38, -0.12, -0.38, -0.18, -0.28, -0.4, -0.28)),
    ],
    "person": [
        Stroke("leg", 1, _pts(-0.1, 0.12, -0.14, 0.52, -0.16, 0.92), width=0.14),
        Stroke("leg", 2, _pts(0.1, 0.12, 0.14, 0.52, 0.16, 0.92), width=0.14),
        Stroke("torso", 0, _pts(-0.24, -0.52, 0.24, -0.52, 0.2, 0.18, -0.2, 0.18)),
        Stroke("arm", 1, _pts(-0.27, -0.48, -0.38, -0.12, -0.42, 0.2), width=0.1),
        Stroke("arm", 2, _pts(0.27, -0.48, 0.38, -0.12, 0.42, 0.2), width=0.1),
        Stroke("head", 0, _ellipse(0.0, -0.72, 0.15, 0.17)),
    ],
    # A distractor without part annotations, as Pascal-Part has for some classes.
    "bottle": [
        Stroke("body", 0, _pts(-0.1, -0.9, 0.1, -0.9, 0.1, -0.5, 0.3, -0.3, 0.3, 0.9,
                               -0.3, 0.9, -0.3, -0.3, -0.1, -0.5)),
    ],
}
_PARTLESS = ("bottle",)


def _part_names(strokes: list[Stroke]) -> list[str]:
    names: list[str] = []
    for stroke in strokes:
        if stroke.part not in names:
            names.append(stroke.part)
    return names


# Part names in label order (label k + 1 in a part map); the first part carries the instance's main colour.
CLASSES: dict[str, list[str]] = {
    "aeroplane": ["body", "wing", "tail", "engine"],
    "car": ["body", "window", "wheel"],
    "bird": ["head", "torso", "wing", "leg", "tail"],
    "cat": ["head", "torso", "leg", "tail"],
    "bicycle": ["wheel", "frame", "handlebar", "saddle"],
    "person": ["head", "torso", "arm", "leg"],
}
assert all(sorted(CLASSES[c]) == sorted(_part_names(_TEMPLATES[c])) for c in CLASSES)


@dataclass(frozen=True)
class Instance:
    """One object instance: its jittered shape, part colours and texture, drawable at any pose."""

    class_name: str
    strokes: tuple[Stroke, ...]
    instance_names: tuple[str, ...]  # indexed part names, e.g. ("body", "wheel_1", "wheel_2")
    stroke_ids: tuple[int, ...]  # per stroke, 1 + its position in instance_names
    instance_parts: np.ndarray  # lookup: instance id (0 = background) -> part label (0 = background)
    colours: np.ndarray  # (n_parts + 1, 3) float32 BGR, row 0 unused
    texture: np.ndarray  # (T, T) float32 in [-1, 1], spanning the canonical square
    texture_gain: float


@dataclass(frozen=True)
class ObjectLayer:
    """A rendered object on a square transparent layer."""

    class_name: str
    image: np.ndarray  # (size, size, 3) uint8 BGR, 0 outside the object
    part_map: np.ndarray  # (size, size) uint8: 0 background, k = 1 + index in CLASSES[class_name]
    instance_map: np.ndarray  # (size, size) uint8: 0 background, j = 1 + index in instance_names
    instance_names: tuple[str, ...]

    @property
    def mask(self) -> np.ndarray:
        return self.part_map > 0


def _check_classes(classes: Sequence[str]) -> list[str]:
    classes = list(classes)
    unknown = [c for c in classes if c not in CLASSES]
    if not classes or unknown:
        raise UserError(f"synthetic.classes: unknown or empty {unknown or classes}; choose from {sorted(CLASSES)}")
    return classes


def _rng(seed: int, tag: int, *ids: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), tag, *map(int, ids)])


def _hsv_bgr(h: float, s: float, v: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return np.array([b, g, r], dtype=np.float32) * 255.0


def _texture(rng: np.random.Generator, side: int = 48) -> np.ndarray:
    """A smooth noise, stripe or spot pattern in [-1, 1]."""
    kind = rng.integers(3)
    if kind == 0:
        cells = int(rng.integers(3, 8))
        pattern = cv2.resize(rng.uniform(-1, 1, (cells, cells)).astype(np.float32), (side, side),
                             interpolation=cv2.INTER_CUBIC)
    else:
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
        theta, freq = rng.uniform(0, np.pi), rng.uniform(2.5, 7.0)
        pattern = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 2 * np.pi))
        if kind == 2:
            pattern = pattern * np.sin(2 * np.pi * freq * (-xx * np.sin(theta) + yy * np.cos(theta)))
    return np.clip(pattern, -1, 1).astype(np.float32)


def sample_instance(class_name: str, rng: np.random.Generator, colour: Sequence[float] | None = None,
                    jitter: float = 1.0) -> Instance:
    """Draw an instance of `class_name`: shape jitter, part colours (main colour `colour`, BGR 0-255) and texture."""
    if class_name not in _TEMPLATES:
        raise UserError(f"synthetic: unknown class {class_name!r}; choose from {sorted(CLASSES)}")
    template = _TEMPLATES[class_name]
    parts = CLASSES.get(class_name, _part_names(template))
    stretch = np.exp(rng.normal(0, 0.07 * jitter, 2))
    strokes = []
    for stroke in template:
        points = (stroke.points + rng.normal(0, 0.025 * jitter, 2)) * stretch
        points = points + rng.normal(0, 0.012 * jitter, points.shape)
        width = stroke.width * rng.uniform(1 - 0.15 * jitter, 1 + 0.15 * jitter)
        strokes.append(stroke._replace(points=points, width=width))
    # Shrink an instance that jitter pushed past the unit circle, so drawing never clips it at any angle.
    reach = max(float(np.hypot(*st.points.T).max()) + st.width / 2 for st in strokes)
    if reach > 1.0:
        strokes = [st._replace(points=st.points / reach, width=st.width / reach) for st in strokes]

    names: list[str] = []
    for stroke in strokes:
        name = f"{stroke.part}_{stroke.index}" if stroke.index else stroke.part
        if name not in names:
            names.append(name)
    stroke_ids = tuple(1 + names.index(f"{s.part}_{s.index}" if s.index else s.part) for s in strokes)
    instance_parts = np.zeros(len(names) + 1, dtype=np.uint8)
    for stroke, ident in zip(strokes, stroke_ids):
        instance_parts[ident] = 1 + parts.index(stroke.part)

    if colour is None:
        hue, sat, val = rng.uniform(0, 1), rng.uniform(0.45, 0.95), rng.uniform(0.5, 0.95)
        main = _hsv_bgr(hue, sat, val)
    else:
        main = np.asarray(colour, dtype=np.float32).reshape(3)
        b, g, r = (main / 255.0).tolist()
        hue = colorsys.rgb_to_hsv(r, g, b)[0]
    colours = np.zeros((len(parts) + 1, 3), dtype=np.float32)
    colours[1] = main
    for k in range(2, len(parts) + 1):  # distinct hues so part boundaries are visible
        colours[k] = _hsv_bgr(hue + 0.16 * (k - 1) + rng.normal(0, 0.03),
                              rng.uniform(0.35, 0.9), rng.uniform(0.3, 0.95))
    return Instance(class_name, tuple(strokes), tuple(names), stroke_ids, instance_parts, colours,
                    _texture(rng), float(rng.uniform(0.1, 0.3)))


def draw_instance(instance: Instance, size: int, angle: float = 0.0, scale: float = 1.0,
                  flip: bool = False) -> ObjectLayer:
    """Rasterise `instance` centred on a size x size layer, rotated by `angle` degrees.

    At scale 1 the canonical unit radius spans 90% of the half side, so any rotation stays on the layer.
    """
    half = size / 2.0
    radius = 0.9 * scale * half
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    linear = radius * np.array([[c, -s], [s, c]]) @ np.diag([-1.0 if flip else 1.0, 1.0])
    centre = np.array([half, half])
    unit = 1 << _SUBPIXEL_BITS

    instance_map = np.zeros((size, size), dtype=np.uint8)
    for stroke, ident in zip(instance.strokes, instance.stroke_ids):
        pixels = stroke.points @ linear.T + centre - 0.5  # pixel centres sit at integer + 0.5
        fixed = np.round(pixels * unit).astype(np.int32).reshape(-1, 1, 2)
        if stroke.width > 0:
            thickness = max(1, int(round(stroke.width * radius)))
            cv2.polylines(instance_map, [fixed], stroke.closed, ident, thickness, cv2.LINE_8, _SUBPIXEL_BITS)
        else:
            cv2.fillPoly(instance_map, [fixed], ident, cv2.LINE_8, _SUBPIXEL_BITS)
    part_map = instance.instance_parts[instance_map]

    side = instance.texture.shape[0]
    # Maps texture pixel q to layer pixel: canonical p = 2q/side - 1, then linear p + centre.
    warp = np.hstack([linear * (2.0 / side), (centre - linear.sum(axis=1) - 0.5)[:, None]])
    texture = cv2.warpAffine(instance.texture, warp, (size, size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
    shade = 1.0 + instance.texture_gain * texture
    image = instance.colours[part_map] * shade[..., None]
    image[part_map == 0] = 0
    return ObjectLayer(instance.class_name, np.clip(image, 0, 255).astype(np.uint8), part_map, instance_map,
                       instance.instance_names)


def render_object(class_name: str, rng: np.random.Generator, size: int, angle: float = 0.0, scale: float = 1.0,
                  colour: Sequence[float] | None = None, flip: bool = False) -> ObjectLayer:
    """A fresh random instance of `class_name` drawn on a size x size transparent layer."""
    return draw_instance(sample_instance(class_name, rng, colour), size, angle, scale, flip)


def make_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured BGR background: smooth colour noise, a gradient or stripes, plus fine grain."""
    low = _hsv_bgr(rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.25, 0.8))
    high = _hsv_bgr(rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.25, 0.8))
    kind = rng.integers(3)
    if kind == 0:
        cells = rng.uniform(0, 1, (int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3)).astype(np.float32)
        cells = 0.5 * cells + 0.5 * cells.mean(axis=2, keepdims=True)  # muted, so objects stand out
        image = cv2.resize(cells * 255.0, (width, height), interpolation=cv2.INTER_CUBIC) * 0.6 + low * 0.4
    else:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(height, width)
        theta = rng.uniform(0, 2 * np.pi)
        along = xx * np.cos(theta) + yy * np.sin(theta)
        if kind == 1:
            mix = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
        else:
            mix = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 8) * along)
        image = low * (1 - mix[..., None]) + high * mix[..., None]
    image = image + rng.normal(0, 6.0, (height, width, 1)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _paste(canvas: np.ndarray, layer: ObjectLayer, left: int, top: int,
           owner: np.ndarray | None = None, owner_id: int = 0) -> tuple[float, float, float, float] | None:
    """Paint `layer` with its top-left corner at (left, top); return the box of its painted pixels, if any."""
    height, width = canvas.shape[:2]
    size = layer.image.shape[0]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + size, width), min(top + size, height)
    if x0 >= x1 or y0 >= y1:
        return None
    mask = layer.mask[y0 - top:y1 - top, x0 - left:x1 - left]
    canvas[y0:y1, x0:x1][mask] = layer.image[y0 - top:y1 - top, x0 - left:x1 - left][mask]
    if owner is not None:
        owner[y0:y1, x0:x1][mask] = owner_id
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1), float(y0 + rows[-1] + 1)


def _write_jpeg(image: np.ndarray, path: Path) -> None:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


def _lit(image: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Scale an image by a per-channel gain (a light change and colour cast)."""
    return np.clip(image.astype(np.float32) * np.asarray(gain, dtype=np.float32), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- videos


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
                 "colour": _hsv_bgr(rng.uniform(0, 1), rng.uniform(0, 0.6), rng.uniform(0.15, 0.9))}
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


def generate_videos(out_dir, *, classes: Sequence[str], n_videos: int, n_frames: int,
                    size: tuple[int, int] = (160, 120), seed: int = 0) -> dict:
    """Write out_dir/video_XXX.mp4 (mp4v, 30 fps) and out_dir/boxes.parquet.

    Each video holds one to three objects moving smoothly (translation, rotation, scale) over a static textured
    background, under a drifting global light, crossed by passing occluders. boxes.parquet has one row per
    object and frame: the box of the object's own pixels (occluders ignored) clipped to the frame.
    """
    classes = _check_classes(classes)
    width, height = map(int, size)
    if n_videos < 1 or n_frames < 1 or width < 16 or height < 16:
        raise UserError(f"synthetic: need videos >= 1, frames >= 1 and a size of at least 16x16, got "
                        f"{n_videos} videos, {n_frames} frames, {width}x{height}")
    out_dir = Path(out_dir)
    short = min(width, height)
    rows = []
    for v in tqdm(range(n_videos), desc="synthetic videos", unit="video"):
        rng = _rng(seed, _VIDEO, v)
        background = make_background(rng, height, width)
        objects = []
        for _ in range(1 + v % 3):  # one to three objects, every count present in a small world
            layer = int(rng.uniform(0.3, 0.5) * short / 0.9) + 1  # object spans 25-50% of the short side
            reach = 0.45 * layer  # keep most of the object inside the frame
            span_x, span_y = max(width / 2 - reach, 1.0), max(height / 2 - reach, 1.0)
            class_name = classes[int(rng.integers(len(classes)))]
            objects.append({
                "class_name": class_name,
                "instance": sample_instance(class_name, rng),
                "layer": layer,
                "x": width / 2 + rng.uniform(-0.3, 0.3) * span_x + _wave(rng, n_frames, 0.6 * span_x, 80),
                "y": height / 2 + rng.uniform(-0.3, 0.3) * span_y + _wave(rng, n_frames, 0.6 * span_y, 80),
                "angle": rng.uniform(-20, 20) + _wave(rng, n_frames, rng.uniform(8, 25), 100),
                "scale": 0.85 + _wave(rng, n_frames, 0.12, 100),
                "flip": bool(rng.random() < 0.5),
            })
        light = 1.0 + _wave(rng, n_frames, rng.uniform(0.1, 0.3), 120)
        cast = rng.uniform(-0.06, 0.06, 3)
        occluders = _occluder_events(rng, n_frames, width, height)

        def frames():
            for t in range(n_frames):
                frame = background.copy()
                for index, obj in enumerate(objects):
                    drawn = draw_instance(obj["instance"], obj["layer"], obj["angle"][t], obj["scale"][t], obj["flip"])
                    left = int(round(obj["x"][t] - obj["layer"] / 2))
                    top = int(round(obj["y"][t] - obj["layer"] / 2))
                    box = _paste(frame, drawn, left, top)
                    if box is not None:
                        rows.append((f"video_{v:03d}", t, index, obj["class_name"], *box))
                for event in occluders:
                    _draw_occluder(frame, event, t)
                yield _lit(frame, light[t] * (1 + cast * np.sin(np.pi * t / n_frames)))

        _write_video(frames(), (width, height), out_dir / f"video_{v:03d}.mp4")

    boxes = pd.DataFrame(rows, columns=["video", "frame", "object", "class_name", "x1", "y1", "x2", "y2"])
    boxes = boxes.astype({"frame": "int32", "object": "int32", "x1": "float32", "y1": "float32",
                          "x2": "float32", "y2": "float32"})
    write_parquet(boxes, out_dir / "boxes.parquet", sort_by=["video", "frame", "object"], group_by=["video"],
                  metadata={"seed": int(seed), "size": [width, height], "frames": int(n_frames)})
    return {"videos": n_videos, "frames": n_frames, "objects": int(boxes.groupby("video")["object"].nunique().sum())}


# ------------------------------------------------------------------------------------ part segmentation


def generate_partseg(out_dir, *, classes: Sequence[str], n_images: int, image_size: int, seed: int = 0) -> dict:
    """Write a Pascal-Part-format set: out_dir/JPEGImages/<stem>.jpg and out_dir/Annotations_Part/<stem>.mat.

    Each image holds one or two objects of `classes` (the second may partly hide the first) and sometimes a
    part-less bottle. Masks are of visible pixels; repeated parts carry Pascal-Part indices (wheel_1, wheel_2).
    """
    classes = _check_classes(classes)
    if n_images < 1 or image_size < 16:
        raise UserError(f"synthetic: need partseg_images >= 1 and image_size >= 16, got {n_images}, {image_size}")
    out_dir = Path(out_dir)
    side = int(image_size)
    n_objects = 0
    for i in tqdm(range(n_images), desc="synthetic part set", unit="image"):
        rng = _rng(seed, _PARTSEG, i)
        image = make_background(rng, side, side)
        owner = np.zeros((side, side), dtype=np.uint8)
        placed = []  # (layer, full-image instance map)
        def pick() -> str:
            return classes[int(rng.integers(len(classes)))]

        # (class, layer side as a fraction of the image, centre as a fraction of the image)
        specs = [(pick(), rng.uniform(0.55, 0.9), 0.5 + rng.uniform(-0.15, 0.15, 2))]
        if rng.random() < 0.45:
            specs.append((pick(), rng.uniform(0.35, 0.6), rng.uniform(0.2, 0.8, 2)))
        if rng.random() < 0.1:
            specs.append(("bottle", rng.uniform(0.3, 0.5), rng.uniform(0.15, 0.85, 2)))
        for class_name, fraction, centre in specs:
            layer_side = int(fraction * side)
            layer = render_object(class_name, rng, layer_side, angle=rng.uniform(-20, 20),
                                  flip=bool(rng.random() < 0.5))
            left, top = (centre * side - layer_side / 2).round().astype(int)
            if _paste(image, layer, left, top, owner, len(placed) + 1) is None:
                continue
            instances = np.zeros((side, side), dtype=np.uint8)
            _paste_map(instances, layer.instance_map, left, top)
            placed.append((layer, instances))

        objects = []
        for j, (layer, instances) in enumerate(placed):
            visible = owner == j + 1
            if not visible.any():
                continue  # wholly hidden by a later object: not in the image
            parts = []
            if layer.class_name not in _PARTLESS:
                for ident, name in enumerate(layer.instance_names, start=1):
                    mask = visible & (instances == ident)
                    if mask.any():
                        parts.append((name, mask.astype(np.uint8)))
            objects.append(PascalObject(layer.class_name, VOC_CLASSES.index(layer.class_name) + 1, visible, dict(parts)))
        n_objects += len(objects)

        stem = f"synth_{i:05d}"
        _write_jpeg(image, out_dir / "JPEGImages" / f"{stem}.jpg")
        write_annotation(out_dir / "Annotations_Part" / f"{stem}.mat", f"{stem}.jpg", objects)
    return {"images": n_images, "objects": n_objects}


def _paste_map(target: np.ndarray, source: np.ndarray, left: int, top: int) -> None:
    """Copy the nonzero labels of `source` into `target` with its top-left corner at (left, top), clipped."""
    height, width = target.shape
    size = source.shape[0]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + size, width), min(top + size, height)
    if x0 < x1 and y0 < y1:
        crop = source[y0 - top:y1 - top, x0 - left:x1 - left]
        target[y0:y1, x0:x1][crop > 0] = crop[crop > 0]


# ------------------------------------------------------------------------------------------ labelled set


def _single_object_scene(background: np.ndarray, layer: ObjectLayer, offset: np.ndarray):
    """`layer` pasted near the centre of a copy of `background`; returns the image and the object's box."""
    side = background.shape[0]
    image = background.copy()
    left, top = (side / 2 + offset * side - layer.image.shape[0] / 2).round().astype(int)
    return image, _paste(image, layer, left, top)


def generate_labelled(out_dir, *, classes: Sequence[str], per_class: int, image_size: int, seed: int = 0) -> dict:
    """Write an ImageFolder set out_dir/<class>/<i:04d>.jpg: one object near the centre, random pose and look."""
    classes = _check_classes(classes)
    if per_class < 1 or image_size < 16:
        raise UserError(f"synthetic: need labelled_per_class >= 1 and image_size >= 16, got {per_class}, {image_size}")
    out_dir = Path(out_dir)
    side = int(image_size)
    for class_name in tqdm(classes, desc="synthetic labelled set", unit="class"):
        class_id = list(CLASSES).index(class_name)  # stable across class subsets
        for i in range(per_class):
            rng = _rng(seed, _LABELLED, class_id, i)
            background = make_background(rng, side, side)
            layer = render_object(class_name, rng, int(side * rng.uniform(0.6, 0.95)), angle=rng.uniform(-35, 35),
                                  flip=bool(rng.random() < 0.5))
            image, _ = _single_object_scene(background, layer, rng.uniform(-0.1, 0.1, 2))
            _write_jpeg(image, out_dir / class_name / f"{i:04d}.jpg")
    return {"classes": len(classes), "images": len(classes) * per_class}


# ------------------------------------------------------------------------------------------ invariance sets


def _trajectory(dataset: str, class_name: str, rng: np.random.Generator, length: int, side: int) -> list[np.ndarray]:
    """The images of one local trajectory of one class: one factor varies, the rest stays fixed."""
    background = make_background(rng, side, side)
    instance = sample_instance(class_name, rng)
    angle, scale, flip = rng.uniform(-20, 20), rng.uniform(0.75, 0.95), bool(rng.random() < 0.5)
    layer_side = int(0.85 * side)
    offset = rng.uniform(-0.06, 0.06, 2)
    steps = np.linspace(0.0, 1.0, length)

    def scene(layer: ObjectLayer) -> np.ndarray:
        return _single_object_scene(background, layer, offset)[0]

    if dataset == "viewpoint":
        turn = rng.choice([-1, 1]) * rng.uniform(40, 90)
        zoom = rng.uniform(0.7, 1.1)
        return [scene(draw_instance(instance, layer_side, angle + turn * s, scale * (1 + (zoom - 1) * s), flip))
                for s in steps]
    if dataset == "instance":
        return [scene(draw_instance(sample_instance(class_name, rng), layer_side, angle, scale, flip)) for _ in steps]

    image, box = _single_object_scene(background, draw_instance(instance, layer_side, angle, scale, flip), offset)
    if dataset == "illumination":
        brightness = np.exp(np.log(rng.choice([rng.uniform(0.4, 0.7), rng.uniform(1.3, 1.7)])) * steps)
        cast = rng.uniform(-0.3, 0.3, 3)
        return [_lit(image, b * (1 + cast * s)) for b, s in zip(brightness, steps)]
    # occlusion: a bar slides in from one side until it hides up to 70% of the object's extent
    lo, hi = np.array(box[:2]), np.array(box[2:])
    colour = tuple(float(c) for c in _hsv_bgr(rng.uniform(0, 1), rng.uniform(0, 0.6), rng.uniform(0.15, 0.9)))
    edge, axis = int(rng.integers(2)), int(rng.integers(2))  # which side it enters from; 0: x, 1: y
    images = []
    for s in steps:
        covered = image.copy()
        reach = 0.7 * s * (hi[axis] - lo[axis])
        start, stop = (lo[axis] - side, lo[axis] + reach) if edge == 0 else (hi[axis] - reach, hi[axis] + side)
        if reach > 0:
            corner1 = (int(start), -1) if axis == 0 else (-1, int(start))
            corner2 = (int(stop), side) if axis == 0 else (side, int(stop))
            cv2.rectangle(covered, corner1, corner2, colour, -1)
        images.append(covered)
    return images


def generate_trajectories(out_dir, *, classes: Sequence[str], sets_per_class: int, set_length: int,
                          image_size: int, seed: int = 0) -> dict:
    """Write the four invariance datasets under out_dir/<dataset>/<class>/ and one out_dir/index.parquet.

    index.parquet: dataset, path (relative to out_dir), label (index into `classes`), class_name,
    set (unique over the whole index), frame (position in the set).
    """
    classes = _check_classes(classes)
    if sets_per_class < 1 or set_length < 1 or image_size < 16:
        raise UserError(f"synthetic: need trajectory_sets >= 1, trajectory_length >= 1 and image_size >= 16, got "
                        f"{sets_per_class}, {set_length}, {image_size}")
    out_dir = Path(out_dir)
    rows = []
    set_id = 0
    jobs = [(d, c) for d in TRAJECTORY_DATASETS for c in classes]
    for dataset, class_name in tqdm(jobs, desc="synthetic invariance sets", unit="set group"):
        dataset_id, class_id = TRAJECTORY_DATASETS.index(dataset), list(CLASSES).index(class_name)
        for s in range(sets_per_class):
            rng = _rng(seed, _TRAJECTORY, dataset_id, class_id, s)
            for frame, image in enumerate(_trajectory(dataset, class_name, rng, set_length, int(image_size))):
                relative = f"{dataset}/{class_name}/{s:04d}_{frame:02d}.jpg"
                _write_jpeg(image, out_dir / relative)
                rows.append((dataset, relative, classes.index(class_name), class_name, set_id, frame))
            set_id += 1
    index = pd.DataFrame(rows, columns=["dataset", "path", "label", "class_name", "set", "frame"])
    index = index.astype({"label": "int64", "set": "int64", "frame": "int64"})
    write_parquet(index, out_dir / "index.parquet", sort_by=["dataset", "set", "frame"], group_by=["dataset"],
                  metadata={"seed": int(seed), "classes": classes})
    return {"sets": set_id, "images": len(rows)}
