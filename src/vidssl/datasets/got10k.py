"""GOT-10k's occlusion sets as the paper's authors build them (senthilps8/demystifyssl, extract_features/GOT).

The training root lists its videos in ``list.txt``; each video folder holds ``00000001.jpg`` ..., ``groundtruth.txt``
(one ``x,y,w,h`` line per frame), ``cover.label`` (one occlusion level 0-8 per frame) and ``meta_info.ini``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vidssl.contracts import BOX
from vidssl.core.errors import UserError
from vidssl.core.names import read_lines
from vidssl.datasets.eval_sets import Skipped, existing_root, numbered

DATASET = "got10k_occlusion"
AUTHORS_SEED = 1992  # the authors' np.random.seed: with it, the frames drawn are theirs


def got10k_index(root, *, seed: int, min_cover_span: int = 4) -> tuple[pd.DataFrame, Skipped]:
    """The occlusion sets of the videos of ``root/list.txt``, in its order.

    A video is kept when the largest minus the smallest of its distinct cover levels is at least `min_cover_span`.
    For each distinct level, in ascending order, one frame with that level is drawn by
    ``RandomState(seed).choice`` (one generator for the whole list, drawing only for kept videos, as the authors'
    seeded global numpy generator does) and cropped to its box (x1 = x, y1 = y, x2 = x + w, y2 = y + h). Each kept
    video is one set (set ids count the kept videos); its class is the ``object_class`` of its meta_info.ini, spaces
    written as underscores; labels number the sorted class names. Videos with a missing or inconsistent file are
    skipped with the reason, and so is a drawn frame whose image is missing or whose box is empty.
    """
    root = existing_root(root, "GOT-10k")
    listing = root / "list.txt"
    if not listing.is_file():
        raise UserError(f"GOT-10k root {root}: no list.txt (the training split's list of videos)")
    generator = np.random.RandomState(seed)
    rows, skipped, kept = [], [], 0
    for video in read_lines(listing):
        folder = root / video
        try:
            boxes, covers, class_name = _read_video(folder)
        except (ValueError, OSError) as error:
            skipped.append({"item": str(folder), "reason": str(error)})
            continue
        levels = np.unique(covers)
        if levels.max() - levels.min() < min_cover_span:
            skipped.append({"item": str(folder), "reason": f"cover levels span {levels.max() - levels.min()} "
                                                           f"(max - min < {min_cover_span})"})
            continue
        for level in levels:
            frame = int(generator.choice(np.flatnonzero(covers == level)))
            row, reason = _crop_row(folder, frame, boxes[frame], class_name, kept)
            if reason:
                skipped.append({"item": row["path"], "reason": reason})
            else:
                rows.append(row)
        kept += 1
    return numbered(rows), skipped


def _crop_row(folder: Path, frame: int, box: np.ndarray, class_name: str, set_id: int) -> tuple[dict, str | None]:
    """The index row of one drawn frame, and why it cannot be used (None when it can)."""
    x, y, w, h = (float(v) for v in box)
    row = {"dataset": DATASET, "path": str(folder / f"{frame + 1:08d}.jpg"), "class_name": class_name,
           "set": set_id, **dict(zip(BOX, (x, y, x + w, y + h)))}
    if w <= 0 or h <= 0:
        return row, f"drawn frame has an empty box ({x:g},{y:g},{w:g},{h:g})"
    if not Path(row["path"]).is_file():
        return row, "drawn frame's image is missing"
    return row, None


def _read_video(folder: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Boxes (x, y, w, h per frame), cover levels and class of one video; ValueError says what is wrong."""
    for name in ("groundtruth.txt", "cover.label", "meta_info.ini"):
        if not (folder / name).is_file():
            raise ValueError(f"missing {name}")
    box_lines = [line for line in (folder / "groundtruth.txt").read_text().splitlines() if line.strip()]
    cover_lines = [line for line in (folder / "cover.label").read_text().splitlines() if line.strip()]
    if len(box_lines) != len(cover_lines) or not box_lines:
        raise ValueError(f"line count mismatch: {len(box_lines)} boxes in groundtruth.txt, "
                         f"{len(cover_lines)} levels in cover.label")
    try:
        boxes = np.array([[float(v) for v in line.split(",")] for line in box_lines])
        covers = np.array([int(line) for line in cover_lines])
    except ValueError as error:
        raise ValueError(f"unparsable groundtruth.txt or cover.label ({error})") from None
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError("groundtruth.txt lines must be x,y,w,h")
    return boxes, covers, _object_class(folder / "meta_info.ini")


def _object_class(meta: Path) -> str:
    """The authors' reading: the first line after the header naming object_class, value after ': ', spaces as _."""
    lines = [line for line in meta.read_text(errors="replace").splitlines()[1:] if "object_class" in line]
    if not lines or ": " not in lines[0]:
        raise ValueError("meta_info.ini has no 'object_class: <name>' line")
    return lines[0].split(": ")[1].replace(" ", "_")
