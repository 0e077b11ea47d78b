"""MATLAB `.mat` annotation files: any file scipy cannot read is one UserError naming it, as readers record skips."""
from __future__ import annotations

import os
from pathlib import Path

import scipy.io

from vidssl.core.errors import UserError

V73_ADVICE = "MATLAB v7.3 (HDF5) file, which scipy cannot read; save it again in MATLAB with '-v7'"


def load_mat(path: str | os.PathLike, **options) -> dict:
    """scipy.io.loadmat(path, **options); a file it cannot read raises UserError `<name>: unreadable .mat file (why)`."""
    try:
        return scipy.io.loadmat(path, **options)
    except NotImplementedError as error:  # scipy's only NotImplementedError: the v7.3 format
        raise UserError(f"{Path(path).name}: unreadable .mat file ({V73_ADVICE})") from error
    # The parser raises whatever the bytes lead it to (zlib.error, TypeError, ValueError, struct.error, ...).
    except Exception as error:
        raise UserError(f"{Path(path).name}: unreadable .mat file ({type(error).__name__}: {error})") from error
