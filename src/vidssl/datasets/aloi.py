"""ALOI's three invariance sets as the paper's authors build them: each of objects 1 ... 1000 is one set and its own
class.

The root holds the three "red2" archives as the authors unpack them, one folder per transformation, each with object
folders ``1`` ... ``1000`` of images (``<obj>_r<angle>.png`` views, ``<obj>_i<temp>.png`` colour temperatures,
``<obj>_l<l>c<c>.png`` light directions).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from vidssl.datasets.eval_sets import WHOLE_IMAGE, Skipped, existing_root, image_files, numbered

OBJECTS = range(1, 1001)


def aloi_index(root, *, dataset: str) -> tuple[pd.DataFrame, Skipped]:
    """One transformation folder (e.g. ``<ALOI root>/ALOI_viewpoint``) as the image list of `dataset`.

    Objects 1 ... 1000 are read in that order; object n is set n and class "n", labels number the objects present
    in numeric order. Every image of an object folder belongs to its set. A missing object folder, one without
    images, and files that are not images are skipped with the reason.
    """
    root = existing_root(root, f"ALOI {dataset}")
    rows, skipped = [], []
    for number in OBJECTS:
        folder = root / str(number)
        if not folder.is_dir():
            skipped.append({"item": str(folder), "reason": "object folder missing"})
            continue
        images = image_files(folder)
        skipped += [{"item": str(path), "reason": "not an image"} for path in _other_files(folder, images)]
        if not images:
            skipped.append({"item": str(folder), "reason": "no images"})
            continue
        rows += [{"dataset": dataset, "path": str(image), "class_name": str(number), "set": number, **WHOLE_IMAGE}
                 for image in images]
    return numbered(rows, key=int), skipped


def _other_files(folder: Path, images: list[Path]) -> list[Path]:
    return sorted(set(p for p in folder.iterdir() if p.is_file()) - set(images))
