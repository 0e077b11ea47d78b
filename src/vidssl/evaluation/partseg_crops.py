"""Object crops of the part-segmentation probe (supplementary C): every part-annotated object of the wanted
classes in a Pascal-Part set, cropped with its context and its part-label map, in one HDF5 file.
"""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vidssl.contracts import write_crops
from vidssl.core.errors import UserError
from vidssl.core.images import read_image
from vidssl.core.names import read_lines, shown
from vidssl.datasets.pascal_part import PascalObject, read_annotation

TRAIN, TEST = 0, 1


def _nearest_indices(source: int, target: int) -> np.ndarray:
    """Source index sampled by each target pixel centre (symmetric, unlike cv2's INTER_NEAREST)."""
    return np.minimum(((np.arange(target) + 0.5) * source / target).astype(np.int64), source - 1)


def resize_maps(maps: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of N x H x W label maps to N x size x size."""
    maps = np.asarray(maps)
    rows = _nearest_indices(maps.shape[1], size)
    cols = _nearest_indices(maps.shape[2], size)
    return maps[:, rows[:, None], cols[None, :]]


def _read_split_lists(folder: Path) -> dict[str, int]:
    split = {}
    for file_name, value in (("train.txt", TRAIN), ("val.txt", TEST)):
        path = folder / file_name
        if not path.is_file():
            raise UserError(f"partseg.split_lists: {path} does not exist")
        for stem in (stem for line in read_lines(path) for stem in line.split()):
            split[stem] = value
    return split


def _seeded_split(stems: list[str], test_fraction: float, seed: int) -> dict[str, int]:
    if not 0 < test_fraction < 1:
        raise UserError(f"partseg.test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(stems))
    n_test = round(test_fraction * len(stems))
    test = {stems[i] for i in order[:n_test]}
    return {stem: TEST if stem in test else TRAIN for stem in stems}


def _context_box(mask: np.ndarray, context: float) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """The mask's box widened by `context` x its size each side, clipped; and the unwidened width, height."""
    rows, cols = np.nonzero(mask)
    y1, y2, x1, x2 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    w, h = x2 - x1, y2 - y1
    height, width = mask.shape
    box = (
        max(0, math.floor(x1 - context * w)),
        max(0, math.floor(y1 - context * h)),
        min(width, math.ceil(x2 + context * w)),
        min(height, math.ceil(y2 + context * h)),
    )
    return box, (int(w), int(h))


def _image_objects(mat_path: Path, images_dir: Path, merge: dict[str, str], wanted: set[str],
                   split_of: dict[str, int]) -> tuple[list[tuple[int, PascalObject]], np.ndarray | None] | str:
    """The wanted objects of one annotated image with their index, and its RGB image (None when there are no
    wanted objects); or why the image is skipped."""
    stem = mat_path.stem
    try:
        annotation = read_annotation(mat_path, merge)
    except UserError as error:  # one corrupt file among thousands should not stop the stage
        return str(error)
    objects = [(index, obj) for index, obj in enumerate(annotation) if obj.class_name in wanted]
    if not objects:
        return [], None
    if stem not in split_of:
        return "image in neither train.txt nor val.txt"
    image = read_image(images_dir / f"{stem}.jpg", rgb=True)
    if image is None:
        return f"missing or unreadable {stem}.jpg in {images_dir}"
    return objects, image


def _object_crop(obj: PascalObject, image: np.ndarray, vocabulary: list[str], *, context: float, min_box: int,
                 crop_size: int) -> tuple[np.ndarray, np.ndarray] | str:
    """The object's image crop and part map at `crop_size`, or why it is skipped.

    Part labels are 1 + the position in `vocabulary`, which gains the object's part names it lacks.
    """
    if not obj.parts:
        return "no part annotations"
    if obj.mask.shape != image.shape[:2]:
        return f"mask {obj.mask.shape} does not match image {image.shape[:2]}"
    if not obj.mask.any():
        return "empty object mask"
    (x1, y1, x2, y2), (w, h) = _context_box(obj.mask, context)
    if w < min_box or h < min_box:
        return f"box {w}x{h} smaller than min_box {min_box}"
    part_map = np.zeros(obj.mask.shape, np.uint8)
    for part_name in sorted(obj.parts):  # fixed drawing order where parts overlap
        if part_name not in vocabulary:
            vocabulary.append(part_name)
        part_map[obj.parts[part_name]] = vocabulary.index(part_name) + 1
    part_map[~obj.mask] = 0
    crop = cv2.resize(image[y1:y2, x1:x2], (crop_size, crop_size), interpolation=cv2.INTER_LINEAR)
    return crop, resize_maps(part_map[None, y1:y2, x1:x2], crop_size)[0]


def _sorted_labels(maps: np.ndarray, labels: np.ndarray, seen_parts: dict[str, list[str]],
                   part_names: dict[str, list[str]], classes: list[str]) -> np.ndarray:
    """`maps` with each class's labels renumbered from first-seen order to sorted part-name order."""
    for name, vocabulary in seen_parts.items():
        renumber = np.array([0] + [part_names[name].index(part) + 1 for part in vocabulary], np.uint8)
        rows = labels == classes.index(name)
        maps[rows] = renumber[maps[rows]]
    return maps


def _write_crops(out_h5: str | Path, crops: list[np.ndarray], maps: np.ndarray, crop_class: list[str],
                 labels: np.ndarray, crop_split: list[int], crop_image: list[str], *, classes: list[str],
                 part_names: dict[str, list[str]], skipped: list[dict]) -> None:
    write_crops(out_h5, dict(images=np.stack(crops), part_maps=maps, class_name=crop_class, label=labels,
                             split=crop_split, image=crop_image),
                dict(classes=list(classes), part_names=part_names, skipped=skipped))


def _split_counts(crop_class: list[str], crop_split: list[int], classes: list[str],
                  log: logging.Logger) -> dict[str, dict[str, int]]:
    """Crops per class and split; a class missing from either split is logged, as its probe cannot run."""
    counts = {name: {"train": 0, "test": 0} for name in classes}
    for name, split in zip(crop_class, crop_split):
        counts[name]["test" if split == TEST else "train"] += 1
    for name in classes:
        if not counts[name]["train"] or not counts[name]["test"]:
            log.warning("partseg: class %s has %s", name, counts[name])
    return counts


def _crop_every_object(mat_files: list[Path], images_dir: Path, split_of: dict[str, int], *, merge: dict[str, str],
                       wanted: set[str], context: float, min_box: int, crop_size: int) -> tuple[dict, tuple, list]:
    """(part names seen per class in first-appearance order, (crops, maps, class, image, split) lists, skips) of every
    object of the `wanted` classes in the annotated images."""
    # Labels are numbered by first appearance while cropping, then renumbered to sorted order at the end,
    # so the dataset is read once.
    seen_parts: dict[str, list[str]] = defaultdict(list)
    crops, maps, crop_class, crop_image, crop_split, skipped = [], [], [], [], [], []
    for mat_path in tqdm(mat_files, desc="partseg crops", unit="image"):
        stem = mat_path.stem
        found = _image_objects(mat_path, images_dir, merge, wanted, split_of)
        if isinstance(found, str):
            skipped.append({"item": shown(stem), "reason": found})
            continue
        objects, image = found
        for index, obj in objects:
            cropped = _object_crop(obj, image, seen_parts[obj.class_name], context=context, min_box=min_box,
                                   crop_size=crop_size)
            if isinstance(cropped, str):
                skipped.append({"item": f"{shown(stem)}/{index}:{obj.class_name}", "reason": cropped})
                continue
            crops.append(cropped[0])
            maps.append(cropped[1])
            crop_class.append(obj.class_name)
            crop_image.append(shown(stem))
            crop_split.append(split_of[stem])
    return seen_parts, (crops, maps, crop_class, crop_image, crop_split), skipped


def make_crops(
    images_dir: str | Path,
    annotations_dir: str | Path,
    out_h5: str | Path,
    *,
    classes: list[str],
    merge: dict[str, str],
    context: float,
    min_box: int,
    crop_size: int,
    test_fraction: float,
    seed: int,
    split_lists: str | Path | None = None,
    log: logging.Logger | None = None,
) -> dict:
    """Crop every part-annotated object of `classes` with its part-label map into one HDF5 file.

    Labels of a class are 1..P for its folded part names sorted, as seen across the whole dataset
    (0 is background, including other objects). Returns counts per class and split, and the skips.
    """
    log = log or logging.getLogger(__name__)
    images_dir, annotations_dir = Path(images_dir), Path(annotations_dir)
    mat_files = sorted(annotations_dir.glob("*.mat"))
    if not mat_files:
        raise UserError(f"partseg.annotations: no .mat files in {annotations_dir}")
    stems = [path.stem for path in mat_files]
    if split_lists is None:
        split_of = _seeded_split(stems, test_fraction, seed)
    else:
        split_of = _read_split_lists(Path(split_lists))
    seen_parts, (crops, maps, crop_class, crop_image, crop_split), skipped = _crop_every_object(
        mat_files, images_dir, split_of, merge=merge, wanted=set(classes), context=context, min_box=min_box,
        crop_size=crop_size)
    if not crops:
        raise UserError(
            f"partseg: no usable objects of classes {classes} in {annotations_dir} "
            f"({len(skipped)} skipped, e.g. {skipped[:3]})"
        )

    part_names = {name: sorted(seen_parts.get(name, [])) for name in classes}
    labels = np.array([classes.index(name) for name in crop_class], np.int64)
    maps = _sorted_labels(np.stack(maps), labels, seen_parts, part_names, classes)
    _write_crops(out_h5, crops, maps, crop_class, labels, crop_split, crop_image, classes=classes,
                 part_names=part_names, skipped=skipped)

    counts = _split_counts(crop_class, crop_split, classes, log)
    log.info("partseg: %d crops, %d skipped", len(crops), len(skipped))
    return {"crops": len(crops), "counts": counts, "part_names": part_names, "skipped": skipped}
