"""Atomic artifact writes, validated reads and per-rule logging shared by every stage."""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vidssl.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds.

    A killed job or a full disk therefore never leaves a half-written artifact under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        full = isinstance(error, Exception) and _disk_full(error, path.parent)  # before unlinking frees the space
        tmp.unlink(missing_ok=True)
        if full:
            raise UserError(f"disk full while writing {path}; nothing was left behind") from error
        raise


def _disk_full(error: BaseException, folder: Path) -> bool:
    """ENOSPC anywhere in the exception chain, or a failed write on a volume with no free block left.

    The second case covers writers that swallow the OSError: torch.save to a path raises a bare RuntimeError
    ("unexpected pos"), and HDF5 may report its own error types.
    """
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def write_parquet(
    frame: pd.DataFrame,
    path: str | os.PathLike,
    *,
    sort_by: list[str],
    group_by: list[str] | None = None,
    metadata: dict | None = None,
) -> None:
    """Write `frame` sorted by `sort_by`, one row group per distinct `group_by` key, atomically.

    `metadata` (JSON-serialisable) lands in the file's key-value metadata under b"vidssl".
    """
    frame = frame.sort_values(sort_by, kind="stable").reset_index(drop=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    schema = table.schema.with_metadata({**(table.schema.metadata or {}), b"vidssl": json.dumps(metadata or {})})
    table = table.cast(schema)
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            if not group_by or len(frame) == 0:
                writer.write_table(table)
            else:
                keys = frame[group_by]
                starts = keys.ne(keys.shift()).any(axis=1).to_numpy().nonzero()[0][1:]
                bounds = [0, *starts, len(frame)]
                for start, stop in zip(bounds[:-1], bounds[1:]):
                    writer.write_table(table.slice(start, stop - start))


def empty_frame(dtypes: dict[str, object]) -> pd.DataFrame:
    """A frame with no rows and these column dtypes, so that an empty artifact keeps its schema."""
    return pd.DataFrame({name: np.zeros(0, dtype) for name, dtype in dtypes.items()})


def _unreadable_parquet(path: str | os.PathLike, error: Exception) -> UserError:
    return UserError(f"{path}: not a readable Parquet file ({error}); delete it and rerun")


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """Read a Parquet artifact; a truncated or foreign file raises UserError naming it."""
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as error:
        raise _unreadable_parquet(path, error) from error


def parquet_file(path: str | os.PathLike) -> pq.ParquetFile:
    """Open a Parquet artifact for reading by row group; a truncated or foreign file raises UserError naming it."""
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as error:
        raise _unreadable_parquet(path, error) from error


def parquet_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata that write_parquet stored (skips, parameters)."""
    raw = (pq.read_schema(path).metadata or {}).get(b"vidssl", b"{}")
    return json.loads(raw)


def rule_logger(log_path: str | os.PathLike | None, name: str = "vidssl") -> logging.Logger:
    """Send this process's logging and stderr to the rule's log file (and keep stderr when there is none)."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_path, "a", buffering=1)
        sys.stderr = stream
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.handlers[:] = [handler]
    return logger


def write_csv(frame: pd.DataFrame, path: str | os.PathLike, **to_csv) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, **to_csv)


def save_figure(figure, path: str | os.PathLike) -> None:
    """Save a matplotlib figure as PNG atomically and free it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
