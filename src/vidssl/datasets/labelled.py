"""Image lists of the downstream classification sets: an ImageFolder split by image, an ImageFolder train/val pair,
and Pascal VOC 2007 multi-label classification.

Each list has the columns of `vidssl.contracts.EVAL_INDEX` (``set`` -1) plus ``split`` ("train" or "test"); VOC
2007's has ``label`` -1 and one ``target_<class>`` column per class holding VOC's mark (1 present, -1 absent, 0
difficult). Labels number the sorted class folders that hold images, in training (`list_labelled`) as in evaluation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vidssl.contracts import SPLIT, TARGET_PREFIX
from vidssl.core.errors import UserError
from vidssl.datasets.eval_sets import WHOLE_IMAGE, Skipped, existing_root, image_files, index_frame


def _class_folders(root: Path) -> dict[str, list[Path]]:
    """Class name -> its images, for the sorted class folders that hold any: a folder without images is no class, so
    it takes no label (a label no image carries would differ between a set and its copy without the empty folder)."""
    folders = {folder.name: image_files(folder) for folder in sorted(p for p in root.iterdir() if p.is_dir())}
    folders = {name: images for name, images in folders.items() if images}
    if not folders:
        raise UserError(f"ImageFolder {root}: no <class>/<image> files")
    return folders


def _image_row(dataset: str, path: Path, label: int, class_name: str, split: str) -> dict:
    return {"dataset": dataset, "path": str(path), "label": label, "class_name": class_name, "set": -1,
            **WHOLE_IMAGE, SPLIT: split}


def split_index(root, *, dataset: str, test_fraction: float, seed: int) -> tuple[pd.DataFrame, Skipped]:
    """An ImageFolder root split by image, stratified: of each class (in sorted order), a seeded draw of
    round(test_fraction * n) images is the test split, the rest the train split. Labels number the sorted classes."""
    folders = _class_folders(existing_root(root, "labelled set"))
    generator = np.random.default_rng(seed)
    rows = []
    for label, (name, images) in enumerate(folders.items()):
        test = set(generator.permutation(len(images))[: round(test_fraction * len(images))].tolist())
        rows += [_image_row(dataset, path, label, name, "test" if i in test else "train")
                 for i, path in enumerate(images)]
    return index_frame(rows, [SPLIT]), []


def train_split(root, *, test_fraction: float, seed: int) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, label) of the images `split_index` puts in the train split of an ImageFolder root, and the class names."""
    frame, _ = split_index(root, dataset="train_split", test_fraction=test_fraction, seed=seed)
    train = frame[frame[SPLIT] == "train"]
    classes = frame.drop_duplicates("label").sort_values("label").class_name.tolist()
    return list(zip(train.path.tolist(), train.label.tolist())), classes


def list_labelled(root, split: dict | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, label) of every image of an ImageFolder root `<class>/<image>`, and the class names; with `split`
    (test_fraction, seed) only its train split (`train_split`)."""
    if split:
        return train_split(root, **split)
    folders = _class_folders(existing_root(root, "labelled set"))
    return [(str(path), label) for label, images in enumerate(folders.values()) for path in images], list(folders)


def imagefolder_index(train, val, *, dataset: str) -> tuple[pd.DataFrame, Skipped]:
    """An ImageFolder pair: `train` is the train split, `val` the test split; labels number train's sorted classes,
    and val images of a class train lacks are skipped with the reason."""
    train_folders = _class_folders(existing_root(train, "classification train"))
    val_folders = _class_folders(existing_root(val, "classification val"))
    labels = {name: label for label, name in enumerate(train_folders)}
    rows = [_image_row(dataset, path, labels[name], name, "train") for name, images in train_folders.items()
            for path in images]
    skipped = []
    for name, images in val_folders.items():
        if name not in labels:
            skipped.append({"item": str(Path(val) / name), "reason": "class absent from the train folder"})
            continue
        rows += [_image_row(dataset, path, labels[name], name, "test") for path in images]
    return index_frame(rows, [SPLIT]), skipped


def voc07_index(root, *, dataset: str) -> tuple[pd.DataFrame, Skipped]:
    """Pascal VOC 2007 as Goyal et al. 2019 read it: classes from the sorted ``ImageSets/Main/<class>_trainval.txt``
    (names without a further underscore), every image listed for a class in trainval (train split) or test (test
    split), in sorted order, with its mark per class; an image a class's list omits gets 0 (ignored, as their
    -1). Images missing from JPEGImages are skipped with the reason."""
    root = existing_root(root, "VOC 2007")
    lists = root / "ImageSets" / "Main"
    classes = sorted(path.name.split("_")[0] for path in lists.glob("*_trainval.txt") if path.name.count("_") == 1)
    if not classes:
        raise UserError(f"VOC 2007 root {root}: no ImageSets/Main/<class>_trainval.txt")
    columns = [f"{TARGET_PREFIX}{name}" for name in classes]
    rows, skipped = [], []
    for split, suffix in (("train", "trainval"), ("test", "test")):
        marks = {}
        for column, name in zip(columns, classes):
            listing = lists / f"{name}_{suffix}.txt"
            if not listing.is_file():
                raise UserError(f"VOC 2007 root {root}: {listing.name} missing (every class needs trainval and test)")
            for image, mark in _marks(listing):
                marks.setdefault(image, dict.fromkeys(columns, 0))[column] = mark
        for image in sorted(marks):
            path = root / "JPEGImages" / f"{image}.jpg"
            if not path.is_file():
                skipped.append({"item": str(path), "reason": "listed in ImageSets/Main but missing"})
                continue
            rows.append({**_image_row(dataset, path, -1, "", split), **marks[image]})
    frame = index_frame(rows, [SPLIT, *columns])
    return frame.astype(dict.fromkeys(columns, "int8")), skipped


def _marks(listing: Path) -> list[tuple[str, int]]:
    try:
        marks = [(image, int(mark)) for image, mark in (line.split() for line in listing.read_text().splitlines()
                                                        if line.strip())]
    except ValueError:
        marks = [("", 2)]
    if any(mark not in (1, -1, 0) for _, mark in marks):
        raise UserError(f"{listing}: lines must be '<image> <1|-1|0>'")
    return marks
