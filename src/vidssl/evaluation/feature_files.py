"""Reading the per-dataset feature files that `vidssl.evaluation.features.extract` writes (HDF5: features, label, set)."""
from __future__ import annotations

import os

import h5py
import numpy as np

from vidssl.core.errors import UserError


def require_finite(features: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """`features`, or UserError naming the file and the rows that hold NaN or inf (a diverged backbone's output)."""
    # min and max propagate NaN and expose inf without an N x D temporary
    if features.size and not (np.isfinite(features.min()) and np.isfinite(features.max())):
        bad_rows = np.flatnonzero(~np.isfinite(features.reshape(len(features), -1)).all(axis=1))
        raise UserError(f"{path}: {bad_rows.size} feature rows hold NaN or inf (first rows {bad_rows[:5].tolist()})")
    return features


def read_features(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features N x D, labels N, set ids N) of one feature file; a truncated or foreign file, or features that hold
    NaN or inf, raise UserError."""
    try:
        with h5py.File(path, "r") as h5:
            features, labels, sets = h5["features"][:], h5["label"][:], h5["set"][:]
    except (OSError, KeyError) as error:
        raise UserError(f"{path}: not a readable feature file ({error}); delete it and rerun") from error
    return require_finite(features, path), labels, sets
