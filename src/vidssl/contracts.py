"""The artifact contracts: the columns, datasets, attributes and dtypes of every Parquet table and HDF5 file the
pipeline writes, each with its one reader and writer. Every other module names columns through these.

Parquet tables (written with pyarrow, sorted by their key, one row group per chunk where they have `group_by`):
  MANIFEST          results/manifest.parquet
  PROPOSALS         results/proposals/{shard}.parquet
  TRACKS            results/tracks/{shard}.parquet
  FRAME_PAIRS       results/pairs/{shard}.frames.parquet
  TRACK_PAIRS       results/pairs/{shard}.tracks.parquet
  EVAL_INDEX        results/eval/{dataset}.parquet (open: `split` and `target_<class>` columns may follow)
  PROBE_IMAGES      results/partseg/{method}/seed{seed}.images.parquet
  TRAJECTORY_INDEX  resources/synthetic/trajectories/index.parquet
  SYNTHETIC_BOXES   resources/synthetic/videos/boxes.parquet
HDF5 files:
  CHUNKS            results/chunks/{shard}.h5
  FEATURES          results/features/{method}/{dataset}.h5
  CROPS             results/partseg/crops.h5
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Iterator

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from vidssl.core.errors import UserError
from vidssl.core.io import atomic_path, empty_frame, parquet_file, read_parquet, write_parquet

STR = object  # a string column (pandas object); in HDF5 a variable-length UTF-8 string dataset
JPEG = "jpeg"  # HDF5 only: variable-length uint8 (one encoded image per row)

BOX = ["x1", "y1", "x2", "y2"]  # pixels of the stored (resized) frame
BOX_A = ["ax1", "ay1", "ax2", "ay2"]  # a track's box in frame_a of a pair
BOX_B = ["bx1", "by1", "bx2", "by2"]  # and in frame_b
CHUNK_KEY = ["video", "chunk"]
PAIR_KEY = [*CHUNK_KEY, "frame_a", "frame_b"]
TRACK_KEY = [*CHUNK_KEY, "track"]


def _missing(kind: str, path, missing: list[str], what: str = "column") -> UserError:
    return UserError(f"{path}: not a {kind} file (missing {what}{'s' if len(missing) > 1 else ''} "
                     f"{', '.join(missing)}); rerun the rule that writes it")


@dataclass(frozen=True)
class Table:
    """A Parquet artifact: its columns and their dtypes in file order, sort key and row-group key."""

    kind: str
    columns: dict[str, object]
    sort_by: list[str]
    group_by: list[str] | None = None
    open_ended: bool = False  # further columns may follow the contract's

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def empty(self) -> pd.DataFrame:
        return empty_frame(self.columns)

    def check(self, names, path, needed=None) -> None:
        """UserError naming the columns (of `needed`, default all) that a table read from `path` lacks."""
        missing = [name for name in needed or self.columns if name not in set(names)]
        if missing:
            raise _missing(self.kind, path, missing)

    def frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with the contract's columns first, in order, cast to their dtypes (and, when open-ended, the rest)."""
        missing = [name for name in self.columns if name not in frame.columns]
        if missing:
            raise ValueError(f"a {self.kind} table needs the columns {missing}")
        rest = [name for name in frame.columns if name not in self.columns] if self.open_ended else []
        return frame[[*self.columns, *rest]].astype(self.columns)

    def write(self, frame: pd.DataFrame, path, *, metadata: dict | None = None) -> None:
        write_parquet(self.frame(frame), path, sort_by=self.sort_by, group_by=self.group_by, metadata=metadata)

    def read(self, path, columns: list[str] | None = None) -> pd.DataFrame:
        """The table at `path` (only `columns`, when given); a missing column raises UserError naming it."""
        if columns is None:
            table = read_parquet(path)
            self.check(table.columns, path)
            return table
        self.check(parquet_file(path).schema_arrow.names, path, columns)
        return pq.read_table(path, columns=columns).to_pandas()

    def open(self, path) -> pq.ParquetFile:
        """The file for reading by row group, its columns checked."""
        handle = parquet_file(path)
        self.check(handle.schema_arrow.names, path)
        return handle


MANIFEST = Table("manifest", {"video": STR, "path": STR, "kind": STR, "frames": np.int64, "fps": np.float64,
                              "width": np.int64, "height": np.int64, "shard": np.int64, "skip_reason": STR,
                              "note": STR}, sort_by=["shard", "video"])
PROPOSALS = Table("proposals", {"video": STR, "chunk": np.int32, "frame": np.int32, "rank": np.int32,
                                **dict.fromkeys(BOX, np.float32)},
                  sort_by=[*CHUNK_KEY, "frame", "rank"], group_by=CHUNK_KEY)
TRACKS = Table("tracks", {"video": STR, "chunk": np.int32, "track": np.int32, "frame": np.int32,
                          **dict.fromkeys([*BOX, "score"], np.float32), "keyframe": bool},
               sort_by=[*TRACK_KEY, "frame"], group_by=CHUNK_KEY)
FRAME_PAIRS = Table("frame pairs", {"video": STR, **dict.fromkeys(PAIR_KEY[1:], np.int32)}, sort_by=PAIR_KEY,
                    group_by=CHUNK_KEY)
TRACK_PAIRS = Table("track pairs", {**FRAME_PAIRS.columns, "track": np.int32,
                                    **dict.fromkeys([*BOX_A, *BOX_B, "score"], np.float32)},
                    sort_by=[*PAIR_KEY, "track"], group_by=CHUNK_KEY)
# One row per evaluation image; `set` groups the views of one object (-1: no sets); a NaN box is the whole image.
EVAL_INDEX = Table("evaluation index", {"dataset": STR, "path": STR, "label": np.int64, "class_name": STR,
                                        "set": np.int64, **dict.fromkeys(BOX, np.float64)},
                   sort_by=["set", "path"], open_ended=True)
SPLIT = "split"  # an EVAL_INDEX column of the classification sets: "train" or "test"
TARGET_PREFIX = "target_"  # VOC 2007's EVAL_INDEX columns target_<class>: 1 present, -1 absent, 0 difficult
PROBE_IMAGES = Table("probe scores", {"image": STR, "class_name": STR, "pixels": np.int64, "correct": np.int64,
                                      "floor_correct": np.int64}, sort_by=["image", "class_name"])
TRAJECTORY_INDEX = Table("trajectory index", {"dataset": STR, "path": STR, "label": np.int64, "class_name": STR,
                                              "set": np.int64, "frame": np.int64},
                         sort_by=["dataset", "set", "frame"], group_by=["dataset"])
SYNTHETIC_BOXES = Table("synthetic boxes", {"video": STR, "frame": np.int32, "object": np.int32, "class_name": STR,
                                            **dict.fromkeys(BOX, np.float32)},
                        sort_by=["video", "frame", "object"], group_by=["video"])


@dataclass(frozen=True)
class H5:
    """An HDF5 artifact: its datasets (one row per item) with their dtypes, in creation order, and its attributes."""

    kind: str
    datasets: dict[str, object]
    attrs: tuple[str, ...]
    options: dict[str, dict] = field(default_factory=dict)  # create_dataset keywords of a dataset

    def check(self, h5: h5py.File, path, names=None) -> None:
        """UserError naming the datasets (of `names`, default all) that the file at `path` lacks."""
        missing = [name for name in (self.datasets if names is None else names) if name not in h5]
        if missing:
            raise _missing(self.kind, path, missing, "dataset")

    def create(self, h5: h5py.File, name: str, values) -> None:
        dtype = self.datasets[name]
        if dtype is STR:
            h5.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype())
        elif dtype == JPEG:
            column = h5.create_dataset(name, (len(values),), dtype=h5py.vlen_dtype(np.uint8))
            for i, value in enumerate(values):
                column[i] = value
        else:
            h5.create_dataset(name, data=np.asarray(values, dtype), **self.options.get(name, {}))

    def write(self, path, values: dict, attrs: dict) -> None:
        """Every dataset from `values` (name -> rows) in contract order, then `attrs` (JSON-encoded when not scalar)."""
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
            for name in self.datasets:
                self.create(h5, name, values[name])
            h5.attrs.update(_encoded(self, attrs))

    @contextlib.contextmanager
    def reading(self, path, names=None) -> Iterator[h5py.File]:
        """The open file, its datasets `names` (default all) checked; an unreadable file raises UserError naming it."""
        try:
            h5 = h5py.File(path, "r")
        except OSError as error:
            raise UserError(f"{path}: not a readable {self.kind} file ({error}); delete it and rerun") from error
        with h5:
            self.check(h5, path, names)
            yield h5

    def read(self, path, names=None) -> dict[str, np.ndarray]:
        """The datasets `names` (default: all) as arrays, strings decoded."""
        with self.reading(path, names) as h5:
            return {name: h5[name].asstr()[:] if self.datasets[name] is STR else h5[name][:]
                    for name in names or self.datasets}

    def attr(self, path_or_h5, name: str, default=None):
        """An attribute, JSON-decoded where the writer encoded it."""
        if not isinstance(path_or_h5, h5py.File):
            with self.reading(path_or_h5, names=()) as h5:
                return self.attr(h5, name, default)
        value = path_or_h5.attrs.get(name)
        if value is None:
            return default
        return json.loads(value) if name in _JSON_ATTRS.get(self.kind, ()) else value


def _encoded(contract: H5, attrs: dict) -> dict:
    unknown = set(attrs) - set(contract.attrs)
    if unknown:
        raise ValueError(f"{contract.kind}: attributes {sorted(unknown)} are not in its contract")
    return {name: json.dumps(value) if name in _JSON_ATTRS.get(contract.kind, ()) else value
            for name, value in attrs.items()}


# One row per stored frame, sorted by (video, chunk, frame): frame is the index within the chunk, source_frame the
# index in the video.
CHUNKS = H5("chunk container", {"video": STR, "chunk": np.int32, "frame": np.int32, "source_frame": np.int32,
                                "jpeg": JPEG}, attrs=("shard", "length", "max_side", "skipped", "notes"))
# features N x D float32 of a frozen backbone, written batch by batch (`feature_file`); set -1 outside invariance sets.
FEATURES = H5("feature", {"features": np.float32, "label": np.int64, "set": np.int64, "class_names": STR},
              attrs=("model", "backbone", "dataset", "arch", "image_size", "options"))  # options: the trunk's
# Object crops (N x S x S x 3 RGB uint8) with their part-label maps (N x S x S); split 0 train, 1 test.
CROPS = H5("part crops", {"images": np.uint8, "part_maps": np.uint8, "class_name": STR, "label": np.int64,
                          "split": np.int8, "image": STR}, attrs=("classes", "part_names", "skipped"),
           options={"part_maps": dict(compression="gzip", compression_opts=4)})
_JSON_ATTRS = {CHUNKS.kind: ("skipped", "notes"), CROPS.kind: ("classes", "part_names", "skipped"),
               FEATURES.kind: ("options",)}


def write_crops(path, values: dict, attrs: dict) -> None:
    """The crops file; each image is its own HDF5 chunk, as the feature extractor reads them one at a time."""
    side = np.shape(values["images"])[1]
    contract = H5(CROPS.kind, CROPS.datasets, CROPS.attrs,
                  {**CROPS.options, "images": dict(chunks=(1, side, side, 3))})
    contract.write(path, values, attrs)


@contextlib.contextmanager
def feature_file(path, *, rows: int, dim: int, labels, sets, class_names, attrs: dict) -> Iterator[h5py.Dataset]:
    """Write a feature file atomically: yields its empty `features` dataset (rows x dim) for the caller to fill."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        features = h5.create_dataset("features", (rows, dim), dtype="float32")
        for name, values in (("label", labels), ("set", sets), ("class_names", class_names)):
            FEATURES.create(h5, name, values)
        h5.attrs.update(_encoded(FEATURES, attrs))
        yield features


def require_finite(features: np.ndarray, where: str | os.PathLike) -> np.ndarray:
    """`features`, or UserError naming `where` (a file, a stage) and the rows that hold NaN or inf (a diverged
    backbone's output)."""
    # min and max propagate NaN and expose inf without an N x D temporary
    if features.size and not (np.isfinite(features.min()) and np.isfinite(features.max())):
        bad_rows = np.flatnonzero(~np.isfinite(features.reshape(len(features), -1)).all(axis=1))
        raise UserError(f"{where}: {bad_rows.size} feature rows hold NaN or inf (first rows {bad_rows[:5].tolist()})")
    return features


def read_features(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features N x D, labels N, set ids N) of one feature file; a truncated or foreign file, or features that hold
    NaN or inf, raise UserError."""
    data = FEATURES.read(path, ["features", "label", "set"])
    return require_finite(data["features"], path), data["label"], data["set"]
