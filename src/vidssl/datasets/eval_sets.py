"""The shared layout of the evaluation image lists, the synthetic invariance sets, and image loading.

Every reader (here, in `aloi`, `got10k`, `pascal3d` and `labelled`) returns ``(frame, skipped)``: a DataFrame
with the columns of `vidssl.contracts.EVAL_INDEX` (one row per image; ``set`` groups the transformed views of one
object and is unique within the dataset, -1 where a dataset has no sets; the box is in pixels, NaN meaning the whole
image) and a list of ``{"item", "reason"}`` for everything left out, so that nothing is dropped
silently.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from vidssl.contracts import BOX, EVAL_INDEX, STR, TRAJECTORY_INDEX
from vidssl.core.errors import UserError
from vidssl.core.images import IMAGE_SUFFIXES, read_image

WHOLE_IMAGE = dict.fromkeys(BOX, math.nan)
# Strings are cast with str, so that a name given as a number is stored as text.
_DTYPES = {name: str if dtype is STR else dtype for name, dtype in EVAL_INDEX.columns.items()}

Skipped = list[dict[str, str]]


def index_frame(rows: list[dict], extra: list[str] = ()) -> pd.DataFrame:
    """Rows -> a DataFrame with exactly EVAL_INDEX's columns (then `extra`) and their dtypes (also when empty)."""
    return pd.DataFrame(rows, columns=[*EVAL_INDEX.names, *extra]).astype(_DTYPES)


def numbered(rows: list[dict], key: Callable[[str], object] = str, extra: list[str] = ()) -> pd.DataFrame:
    """Rows with class_name -> frame with label = rank of class_name among the distinct names sorted by `key`."""
    rank = {name: i for i, name in enumerate(sorted({row["class_name"] for row in rows}, key=key))}
    return index_frame([{**row, "label": rank[row["class_name"]]} for row in rows], extra)


def existing_root(root, what: str) -> Path:
    root = Path(root).absolute()
    if not root.is_dir():
        raise UserError(f"{what} root {root}: not a directory")
    return root


def image_files(folder: Path) -> list[Path]:
    """The images directly inside `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def synthetic_index(root, datasets) -> tuple[pd.DataFrame, Skipped]:
    """The synthetic invariance sets of `datasets`, from root/index.parquet (written by
    vidssl.synthetic.generate_trajectories: dataset, path relative to root, label, class_name, set,
    frame). Labels and sets are kept as written; images missing on disk are skipped with a reason."""
    root = existing_root(root, "synthetic trajectories")
    index_path = root / "index.parquet"
    if not index_path.exists():
        raise UserError(f"{index_path}: missing; generate the synthetic trajectories first")
    index = TRAJECTORY_INDEX.read(index_path)
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
                     "set": item.set, **WHOLE_IMAGE})
    return index_frame(rows), skipped


def load_image(row, image_size: int) -> np.ndarray:
    """The image of an index row (a Series or mapping with path, x1, y1, x2, y2) as RGB uint8,
    image_size x image_size: grayscale becomes three channels, the box (when none of its
    coordinates is NaN) is clipped to the image and cropped, then the result is resized."""
    path = str(row["path"])
    image = read_image(path, rgb=True)
    if image is None:
        raise UserError(f"{path}: missing or not a readable image")
    box = [float(row[key]) for key in BOX]
    if not any(math.isnan(v) for v in box):
        height, width = image.shape[:2]
        x1, y1 = max(math.floor(box[0]), 0), max(math.floor(box[1]), 0)
        x2, y2 = min(math.ceil(box[2]), width), min(math.ceil(box[3]), height)
        if x2 <= x1 or y2 <= y1:
            raise UserError(f"{path}: box {box} lies outside the {width}x{height} image")
        image = image[y1:y2, x1:x2]
    shrinking = image.shape[0] > image_size or image.shape[1] > image_size
    return cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
