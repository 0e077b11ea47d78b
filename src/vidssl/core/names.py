"""Names as a file system allows them: which ones a stage can store (valid UTF-8), how to show any of them, which are
frame numbers, and listings that name files.

A name that is not valid UTF-8 reaches Python as a string with surrogates: Parquet and HDF5 strings cannot hold it, and
OpenCV's own file functions crash on it, so readers record such an input as skipped under its `shown` name.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

_ASCII_NUMBER = re.compile(r"[0-9]+")


def shown(path: str | os.PathLike) -> str:
    """`path` as text any file, table or log can hold: bytes that are not UTF-8 written as `\\xNN`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def not_utf8(path: str | os.PathLike) -> str:
    """Why `path` cannot be stored or opened ("" when it can): a name that is not valid UTF-8."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return f"name is not valid UTF-8 ({shown(path)}); rename it to have it read"
    return ""


def is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '①', '²' and '٣', which int() rejects or reads as another number."""
    return _ASCII_NUMBER.fullmatch(text) is not None


def frame_number(path: Path) -> int | None:
    """The number of a frame file named by ASCII digits (`00042.jpg` -> 42); None for any other name."""
    return int(path.stem) if is_number(path.stem) else None


def read_lines(path: str | os.PathLike) -> list[str]:
    """The non-blank lines of a listing, stripped; bytes that are not UTF-8 are decoded as file names are, so that a
    listed name still finds its file."""
    return [line.strip() for line in os.fsdecode(Path(path).read_bytes()).splitlines() if line.strip()]
