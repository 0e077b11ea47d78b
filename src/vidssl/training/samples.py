"""Training samples: index i of a run -> one sample of its view source (vidssl.training.views), and each rank's share
of a step.

Sample j of step s is the global index s * batch + j; its content (which frame/pair, which track, the augmentation) is a
pure function of (seed, index). Runs therefore repeat exactly whatever the number of workers or GPUs, and a resumed
run sees the same data as an uninterrupted one.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import torch

from vidssl.contracts import BOX_A, BOX_B, FRAME_PAIRS, PAIR_KEY, TRACK_PAIRS
from vidssl.core.errors import UserError
from vidssl.core.images import read_image
from vidssl.training.augment import Crops, MocoV2Augment
from vidssl.training.batch_frames import undecodable
from vidssl.training.device_augment import DeferredAugment, SourceImage, stack_views
from vidssl.training.methods import Method, view_module
from vidssl.video.chunk_store import ChunkStore


def read_labelled_image(path: str) -> np.ndarray:
    image = read_image(path)
    if image is None:
        raise UserError(f"{path}: unreadable image")
    return image


def read_tracks(paths: list[str]) -> dict:
    """(video, chunk, frame_a, frame_b) -> array of the pair's tracks, a row of BOX_A then BOX_B each."""
    frame = pd.concat([TRACK_PAIRS.read(p, columns=[*PAIR_KEY, *BOX_A, *BOX_B]) for p in paths], ignore_index=True)
    return {(v, int(c), int(a), int(b)): group[[*BOX_A, *BOX_B]].to_numpy(np.float32)
            for (v, c, a, b), group in frame.groupby(PAIR_KEY, sort=False)}


def step_batches(start: int, steps: int, batch: int, rank: int, world: int):
    """Each step's sample indices for this rank: its contiguous slice of the global batch."""
    per_rank = batch // world
    return [list(range(s * batch + rank * per_rank, s * batch + (rank + 1) * per_rank)) for s in range(start, steps)]


class TrainingSamples(torch.utils.data.Dataset):
    """Index i -> one training sample; an epoch is a seeded permutation of the view's units (frames, pairs, images)."""

    def __init__(self, method: Method, *, stores: list[ChunkStore], frame_pairs: pd.DataFrame | None,
                 tracks: dict | None, labelled: list[tuple[str, int]] | None, image_size: int, seed: int,
                 crops: Crops | None = None, augment_on: str = "workers"):
        """augment_on `device`: samples hold deferred views (vidssl.training.device_augment) that the trainer renders on
        its device."""
        self.method, self.view = method, view_module(method)
        self.stores, self.frame_pairs, self.tracks, self.labelled, self.seed = stores, frame_pairs, tracks, labelled, seed
        self.crops = crops or Crops(image_size)
        self.augment = MocoV2Augment(image_size, self.crops.global_scale)
        self.local_augment = MocoV2Augment(self.crops.local_size, self.crops.local_scale) if self.crops.local else None
        self.deferred = augment_on == "device"
        if self.deferred:
            self.augment = DeferredAugment(self.augment)
            self.local_augment = self.local_augment and DeferredAugment(self.local_augment)
        self.units = self.view.units(self)
        if len(self.units) == 0:
            raise UserError(f"{method.name}: no training samples (empty chunks/pairs/labelled set)")
        self._epoch, self._order = None, None

    @classmethod
    def from_files(cls, method: Method, files: dict[str, list[str]], labelled: list[tuple[str, int]] | None, *,
                   image_size: int, seed: int, crops: Crops | None = None, **where) -> TrainingSamples:
        """The samples of `method` from the file sets it reads (vidssl.training.methods.INPUTS keys); others are not opened."""
        reads = method.inputs
        return cls(method, stores=[ChunkStore(p) for p in files["chunks"]] if "chunks" in reads else [],
                   frame_pairs=pd.concat([FRAME_PAIRS.read(p) for p in files["frame_pairs"]], ignore_index=True)
                   if "frame_pairs" in reads else None,
                   tracks=read_tracks(files["track_pairs"]) if "track_pairs" in reads else None,
                   labelled=labelled, image_size=image_size, seed=seed, crops=crops, **where)

    @functools.cached_property
    def store_of(self) -> dict[tuple[str, int], int]:
        """(video, chunk) -> index of the store that holds it."""
        return {key: i for i, s in enumerate(self.stores) for key in zip(s.chunks().video, s.chunks().chunk)}

    def __len__(self) -> int:
        return len(self.units)

    def order(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(len(self.units), generator=generator)
        return self._order

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """The samples at `indices` (the DataLoader asks for a whole batch): the frames they need are read with one
        HDF5 call per shard, since a call per frame costs more than the sample's other work."""
        units = []
        for index in indices:
            epoch, position = divmod(index, len(self.units))
            units.append(self.units[int(self.order(epoch)[position])])
        keys = [self.view.frame_keys(self, unit) for unit in units]
        frames = self.read_frames({key for unit_keys in keys for key in unit_keys})
        return [self.view.sample(self, unit, [frames[key] for key in unit_keys],
                                   np.random.default_rng([self.seed, index]))
                for index, unit, unit_keys in zip(indices, units, keys)]

    def read_frames(self, keys: set[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
        """The images at (store, row) keys, one HDF5 call per store (rows in increasing order, as HDF5 wants them)."""
        frames = {}
        for store in {store for store, _ in keys}:
            rows = sorted(row for s, row in keys if s == store)
            frames.update(zip(((store, row) for row in rows), self.read_rows(self.stores[store], rows)))
        return frames

    def read_rows(self, store: ChunkStore, rows: list[int]) -> list:
        """Decoded frames; in device mode SourceImages of their JPEG bytes (decoded as the batch is collated, or on
        the device; a region of one sends the frame once)."""
        if self.deferred:
            blobs = store.jpeg_rows(rows)
            return [SourceImage.of_jpeg(blob, origin(store, row)) for row, blob in zip(rows, blobs)]
        images = store.read_rows(rows)
        for row, image in zip(rows, images):
            if image is None:
                raise UserError(undecodable(origin(store, row)))
        return images

    def labelled_image(self, index: int) -> tuple[np.ndarray, int]:
        path, label = self.labelled[index]
        return read_labelled_image(path), label

    def local_views(self, images: list[np.ndarray], boxes: list | None, rng: np.random.Generator) -> dict:
        """The sample's local crops (none unless the objective asks for them), taken from its images in turn; given
        a tracked box in each image, each crop is drawn inside the box grown to twice its side, so that the local views
        look at the tracked object."""
        if not self.crops.local:
            return {}
        views = []
        for i in range(self.crops.local):
            image = images[i % len(images)]
            box = None if boxes is None else boxes[i % len(images)]
            views.append(self.local_augment(around(image, box), None, rng)[0])
        return {"x_local": stack_views(views)}


def origin(store: ChunkStore, row: int) -> str:
    """Where a stored frame was read, as an error names it."""
    return f"{store.path}, row {row}"


def around(image: np.ndarray, box) -> np.ndarray:
    """The part of `image` inside `box` (x1, y1, x2, y2) grown to twice its side about its centre; all of it without a
    box."""
    if box is None:
        return image
    height, width = image.shape[:2]
    cx, cy, w, h = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]
    x1, x2 = int(max(0, cx - w)), int(min(width, math.ceil(cx + w)))
    y1, y2 = int(max(0, cy - h)), int(min(height, math.ceil(cy + h)))
    return image[y1:y2, x1:x2] if x2 - x1 >= 2 and y2 - y1 >= 2 else image
