"""Drawing the synthetic world: object instances from the class templates, backgrounds, pasting and light.

Drawing rasterises part *instances* into one label map and colours the image from that map, so the part masks
are exact by construction. Every item draws its randomness from its own seed stream (seed, kind, ids).
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from vidssl.core.errors import UserError
from vidssl.core.io import atomic_path
from vidssl.synthetic.templates import CLASSES, TEMPLATES, Stroke, check_classes, part_names

# Seed-stream tags: one per kind of generated item, so streams never collide.
VIDEO_STREAM, PARTSEG_STREAM, LABELLED_STREAM, TRAJECTORY_STREAM, MATERIAL_STREAM = 1, 2, 3, 4, 5
MATERIALS = ("instance", "class")

_JPEG_QUALITY = 95
_SUBPIXEL_BITS = 4  # cv2 drawing `shift`: vertices carry 1/16-pixel precision


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
class Material:
    """A texture family: pattern kind (0 smooth noise, 1 stripes, 2 spots), its scale (noise cells, or cycles across
    the object) and shading gain. An instance of a material varies only the pattern's draw, orientation and phase."""

    kind: int
    scale: float
    gain: float


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


def item_rng(seed: int, stream: int, *ids: int) -> np.random.Generator:
    """The generator of one item: its own stream, so no item depends on how many others are drawn."""
    return np.random.default_rng([int(seed), stream, *map(int, ids)])


def hsv_bgr(h: float, s: float, v: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return np.array([b, g, r], dtype=np.float32) * 255.0


def _draw_material(rng: np.random.Generator) -> Material:
    kind = int(rng.integers(3))
    scale = float(rng.integers(3, 8)) if kind == 0 else float(rng.uniform(2.5, 7.0))
    return Material(kind, scale, float(rng.uniform(0.1, 0.3)))


def class_materials(materials: str, seed: int):
    """Per class name, the material its instances share, or None: `instance` (each instance draws its own texture,
    so texture tells instances apart but not classes) or `class` (the same distribution of textures, drawn once per
    class from the world seed, as fur, feathers and paint set real classes apart)."""
    if materials not in MATERIALS:
        raise UserError(f"synthetic.materials: {materials!r} is not one of {', '.join(MATERIALS)}")
    if materials == "instance":
        return lambda class_name: None
    drawn = {name: _draw_material(item_rng(seed, MATERIAL_STREAM, i)) for i, name in enumerate(sorted(TEMPLATES))}
    return drawn.__getitem__


def _texture(rng: np.random.Generator, material: Material | None, side: int = 48) -> np.ndarray:
    """A smooth noise, stripe or spot pattern in [-1, 1] of `material`, or of one drawn here (None), interleaved with
    the pattern's own draws in the order the default world has always used, so its bytes stay the same."""
    kind = material.kind if material else rng.integers(3)
    if kind == 0:
        cells = int(material.scale) if material else int(rng.integers(3, 8))
        pattern = cv2.resize(rng.uniform(-1, 1, (cells, cells)).astype(np.float32), (side, side),
                             interpolation=cv2.INTER_CUBIC)
    else:
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
        theta = rng.uniform(0, np.pi)
        freq = material.scale if material else rng.uniform(2.5, 7.0)
        pattern = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 2 * np.pi))
        if kind == 2:
            pattern = pattern * np.sin(2 * np.pi * freq * (-xx * np.sin(theta) + yy * np.cos(theta)))
    return np.clip(pattern, -1, 1).astype(np.float32)


def sample_instance(class_name: str, rng: np.random.Generator, colour: Sequence[float] | None = None,
                    jitter: float = 1.0, material: Material | None = None) -> Instance:
    """Draw an instance of `class_name`: shape jitter, part colours (main colour `colour`, BGR 0-255) and texture
    (of `material`; None: a material of its own)."""
    if class_name not in TEMPLATES:
        raise UserError(f"synthetic: unknown class {class_name!r}; choose from {sorted(CLASSES)}")
    template = TEMPLATES[class_name]
    parts = CLASSES.get(class_name, part_names(template))
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
        main = hsv_bgr(hue, sat, val)
    else:
        main = np.asarray(colour, dtype=np.float32).reshape(3)
        b, g, r = (main / 255.0).tolist()
        hue = colorsys.rgb_to_hsv(r, g, b)[0]
    colours = np.zeros((len(parts) + 1, 3), dtype=np.float32)
    colours[1] = main
    for k in range(2, len(parts) + 1):  # distinct hues so part boundaries are visible
        colours[k] = hsv_bgr(hue + 0.16 * (k - 1) + rng.normal(0, 0.03),
                              rng.uniform(0.35, 0.9), rng.uniform(0.3, 0.95))
    texture = _texture(rng, material)
    gain = material.gain if material else float(rng.uniform(0.1, 0.3))
    return Instance(class_name, tuple(strokes), tuple(names), stroke_ids, instance_parts, colours, texture, gain)


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
                  colour: Sequence[float] | None = None, flip: bool = False,
                  material: Material | None = None) -> ObjectLayer:
    """A fresh random instance of `class_name` (of `material`) drawn on a size x size transparent layer."""
    return draw_instance(sample_instance(class_name, rng, colour, material=material), size, angle, scale, flip)


def make_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured BGR background: smooth colour noise, a gradient or stripes, plus fine grain."""
    low = hsv_bgr(rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.25, 0.8))
    high = hsv_bgr(rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.25, 0.8))
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


def make_leaves_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A dead-leaves BGR background: overlapping discs and rectangles, sizes drawn from a power law (many small, few
    large), hues around the background's own, plus fine grain: shapes and edges at every scale, which colour jitter
    does not remove, and a palette that tells one background from another."""
    hue = rng.uniform(0, 1)
    image = np.empty((height, width, 3), np.float32)
    image[:] = hsv_bgr(hue, rng.uniform(0.1, 0.6), rng.uniform(0.2, 0.8))
    smallest, largest = 3.0, 0.3 * max(height, width)
    for _ in range(int(height * width / 60)):
        # inverse-CDF sample of p(r) ~ r^-3 on [smallest, largest]
        radius = 1.0 / np.sqrt(rng.uniform(1 / largest ** 2, 1 / smallest ** 2))
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        colour = hsv_bgr(hue + rng.normal(0, 0.12), rng.uniform(0.1, 0.8), rng.uniform(0.15, 0.95)).tolist()
        if rng.random() < 0.5:
            cv2.circle(image, (int(x), int(y)), int(round(radius)), colour, -1, cv2.LINE_AA)
        else:
            half = radius * rng.uniform(0.5, 1.0, 2)
            cv2.rectangle(image, (int(x - half[0]), int(y - half[1])), (int(x + half[0]), int(y + half[1])), colour, -1)
    image = image + rng.normal(0, 6.0, (height, width, 1)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def paste(canvas: np.ndarray, layer: ObjectLayer, left: int, top: int, *, owner: np.ndarray | None = None,
          owner_id: int = 0, instances: np.ndarray | None = None) -> tuple[float, float, float, float] | None:
    """Paint `layer` with its top-left corner at (left, top), clipped; return the box of its painted pixels, if any.

    Where given, `owner` gets `owner_id` and `instances` the layer's instance labels on the painted pixels.
    """
    height, width = canvas.shape[:2]
    size = layer.image.shape[0]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + size, width), min(top + size, height)
    if x0 >= x1 or y0 >= y1:
        return None
    inside = np.s_[y0 - top:y1 - top, x0 - left:x1 - left]
    mask = layer.mask[inside]
    canvas[y0:y1, x0:x1][mask] = layer.image[inside][mask]
    if owner is not None:
        owner[y0:y1, x0:x1][mask] = owner_id
    if instances is not None:
        instances[y0:y1, x0:x1][mask] = layer.instance_map[inside][mask]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1), float(y0 + rows[-1] + 1)


def write_jpeg(image: np.ndarray, path: Path) -> None:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


def lit(image: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Scale an image by a per-channel gain (a light change and colour cast)."""
    return np.clip(image.astype(np.float32) * np.asarray(gain, dtype=np.float32), 0, 255).astype(np.uint8)


def single_object_scene(background: np.ndarray, layer: ObjectLayer, offset: np.ndarray):
    """`layer` pasted near the centre of a copy of `background`; returns the image and the object's box."""
    side = background.shape[0]
    image = background.copy()
    left, top = (side / 2 + offset * side - layer.image.shape[0] / 2).round().astype(int)
    return image, paste(image, layer, left, top)


def image_set(out_dir, *, classes: Sequence[str], count_key: str, count: int, image_size: int, materials: str,
              seed: int) -> tuple[list[str], object, Path, int]:
    """What a generated image set starts from: its checked classes, their materials, its folder and image side."""
    classes = check_classes(classes)
    if count < 1 or image_size < 16:
        raise UserError(f"synthetic: need {count_key} >= 1 and image_size >= 16, got {count}, {image_size}")
    return classes, class_materials(materials, seed), Path(out_dir), int(image_size)
