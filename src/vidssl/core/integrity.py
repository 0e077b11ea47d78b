"""Cheap wholeness checks of artifacts, so that a file cut short outside our control is rebuilt, never read.

Our own writes are atomic (vidssl.core.io.atomic_path), so a half file under a final name can only come from outside: a copy
cut short, a full disk on a synced volume, disk corruption. Each check reads only a file's header and footer (bytes,
not the whole file), so scanning a results tree of thousands of artifacts at every workflow start stays cheap.
"""
from __future__ import annotations

import json
import os
import struct
import time
import zipfile
from pathlib import Path
from typing import Callable

from vidssl.core.io import HOST, temp_writer

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"
PARQUET_MAGIC = b"PAR1"
UNDEFINED_ADDRESS = {4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}
JSON_READ_LIMIT = 1 << 20
# Longer than any rule's runtime limit (training's 24 h): SLURM has ended every job that began before it.
REMOTE_TEMP_AGE_S = 48 * 3600


def _head_tail(path: Path, head: int, tail: int) -> tuple[bytes, bytes, int]:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        first = handle.read(head)
        handle.seek(max(0, size - tail))
        last = handle.read(tail)
    return first, last, size


def _parquet_whole(path: Path) -> bool:
    first, last, size = _head_tail(path, 4, 8)
    if size < 12 or first != PARQUET_MAGIC or last[4:] != PARQUET_MAGIC:
        return False
    footer = struct.unpack("<I", last[:4])[0]
    return 0 < footer <= size - 12


def _hdf5_whole(path: Path) -> bool:
    """Signature, then the superblock's end-of-file address against the real size (HDF5 spec, superblock v0-v3)."""
    first, _, size = _head_tail(path, 96, 0)
    if len(first) < 16 or first[:8] != HDF5_SIGNATURE:
        return False
    version = first[8]
    if version in (0, 1):
        offsets = first[13]
        base_at = 24 if version == 0 else 28  # v1 adds the indexed-storage K and 2 reserved bytes
        eof_at = base_at + 2 * offsets  # base address, free-space address, end-of-file address
    elif version in (2, 3):
        offsets = first[9]
        base_at = 12
        eof_at = base_at + 2 * offsets  # base address, superblock-extension address, end-of-file address
    else:
        return False
    if offsets not in UNDEFINED_ADDRESS or len(first) < eof_at + offsets:
        return False
    unpack = "<I" if offsets == 4 else "<Q"
    base = struct.unpack_from(unpack, first, base_at)[0]
    end = struct.unpack_from(unpack, first, eof_at)[0]
    return end != UNDEFINED_ADDRESS[offsets] and base + end <= size


def _zip_whole(path: Path) -> bool:
    """torch.save's zip layout: the central directory (at the end) must be present and consistent."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return False
    size = path.stat().st_size
    return bool(entries) and all(e.header_offset + e.compress_size <= size for e in entries)


def _png_whole(path: Path) -> bool:
    first, last, _ = _head_tail(path, 8, 8)
    return first == PNG_SIGNATURE and last == PNG_END


def _text_whole(path: Path) -> bool:
    """CSV and Markdown artifacts are written by pandas / our code and always end with a newline."""
    _, last, size = _head_tail(path, 0, 1)
    return size > 0 and last == b"\n"


def _json_whole(path: Path) -> bool:
    if path.stat().st_size > JSON_READ_LIMIT:  # not ours to parse at start: only the closing bracket
        _, last, _ = _head_tail(path, 0, 64)
        return last.rstrip()[-1:] in (b"}", b"]")
    try:
        json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return False
    return True


CHECKS = {
    ".parquet": _parquet_whole,
    ".h5": _hdf5_whole,
    ".hdf5": _hdf5_whole,
    ".pt": _zip_whole,
    ".pth": _zip_whole,
    ".png": _png_whole,
    ".csv": _text_whole,
    ".md": _text_whole,
    ".json": _json_whole,
}


def is_whole(path: str | os.PathLike) -> bool:
    """False when `path` is certainly cut short or not the format its suffix says; True for unknown suffixes."""
    path = Path(path)
    check = CHECKS.get(path.suffix.lower())
    if check is None:
        return True
    try:
        return check(path)
    except OSError:
        return False


def find_broken(root: str | os.PathLike, ours: Callable[[str], bool] = lambda path: True) -> list[Path]:
    """Every artifact under `root` that is not whole and whose path (as `root` joined with its place) is `ours`, sorted.

    `ours` says which names the pipeline writes, so that a user's own file under `root` is never taken for an artifact.
    Hidden names are skipped: temp files are `stale_temps`' business, and `.resume/` copies are validated where they
    are read.
    """
    broken = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        paths = [Path(folder) / name for name in files if not name.startswith(".")]
        broken += [path for path in paths if ours(str(path)) and not is_whole(path)]
    return sorted(broken)


def stale_temps(root: str | os.PathLike, now: float | None = None) -> list[Path]:
    """The temp files of atomic writes (vidssl.core.io.temp_sibling) under `root` whose writer is certainly gone, sorted.

    A temp from this host is stale when its process no longer runs; one from another node (a cluster job) when it
    was last written longer ago than any job may run. Nothing else is touched, in hidden folders neither.
    """
    now = time.time() if now is None else now
    stale = []
    for folder, _, files in os.walk(root):
        for name in files:
            writer = temp_writer(name)
            path = Path(folder) / name
            if writer is not None and _writer_gone(*writer, path, now):
                stale.append(path)
    return sorted(stale)


def _writer_gone(host: str, pid: int, path: Path, now: float) -> bool:
    if host != HOST:
        try:
            return now - path.stat().st_mtime > REMOTE_TEMP_AGE_S
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process
        return False
    return False
