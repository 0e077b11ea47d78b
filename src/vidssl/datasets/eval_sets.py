"""Readers of the invariance evaluation sets: the synthetic trajectories, ALOI-style and GOT-10k-style roots.

Every reader returns ``(frame, skipped)``: a DataFrame with the columns of `COLUMNS` (one row per
image; ``set`` groups the transformed views of one object and is unique within the dataset; the box
x1, y1, x2, y2 is in pixels, NaN meaning the whole image) and a list of ``{"item", "reason"}`` for
everything left out, so that nothing is dropped silently.
"""
from __future__ import annotations

import fnmatch
import math
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from vidssl.errors import UserError
from vidssl.images import IMAGE_SUFFIXES, read_image
from vidssl.io import read_parquet

COLUMNS = ["dataset", "path", "label", "class_name", "set", "x1", "y1", "x2", "y2"]
ALOI_PATTERNS = {"view": ("*_r*",), "illum": ("*_l*", "*_i*")}  # viewpoint; illumination direction and colour
GOT10K_FILES = ("groundtruth.txt", "cover.label")

Skipped = list[dict[str, str]]


def _frame(rows: list[dict]) -> pd.DataFrame:
    """Rows -> a DataFrame with exactly COLUMNS and their dtypes (also when empty)."""
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"dataset": str, "path": str, "label": "int64", "class_name": str, "set": "int64",
                         "x1": "float64", "y1": "float64", "x2": "float64", "y2": "float64"})


def _numbered(rows: list[dict]) -> pd.DataFrame:
    """Rows with class_name -> frame with label = rank of class_name among the sorted distinct names."""
    names = sorted({row["class_name"] for row in rows})
    return _frame([{**row, "label": names.index(row["class_name"])} for row in rows])


def _root(root, what: str) -> Path:
    root = Path(root).absolute()
    if not root.is_dir():
        raise UserError(f"{what} root {root}: not a directory")
    return root


def _natural_key(name: str) -> tuple:
    """Numeric folder names in numeric order (ALOI objects 1, 2, ..., 10), others after them by name."""
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _subfolders(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: _natural_key(p.name))


def _class_table(root: Path, key: str) -> dict[str, str] | None:
    """root/classes.csv as {key value: class_name}, or None when there is no such file."""
    path = root / "classes.csv"
    if not path.exists():
        return None
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {key, "class_name"} <= set(table.columns):
        raise UserError(f"{path}: needs the columns {key},class_name (found {','.join(table.columns)})")
    return dict(zip(table[key].str.strip(), table["class_name"].str.strip()))


def synthetic_index(root, datasets) -> tuple[pd.DataFrame, Skipped]:
    """The synthetic invariance sets of `datasets`, from root/index.parquet (written by
    vidssl.synthetic.generate_trajectories: dataset, path relative to root, label, class_name, set,
    frame). Labels and sets are kept as written; images missing on disk are skipped with a reason."""
    root = _root(root, "synthetic trajectories")
    index_path = root / "index.parquet"
    if not index_path.exists():
        raise UserError(f"{index_path}: missing; generate the synthetic trajectories first")
    index = read_parquet(index_path)
    missing_columns = {"dataset", "path", "label", "class_name", "set", "frame"} - set(index.columns)
    if missing_columns:
        raise UserError(f"{index_path}: missing columns {sorted(missing_columns)}")
    available = sorted(index["dataset"].unique())
    unknown = sorted(set(datasets) - set(available))
    if unknown:
        raise UserError(f"{index_path}: unknown datasets {unknown}; available: {', '.join(available)}")
    index = index[index["dataset"].isin(list(datasets))].sort_values(["dataset", "set", "frame"], kind="stable")
    rows, skipped = [], []
    for item in index.itertuples(index=False):
        path = str(root / item.path)
        if not os.path.exists(path):
            skipped.append({"item": path, "reason": "image listed in index.parquet is missing"})
            continue
        rows.append({"dataset": item.dataset, "path": path, "label": item.label, "class_name": item.class_name,
                     "set": item.set, "x1": math.nan, "y1": math.nan, "x2": math.nan, "y2": math.nan})
    return _frame(rows), skipped


def aloi_index(root, *, kind: str) -> tuple[pd.DataFrame, Skipped]:
    """An ALOI-style root: one folder per object (folder name = object id), its images inside.

    kind "view" reads the viewpoint images (``<object>_r<angle>.png|jpg``, e.g. ``123_r35.png``);
    kind "illum" the illumination images, direction ``*_l*`` and colour ``*_i*``. The dataset is
    named ``aloi_<kind>``. Each object folder is one set (set ids number the sorted object folders).
    Labels: when ``root/classes.csv`` (columns object,class_name) exists, each object takes its class
    from it and objects it does not list are skipped; otherwise each object is its own class, named
    after its folder. Labels number the sorted class names. Objects without matching images are skipped.
    """
    if kind not in ALOI_PATTERNS:
        raise UserError(f"ALOI kind {kind!r}: choose one of {', '.join(ALOI_PATTERNS)}")
    root = _root(root, "ALOI")
    classes = _class_table(root, "object")
    rows, skipped = [], []
    for set_id, folder in enumerate(_subfolders(root)):
        images = sorted(
            p for p in folder.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and any(fnmatch.fnmatchcase(p.name, pat) for pat in ALOI_PATTERNS[kind])
        )
        if not images:
            skipped.append({"item": str(folder), "reason": f"no {kind} images ({' or '.join(ALOI_PATTERNS[kind])})"})
            continue
        if classes is not None and folder.name not in classes:
            skipped.append({"item": str(folder), "reason": f"object not listed in {root / 'classes.csv'}"})
            continue
        class_name = folder.name if classes is None else classes[folder.name]
        rows += [{"dataset": f"aloi_{kind}", "path": str(image), "class_name": class_name, "set": set_id,
                  "x1": math.nan, "y1": math.nan, "x2": math.nan, "y2": math.nan} for image in images]
    return _numbered(rows), skipped


def _read_video(folder: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Frames, boxes (x, y, w, h per frame) and cover levels of one GOT-10k video; ValueError says what is wrong."""
    for name in GOT10K_FILES:
        if not (folder / name).exists():
            raise ValueError(f"missing {name}")
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    box_lines = [line for line in (folder / "groundtruth.txt").read_text().splitlines() if line.strip()]
    cover_lines = [line for line in (folder / "cover.label").read_text().splitlines() if line.strip()]
    if not len(frames) == len(box_lines) == len(cover_lines):
        raise ValueError(f"line count mismatch: {len(frames)} frames, {len(box_lines)} boxes in groundtruth.txt, "
                         f"{len(cover_lines)} levels in cover.label")
    try:
        boxes = np.array([[float(v) for v in line.split(",")] for line in box_lines])
        covers = np.array([int(line) for line in cover_lines])
    except ValueError as error:
        raise ValueError(f"unparsable groundtruth.txt or cover.label ({error})") from None
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError("groundtruth.txt lines must be x,y,w,h")
    if covers.min() < 0 or covers.max() > 8:
        raise ValueError("cover.label levels must be integers 0-8")
    return frames, boxes, covers


def _object_class(folder: Path, classes: dict[str, str] | None) -> str:
    """The video's class: classes.csv, else meta_info.ini's object_class, else "object"."""
    if classes is not None:
        if folder.name not in classes:
            raise ValueError("video not listed in classes.csv")
        return classes[folder.name]
    meta = folder / "meta_info.ini"
    if meta.exists():
        match = re.search(r"^\s*object_class\s*:\s*(.+?)\s*$", meta.read_text(errors="replace"), re.MULTILINE)
        if match:
            return match.group(1)
    return "object"


def got10k_index(root, *, min_cover_span: int = 4) -> tuple[pd.DataFrame, Skipped]:
    """A GOT-10k-style root: per video a folder of frames (00000001.jpg, ...), groundtruth.txt
    (x,y,w,h per frame, comma separated) and cover.label (occlusion level 0-8 per frame).

    Dataset ``got10k_occlusion``: per video, for each distinct cover level the first frame with that
    level and a box of positive width and height, cropped to its box (x1=x, y1=y, x2=x+w, y2=y+h).
    A video is kept when it has at least `min_cover_span` such distinct levels (the number of
    distinct levels, not max - min). Each video is one set (set ids number the sorted video folders).
    Labels: ``root/classes.csv`` (columns video,class_name) when present (unlisted videos skipped),
    else the ``object_class: <name>`` line of the video's meta_info.ini, else the class "object".
    Videos with a missing file, a line-count mismatch or unparsable lines are skipped with the reason.
    """
    root = _root(root, "GOT-10k")
    classes = _class_table(root, "video")
    rows, skipped = [], []
    for set_id, folder in enumerate(_subfolders(root)):
        try:
            frames, boxes, covers = _read_video(folder)
            class_name = _object_class(folder, classes)
        except (ValueError, OSError) as error:
            skipped.append({"item": str(folder), "reason": str(error)})
            continue
        usable = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        levels = np.unique(covers[usable])
        if levels.size < min_cover_span:
            skipped.append({"item": str(folder), "reason": f"{levels.size} distinct cover levels with a box "
                                                           f"(< min_cover_span {min_cover_span})"})
            continue
        for level in levels:
            first = int(np.flatnonzero(usable & (covers == level))[0])
            x, y, w, h = boxes[first]
            rows.append({"dataset": "got10k_occlusion", "path": str(frames[first]), "class_name": class_name,
                         "set": set_id, "x1": x, "y1": y, "x2": x + w, "y2": y + h})
    return _numbered(rows), skipped


def load_image(row, image_size: int) -> np.ndarray:
    """The image of an index row (a Series or mapping with path, x1, y1, x2, y2) as RGB uint8,
    image_size x image_size: grayscale becomes three channels, the box (when none of its
    coordinates is NaN) is clipped to the image and cropped, then the result is resized."""
    path = str(row["path"])
    image = read_image(path, rgb=True)
    if image is None:
        raise UserError(f"{path}: missing or not a readable image")
    box = [float(row[key]) for key in ("x1", "y1", "x2", "y2")]
    if not any(math.isnan(v) for v in box):
        height, width = image.shape[:2]
        x1, y1 = max(math.floor(box[0]), 0), max(math.floor(box[1]), 0)
        x2, y2 = min(math.ceil(box[2]), width), min(math.ceil(box[3]), height)
        if x2 <= x1 or y2 <= y1:
            raise UserError(f"{path}: box {box} lies outside the {width}x{height} image")
        image = image[y1:y2, x1:x2]
    shrinking = image.shape[0] > image_size or image.shape[1] > image_size
    return cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
