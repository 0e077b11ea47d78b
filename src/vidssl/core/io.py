"""Atomic artifact writes, validated reads and per-rule logging shared by every stage."""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import socket
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vidssl.core.errors import UserError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # a full disk and a full quota are one problem to the user
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
# `.<name>.tmp.<host>.<pid>.<random>`, and `.<name>.tmp<pid>` as earlier versions wrote it (on one host)
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.tmp(?:\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}|(?P<bare_pid>\d+))")


def temp_sibling(path: Path) -> Path:
    """A hidden sibling of `path` that no other writer names, on any node of a shared file system."""
    return path.with_name(f".{path.name}.tmp.{HOST}.{os.getpid()}.{secrets.token_hex(4)}")


def temp_writer(name: str) -> tuple[str, int] | None:
    """(host, pid) of the process that made a `temp_sibling` name; None for any other name."""
    match = _TEMP_NAME.fullmatch(name)
    if match is None:
        return None
    if match["bare_pid"]:
        return HOST, int(match["bare_pid"])
    return match["host"], int(match["pid"])


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds.

    A killed job or a full disk therefore never leaves a half-written artifact under the final name; a temp that a
    killed job leaves is removed at the next start (vidssl.core.integrity.stale_temps).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
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
    """ENOSPC or EDQUOT anywhere in the exception chain, or a failed write where no block can be written now.

    The second case covers writers that swallow the OSError: torch.save to a path raises a bare RuntimeError
    ("unexpected pos"), and HDF5 may report its own error types. A quota does not show in statvfs, so one block is
    written to find out.
    """
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in NO_SPACE:
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        if os.statvfs(folder).f_bavail == 0:
            return True
    except OSError:
        return False
    return _block_refused(folder)


def _block_refused(folder: Path) -> bool:
    probe = temp_sibling(folder / "space-probe")
    try:
        with open(probe, "wb") as handle:
            handle.write(bytes(4096))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        return error.errno in NO_SPACE
    finally:
        probe.unlink(missing_ok=True)
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
        stream = open(log_path, "a", buffering=1, errors="backslashreplace")  # names that are not valid UTF-8
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
