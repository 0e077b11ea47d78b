"""The object classes of the synthetic world: per class a template of named parts in a canonical frame.

Templates are polygons, ellipses and thick lines in a canonical frame spanning [-1, 1]; `CLASSES` lists each
class's part names in label order.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from vidssl.core.errors import UserError


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
TEMPLATES: dict[str, list[Stroke]] = {
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
PARTLESS = ("bottle",)


def part_names(strokes: list[Stroke]) -> list[str]:
    """The distinct part names of `strokes`, in drawing order."""
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


def check_classes(classes: Sequence[str]) -> list[str]:
    """`classes` as a list, or a UserError when it is empty or names a class outside CLASSES."""
    classes = list(classes)
    unknown = [c for c in classes if c not in CLASSES]
    if not classes or unknown:
        raise UserError(f"synthetic.classes: unknown or empty {unknown or classes}; choose from {sorted(CLASSES)}")
    return classes
