"""The image list of one evaluation dataset, built from its source spec (`vidssl.datasets.sources`) and written."""
from __future__ import annotations

import pandas as pd

from vidssl.datasets.aloi import aloi_index
from vidssl.datasets.eval_sets import Skipped, synthetic_index
from vidssl.datasets.got10k import got10k_index
from vidssl.datasets.labelled import imagefolder_index, split_index, voc07_index
from vidssl.datasets.pascal3d import pascal3d_index
from vidssl.io import write_parquet

READERS = {
    "synthetic": synthetic_index,
    "aloi": aloi_index,
    "got10k": got10k_index,
    "pascal3d": pascal3d_index,
    "split": split_index,
    "imagefolder": imagefolder_index,
    "voc07": voc07_index,
}


def build_index(source: dict) -> tuple[pd.DataFrame, Skipped]:
    """A spec {"reader": name, **keyword arguments of that reader} -> (image list, skipped)."""
    options = dict(source)
    return READERS[options.pop("reader")](**options)


def write_index(source: dict, out_path: str, log) -> pd.DataFrame:
    """Build the list, log every skip, and write it (the skips kept in the file's metadata)."""
    index, skipped = build_index(source)
    for item in skipped:
        log.warning("skipped %s: %s", item["item"], item["reason"])
    write_parquet(index, out_path, sort_by=["set", "path"], metadata={"skipped": skipped})
    log.info("%s: %d images in %d sets of %d classes, %d skipped", out_path, len(index),
             index.set.nunique(), index.label.nunique(), len(skipped))
    return index
