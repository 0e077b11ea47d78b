"""Part-segmentation probe (supplementary C, Table 5): object crops from Pascal-Part, and per class a
decoder of four transposed convolutions from one frozen representation vector to a part-label map.
"""
from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from vidssl.datasets.pascal_part import read_annotation
from vidssl.io import UserError, atomic_path

log = logging.getLogger("vidssl")

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
        for stem in path.read_text().split():
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
) -> dict:
    """Crop every part-annotated object of `classes` with its part-label map into one HDF5 file.

    Labels of a class are 1..P for its folded part names sorted, as seen across the whole dataset
    (0 is background, including other objects). Returns counts per class and split, and the skips.
    """
    images_dir, annotations_dir = Path(images_dir), Path(annotations_dir)
    mat_files = sorted(annotations_dir.glob("*.mat"))
    if not mat_files:
        raise UserError(f"partseg.annotations: no .mat files in {annotations_dir}")
    stems = [path.stem for path in mat_files]
    if split_lists is None:
        split_of = _seeded_split(stems, test_fraction, seed)
    else:
        split_of = _read_split_lists(Path(split_lists))
    wanted = set(classes)

    # Labels are numbered by first appearance while cropping, then renumbered to sorted order at the end,
    # so the dataset is read once.
    seen_parts: dict[str, list[str]] = defaultdict(list)
    crops, maps, crop_class, crop_image, crop_split, skipped = [], [], [], [], [], []
    for mat_path in tqdm(mat_files, desc="partseg crops", unit="image"):
        stem = mat_path.stem
        try:
            annotation = read_annotation(mat_path, merge)
        except UserError as error:  # one corrupt file among thousands should not stop the stage
            skipped.append({"item": stem, "reason": str(error)})
            continue
        objects = [(index, obj) for index, obj in enumerate(annotation) if obj.class_name in wanted]
        if not objects:
            continue
        if stem not in split_of:
            skipped.append({"item": stem, "reason": "image in neither train.txt nor val.txt"})
            continue
        image = cv2.imread(str(images_dir / f"{stem}.jpg"), cv2.IMREAD_COLOR)
        if image is None:
            skipped.append({"item": stem, "reason": f"missing or unreadable {stem}.jpg in {images_dir}"})
            continue
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        for index, obj in objects:
            item = f"{stem}/{index}:{obj.class_name}"
            if not obj.parts:
                skipped.append({"item": item, "reason": "no part annotations"})
                continue
            if obj.mask.shape != image.shape[:2]:
                skipped.append({"item": item, "reason": f"mask {obj.mask.shape} does not match image {image.shape[:2]}"})
                continue
            if not obj.mask.any():
                skipped.append({"item": item, "reason": "empty object mask"})
                continue
            (x1, y1, x2, y2), (w, h) = _context_box(obj.mask, context)
            if w < min_box or h < min_box:
                skipped.append({"item": item, "reason": f"box {w}x{h} smaller than min_box {min_box}"})
                continue
            vocabulary = seen_parts[obj.class_name]
            part_map = np.zeros(obj.mask.shape, np.uint8)
            for part_name in sorted(obj.parts):  # fixed drawing order where parts overlap
                if part_name not in vocabulary:
                    vocabulary.append(part_name)
                part_map[obj.parts[part_name]] = vocabulary.index(part_name) + 1
            part_map[~obj.mask] = 0
            crops.append(cv2.resize(image[y1:y2, x1:x2], (crop_size, crop_size), interpolation=cv2.INTER_LINEAR))
            maps.append(resize_maps(part_map[None, y1:y2, x1:x2], crop_size)[0])
            crop_class.append(obj.class_name)
            crop_image.append(stem)
            crop_split.append(split_of[stem])
    if not crops:
        raise UserError(
            f"partseg: no usable objects of classes {classes} in {annotations_dir} "
            f"({len(skipped)} skipped, e.g. {skipped[:3]})"
        )

    part_names = {name: sorted(seen_parts.get(name, [])) for name in classes}
    labels = np.array([classes.index(name) for name in crop_class], np.int64)
    maps = np.stack(maps)
    for name, vocabulary in seen_parts.items():
        renumber = np.array([0] + [part_names[name].index(part) + 1 for part in vocabulary], np.uint8)
        rows = labels == classes.index(name)
        maps[rows] = renumber[maps[rows]]

    strings = h5py.string_dtype()
    with atomic_path(out_h5) as tmp:
        with h5py.File(tmp, "w") as out:
            out.create_dataset("images", data=np.stack(crops), chunks=(1, crop_size, crop_size, 3))
            out.create_dataset("part_maps", data=maps, compression="gzip", compression_opts=4)
            out.create_dataset("class_name", data=np.array(crop_class, dtype=object), dtype=strings)
            out.create_dataset("label", data=labels)
            out.create_dataset("split", data=np.array(crop_split, np.int8))
            out.create_dataset("image", data=np.array(crop_image, dtype=object), dtype=strings)
            out.attrs["classes"] = json.dumps(list(classes))
            out.attrs["part_names"] = json.dumps(part_names)
            out.attrs["skipped"] = json.dumps(skipped)

    counts = {name: {"train": 0, "test": 0} for name in classes}
    for name, split in zip(crop_class, crop_split):
        counts[name]["test" if split == TEST else "train"] += 1
    for name in classes:
        if not counts[name]["train"] or not counts[name]["test"]:
            log.warning("partseg: class %s has %s", name, counts[name])
    log.info("partseg: %d crops, %d skipped", len(crops), len(skipped))
    return {"crops": len(crops), "counts": counts, "part_names": part_names, "skipped": skipped}


class PartDecoder(nn.Module):
    """Four transposed convolutions from a D-vector (as a D x 1 x 1 map) to `size` x `size` logits.

    The first layer maps 1x1 to (size/8)x(size/8); three stride-2 layers double it to `size`.
    """

    def __init__(self, in_dim: int, n_labels: int, size: int, widths: tuple[int, int, int] = (128, 64, 32)):
        super().__init__()
        if size < 16 or size & (size - 1):
            raise ValueError(f"PartDecoder size must be a power of two >= 16, got {size}")
        channels = [in_dim, *widths, n_labels]
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, widths[0], kernel_size=size // 8, stride=1)]
        for c_in, c_out in zip(channels[1:-1], channels[2:]):
            layers += [nn.BatchNorm2d(c_in), nn.ReLU(inplace=True),
                       nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features[:, :, None, None])


def train_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    n_labels: int,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 64,
) -> dict:
    """Train a PartDecoder on (features, label maps); pixel accuracy on the test maps and the floor
    (accuracy of always predicting the most frequent train label)."""
    train_x, test_x = np.asarray(train_x, np.float32), np.asarray(test_x, np.float32)
    train_y, test_y = np.asarray(train_y, np.int64), np.asarray(test_y, np.int64)
    # Methods' raw features differ in scale by orders of magnitude; one Adam lr fits all after this.
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std[std < 1e-6] = 1.0
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    model = PartDecoder(train_x.shape[1], n_labels, train_y.shape[-1]).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.from_numpy(train_x).to(device)
    y = torch.from_numpy(train_y).to(device)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=order).split(batch_size):
            optimiser.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimiser.step()

    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(chunk) for chunk in torch.from_numpy(test_x).to(device).split(256)])
    predicted = logits.argmax(dim=1).cpu().numpy()
    majority = np.bincount(train_y.reshape(-1), minlength=n_labels).argmax()
    return {
        "pixel_accuracy": float((predicted == test_y).mean()),
        "floor": float((test_y == majority).mean()),
    }


def probe_all(
    crops_h5: str | Path,
    features_h5: str | Path,
    *,
    classes: list[str],
    size: int,
    epochs: int,
    lr: float,
    seed: int,
) -> pd.DataFrame:
    """One probe per class; a row per class with its part count, crop counts, pixel accuracy and floor."""
    with h5py.File(crops_h5, "r") as crops:
        part_names = json.loads(crops.attrs["part_names"])
        class_of = crops["class_name"].asstr()[:]
        split = crops["split"][:]
        maps = crops["part_maps"][:]
    with h5py.File(features_h5, "r") as source:
        if "features" not in source:
            raise UserError(f"{features_h5}: no 'features' dataset")
        features = source["features"][:]
    if len(features) != len(class_of):
        raise UserError(
            f"{features_h5}: {len(features)} feature rows but {crops_h5} has {len(class_of)} crops; "
            "rerun feature extraction on these crops"
        )

    rows = []
    for name in tqdm(classes, desc="partseg probe", unit="class"):
        train = (class_of == name) & (split == TRAIN)
        test = (class_of == name) & (split == TEST)
        row = {"class_name": name, "parts": len(part_names.get(name, [])),
               "train_crops": int(train.sum()), "test_crops": int(test.sum()),
               "pixel_accuracy": math.nan, "floor": math.nan}
        if row["train_crops"] and row["test_crops"]:
            row.update(train_probe(
                features[train], resize_maps(maps[train], size), features[test], resize_maps(maps[test], size),
                n_labels=row["parts"] + 1, epochs=epochs, lr=lr, seed=seed,
            ))
        else:
            log.warning("partseg probe: class %s has %d train and %d test crops; accuracy left empty",
                        name, row["train_crops"], row["test_crops"])
        rows.append(row)
    return pd.DataFrame(rows, columns=["class_name", "parts", "train_crops", "test_crops", "pixel_accuracy", "floor"])
