"""The part-segmentation probe (supplementary C, Table 5): per class a decoder of four transposed convolutions
from one frozen representation vector to a part-label map, trained on the crops of `vidssl.evaluation.partseg_crops`.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from vidssl.contracts import CROPS, FEATURES, PROBE_IMAGES, require_finite
from vidssl.core.errors import UserError
from vidssl.evaluation.partseg_crops import TEST, TRAIN, resize_maps


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
    """Train a PartDecoder on (features, label maps); pixel accuracy on the test maps and the floor (accuracy of
    always predicting the most frequent train label), and per test map its correct pixels under each."""
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
    pixel_axes = tuple(range(1, test_y.ndim))
    return {
        "pixel_accuracy": float((predicted == test_y).mean()),
        "floor": float((test_y == majority).mean()),
        "correct": (predicted == test_y).sum(axis=pixel_axes),
        "floor_correct": (test_y == majority).sum(axis=pixel_axes),
    }


def _read_inputs(crops_h5: str | Path, features_h5: str | Path) -> tuple[dict, np.ndarray]:
    crops = CROPS.read(crops_h5, ["class_name", "image", "split", "part_maps"])
    data = {"part_names": CROPS.attr(crops_h5, "part_names"), "class_of": crops["class_name"],
            "image_of": crops["image"], "split": crops["split"], "maps": crops["part_maps"]}
    features = require_finite(FEATURES.read(features_h5, ["features"])["features"], features_h5)
    if len(features) != len(data["class_of"]):
        raise UserError(
            f"{features_h5}: {len(features)} feature rows but {crops_h5} has {len(data['class_of'])} crops; "
            "rerun feature extraction on these crops"
        )
    return data, features


def probe_all(
    crops_h5: str | Path,
    features_h5: str | Path,
    *,
    classes: list[str],
    size: int,
    epochs: int,
    lr: float,
    seed: int,
    log: logging.Logger | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One probe per class. Returns a row per class (part count, crop counts, pixel accuracy, floor) and a row per
    test image and class (its test pixels, and how many the probe and the floor got right), which the bootstrap of
    `vidssl.evaluation.table5` resamples: crops of one image are not independent, images are."""
    log = log or logging.getLogger(__name__)
    data, features = _read_inputs(crops_h5, features_h5)
    rows, per_image = [], []
    for name in tqdm(classes, desc="partseg probe", unit="class"):
        train = (data["class_of"] == name) & (data["split"] == TRAIN)
        test = (data["class_of"] == name) & (data["split"] == TEST)
        row = {"class_name": name, "parts": len(data["part_names"].get(name, [])),
               "train_crops": int(train.sum()), "test_crops": int(test.sum()),
               "pixel_accuracy": math.nan, "floor": math.nan}
        if row["train_crops"] and row["test_crops"]:
            scores = train_probe(
                features[train], resize_maps(data["maps"][train], size), features[test],
                resize_maps(data["maps"][test], size), n_labels=row["parts"] + 1, epochs=epochs, lr=lr, seed=seed,
            )
            row.update(pixel_accuracy=scores["pixel_accuracy"], floor=scores["floor"])
            per_image.append(pd.DataFrame({
                "image": data["image_of"][test], "class_name": name, "pixels": size * size,
                "correct": scores["correct"], "floor_correct": scores["floor_correct"]}))
        else:
            log.warning("partseg probe: class %s has %d train and %d test crops; accuracy left empty",
                        name, row["train_crops"], row["test_crops"])
        rows.append(row)
    classes_frame = pd.DataFrame(
        rows, columns=["class_name", "parts", "train_crops", "test_crops", "pixel_accuracy", "floor"])
    images = pd.concat(per_image) if per_image else PROBE_IMAGES.empty()
    images = images.astype(PROBE_IMAGES.columns).groupby(PROBE_IMAGES.sort_by, as_index=False, sort=True).sum()
    return classes_frame, images[PROBE_IMAGES.names]
