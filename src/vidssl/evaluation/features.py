"""Frozen-encoder features of every evaluation image, written incrementally into one HDF5 file per method and dataset.

The representation is the backbone's pooled feature (a ResNet's global-average-pooled output after the last ReLU, as in
the paper's published scoring code; a ViT's CLS token), on inputs normalised with ImageNet statistics.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

import h5py
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vidssl.contracts import CROPS, EVAL_INDEX, feature_file
from vidssl.core.errors import UserError
from vidssl.core.images import IMAGENET_MEAN, IMAGENET_STD
from vidssl.datasets.eval_sets import load_image
from vidssl.models.backbone import load_backbone

MEAN, STD = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


class IndexImages(Dataset):
    """Images listed in an evaluation index (path, optional box), loaded as RGB uint8 squares."""

    def __init__(self, index: pd.DataFrame, image_size: int):
        self.rows = index.reset_index(drop=True)
        self.image_size = image_size

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return torch.from_numpy(load_image(self.rows.iloc[i], self.image_size))


class CropImages(Dataset):
    """The part-segmentation crops, already at the encoder's input size."""

    def __init__(self, crops_path: str):
        self.path = crops_path
        with CROPS.reading(crops_path, ["images"]) as h5:
            self.length = len(h5["images"])
        self._h5 = self._images = None

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        if self._images is None:  # keep the dataset handle: looking it up by name per crop costs more than the read
            self._h5 = h5py.File(self.path, "r")
            self._images = self._h5["images"]
        return torch.from_numpy(self._images[i])


def source(images_path: str, image_size: int) -> tuple[Dataset, np.ndarray, np.ndarray, list[str]]:
    """Dataset, labels, sets and class names of an evaluation index (.parquet) or the part crops (.h5)."""
    if images_path.endswith(".h5"):
        labels = CROPS.read(images_path, ["label"])["label"].astype(np.int64)
        classes = CROPS.attr(images_path, "classes")
        return CropImages(images_path), labels, np.full(len(labels), -1, np.int64), classes
    index = EVAL_INDEX.read(images_path)
    classes = index.drop_duplicates("label").sort_values("label").class_name.tolist()
    return IndexImages(index, image_size), index.label.to_numpy(np.int64), index.set.to_numpy(np.int64), classes


def normalise(batch_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """N x H x W x 3 uint8 RGB -> N x 3 x H x W float, ImageNet-normalised."""
    x = batch_uint8.to(device).permute(0, 3, 1, 2).float().div_(255)
    return (x - MEAN.to(device)) / STD.to(device)


def loader_workers(threads: int, cuda: bool) -> int:
    """DataLoader workers for a job of `threads` cores. With a GPU the model leaves the cores to the workers. On a CPU
    its forward already keeps every thread busy, and a worker on those cores stalls it at each synchronisation."""
    return max(threads - 1, 0) if cuda else 0


def extract(backbone_path: str, jobs: list[tuple[str, str, str]], *, arch: str, image_size: int | Mapping[str, int],
            batch_size: int, method: str, workers: int | None = None,
            log: logging.Logger | None = None) -> dict[str, int]:
    """For each (dataset, images_path, out_path): write its `vidssl.contracts.FEATURES` file; return image counts.
    `image_size` is the input side of every dataset, or a mapping dataset -> side.

    The backbone is loaded once for all datasets of a method: a job per (method, dataset) would spend most of its
    time starting Python and torch. `workers` None: `loader_workers` for torch's thread count and the device.
    """
    log = log or logging.getLogger(__name__)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if workers is None:
        workers = loader_workers(torch.get_num_threads(), device.type == "cuda")
    model = load_backbone(backbone_path, arch).to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    counts = {}
    for dataset, images_path, out_path in jobs:
        side = image_size[dataset] if isinstance(image_size, Mapping) else image_size
        images, labels, sets, classes = source(images_path, side)
        if len(images) == 0:
            raise UserError(f"{images_path}: no images to extract features from")
        loader = DataLoader(images, batch_size=batch_size, num_workers=workers, shuffle=False)
        attrs = dict(model=method, backbone=str(backbone_path), dataset=dataset, arch=arch, image_size=side,
                     options=model.options())
        with feature_file(out_path, rows=len(images), dim=model.feature_dim, labels=labels, sets=sets,
                          class_names=classes, attrs=attrs) as features:
            start = 0
            with torch.inference_mode():
                for batch in tqdm(loader, desc=f"features {method}/{dataset}"):
                    output = model(normalise(batch, device)).float().cpu().numpy()
                    features[start:start + len(output)] = output
                    start += len(output)
        counts[dataset] = len(images)
        log.info("%s/%s: %d images, %d-d features", method, dataset, len(images), model.feature_dim)
    return counts
