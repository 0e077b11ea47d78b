"""Pascal3D+ (release 1.1) instance sets as the paper's authors build them (senthilps8/demystifyssl,
extract_features/pascal3d): every object cropped to its box, grouped by coarse viewpoint.

Objects, in the authors' order: for each class (named by the sorted ``Image_sets/<class>_imagenet_train.txt``), object 0
of every image of ``<class>_imagenet_train.txt`` then ``<class>_imagenet_val.txt``; then, for each class, the objects of
``<class>_pascal.txt`` (lines ``<image> <object index>``, the index 0-based as the authors read it). Annotations:
``Annotations/<class>_{imagenet,pascal}/<image>.mat``, ``record.objects(i)`` with ``bbox`` (x1 y1 x2 y2) and
``viewpoint.azimuth_coarse`` / ``elevation_coarse`` in degrees.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from vidssl.contracts import BOX
from vidssl.core.errors import UserError
from vidssl.core.names import is_number, read_lines
from vidssl.datasets.eval_sets import Skipped, existing_root, numbered
from vidssl.datasets.matlab import load_mat

AZIMUTH_BINS = 6


class _Entry(NamedTuple):
    class_name: str
    image: Path
    annotation: Path
    index: int


def azimuth_bin(azimuth: float) -> int:
    """Six 30-degree bins of the azimuth modulo 180: an object and its back view share a bin."""
    return int((azimuth % 180) // 30)


def elevation_bin(elevation: float) -> int:
    """Three 30-degree bins of the elevation modulo 90 (Python's modulo: -10 degrees falls in the bin of 80)."""
    return int((elevation % 90) // 30)


def viewpoint_instance_sets(class_names: list[str], azimuth_bins: list[int]) -> np.ndarray:
    """The authors' "viewpointchange": within a class, in object order, the j-th object of every azimuth bin belongs
    to set j (different instances from different viewpoints); a class's sets start after the previous classes'."""
    sets = np.empty(len(class_names), dtype=np.int64)
    offset = 0
    for name in sorted(set(class_names)):
        counts = [0] * AZIMUTH_BINS
        for i in (i for i, other in enumerate(class_names) if other == name):
            sets[i] = offset + counts[azimuth_bins[i]]
            counts[azimuth_bins[i]] += 1
        offset += max(counts)
    return sets


def instance_sets(class_names: list[str], azimuth_bins: list[int], elevation_bins: list[int]) -> np.ndarray:
    """The authors' "viewpointconstant_instance": within a class, the objects sharing (azimuth bin, elevation bin)
    form one set (different instances, one viewpoint), numbered in sorted bin order after the previous classes'."""
    sets = np.empty(len(class_names), dtype=np.int64)
    offset = 0
    for name in sorted(set(class_names)):
        members = [i for i, other in enumerate(class_names) if other == name]
        views = sorted({(azimuth_bins[i], elevation_bins[i]) for i in members})
        for i in members:
            sets[i] = offset + views.index((azimuth_bins[i], elevation_bins[i]))
        offset += len(views)
    return sets


def pascal3d_index(root, *, dataset: str) -> tuple[pd.DataFrame, Skipped]:
    """`dataset` "pascal3d_viewpoint_instance" or "pascal3d_instance" (see the set functions above); class = the
    Pascal3D+ class, labels number the sorted classes. An object whose image or annotation is missing, whose index is
    out of range, or whose annotation lacks a box or a coarse viewpoint, is skipped with the reason."""
    if dataset not in ("pascal3d_viewpoint_instance", "pascal3d_instance"):
        raise UserError(f"Pascal3D+ dataset {dataset!r}: choose pascal3d_viewpoint_instance or pascal3d_instance")
    root = existing_root(root, "Pascal3D+")
    entries, skipped = _entries(root)
    kept, boxes, azimuths, elevations, records = [], [], [], [], {}
    for entry in entries:
        try:
            box, azimuth, elevation = _object(entry, records)
        except ValueError as error:
            skipped.append({"item": f"{entry.annotation} object {entry.index}", "reason": str(error)})
            continue
        kept.append(entry)
        boxes.append(box)
        azimuths.append(azimuth_bin(azimuth))
        elevations.append(elevation_bin(elevation))
    names = [entry.class_name for entry in kept]
    if dataset == "pascal3d_viewpoint_instance":
        sets = viewpoint_instance_sets(names, azimuths)
    else:
        sets = instance_sets(names, azimuths, elevations)
    rows = [{"dataset": dataset, "path": str(entry.image), "class_name": entry.class_name, "set": int(set_id),
             **dict(zip(BOX, box))}
            for entry, box, set_id in zip(kept, boxes, sets)]
    return numbered(rows), skipped


def _entries(root: Path) -> tuple[list[_Entry], Skipped]:
    lists = root / "Image_sets"
    classes = [path.name.split("_")[0] for path in sorted(lists.glob("*_imagenet_train.txt"))]
    if not classes:
        raise UserError(f"Pascal3D+ root {root}: no Image_sets/<class>_imagenet_train.txt")
    entries, skipped = [], []
    for name in classes:
        for split in ("train", "val"):
            for line in _lines(lists / f"{name}_imagenet_{split}.txt", skipped):
                entries.append(_Entry(name, root / "Images" / f"{name}_imagenet" / f"{line.split()[0]}.JPEG",
                                      root / "Annotations" / f"{name}_imagenet" / f"{line.split()[0]}.mat", 0))
    for name in classes:
        listing = lists / f"{name}_pascal.txt"
        for line in _lines(listing, skipped):
            fields = line.split()
            if len(fields) < 2 or not is_number(fields[1]):
                skipped.append({"item": f"{listing}: {line}", "reason": "not '<image> <object index>'"})
                continue
            entries.append(_Entry(name, root / "Images" / f"{name}_pascal" / f"{fields[0]}.jpg",
                                  root / "Annotations" / f"{name}_pascal" / f"{fields[0]}.mat", int(fields[1])))
    return entries, skipped


def _lines(path: Path, skipped: Skipped) -> list[str]:
    if not path.is_file():
        skipped.append({"item": str(path), "reason": "image list missing"})
        return []
    return read_lines(path)


def _object(entry: _Entry, records: dict) -> tuple[list[float], float, float]:
    """Box (x1, y1, x2, y2), coarse azimuth and elevation of one object; ValueError says why it is unusable."""
    if not entry.image.is_file():
        raise ValueError(f"image {entry.image} missing")
    if entry.annotation not in records:
        records[entry.annotation] = _objects(entry.annotation)
    objects = records[entry.annotation]
    if entry.index >= objects.shape[1]:
        raise ValueError(f"object index {entry.index} out of range ({objects.shape[1]} objects)")
    item = objects[0, entry.index]
    box = np.asarray(getattr(item, "bbox", []), dtype=float).ravel()
    if box.size != 4:
        raise ValueError("annotation has no bbox")
    viewpoint = getattr(item, "viewpoint", None)
    if not isinstance(viewpoint, np.ndarray) or viewpoint.size == 0:
        raise ValueError("annotation has no viewpoint")
    angles = [np.asarray(getattr(viewpoint[0, 0], key, []), dtype=float).ravel()
              for key in ("azimuth_coarse", "elevation_coarse")]
    if any(angle.size != 1 or not np.isfinite(angle[0]) for angle in angles):
        raise ValueError("viewpoint lacks azimuth_coarse or elevation_coarse")
    return box.tolist(), float(angles[0][0]), float(angles[1][0])


def _objects(path: Path) -> np.ndarray:
    """``record.objects`` (1 x n structs) of one annotation file."""
    if not path.is_file():
        raise ValueError(f"annotation {path} missing")
    try:
        record = load_mat(path, struct_as_record=False)["record"][0, 0]
        return np.atleast_2d(record.objects)
    except (UserError, KeyError, IndexError, AttributeError) as error:
        raise ValueError(f"annotation {path} unreadable ({error})") from None
