"""The image list of one evaluation dataset, built from its source spec (`vidssl.datasets.sources`) and written."""
from __future__ import annotations

import logging

import pandas as pd

from vidssl.contracts import EVAL_INDEX
from vidssl.core.names import not_utf8, shown
from vidssl.datasets.aloi import aloi_index
from vidssl.datasets.eval_sets import Skipped, synthetic_index
from vidssl.datasets.got10k import got10k_index
from vidssl.datasets.labelled import imagefolder_index, split_index, voc07_index
from vidssl.datasets.pascal3d import pascal3d_index

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
    index, skipped = READERS[options.pop("reader")](**options)
    return _storable(index, skipped)


def _storable(index: pd.DataFrame, skipped: Skipped) -> tuple[pd.DataFrame, Skipped]:
    """Images named by a path that is not valid UTF-8 are skipped (the list's Parquet cannot hold it), every skip
    under a name any log can show; the labels keep their numbers."""
    reasons = index["path"].map(not_utf8)
    unstorable = (reasons != "").to_numpy()
    skipped = [{**item, "item": shown(item["item"])} for item in skipped]
    skipped += [{"item": shown(path), "reason": reason} for path, reason in zip(index["path"][unstorable],
                                                                             reasons[unstorable])]
    return index[~unstorable].reset_index(drop=True), skipped


def write_index(source: dict, out_path: str, *, log: logging.Logger | None = None) -> pd.DataFrame:
    """Build the list, log every skip, and write it (the skips kept in the file's metadata)."""
    log = log or logging.getLogger(__name__)
    index, skipped = build_index(source)
    for item in skipped:
        log.warning("skipped %s: %s", item["item"], item["reason"])
    EVAL_INDEX.write(index, out_path, metadata={"skipped": skipped})
    log.info("%s: %d images in %d sets of %d classes, %d skipped", out_path, len(index),
             index.set.nunique(), index.label.nunique(), len(skipped))
    return index
