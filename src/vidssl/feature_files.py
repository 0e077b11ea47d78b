"""Reading the per-dataset feature files that `vidssl.features.extract` writes (HDF5: features, label, set)."""
from __future__ import annotations

import os

import h5py
import numpy as np

from vidssl.errors import UserError


def read_features(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features N x D, labels N, set ids N) of one feature file; a truncated or foreign file raises UserError."""
    try:
        with h5py.File(path, "r") as h5:
            return h5["features"][:], h5["label"][:], h5["set"][:]
    except (OSError, KeyError) as error:
        raise UserError(f"{path}: not a readable feature file ({error}); delete it and rerun") from error
