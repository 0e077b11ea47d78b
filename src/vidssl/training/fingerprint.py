"""What a training run is made from, as a resume copy records it: the method, the config values, and a fingerprint of
every input it reads; and, between two of them, what differs, in words a user can act on.

A file's fingerprint is its size, its mtime_ns and a digest of its metadata (a Parquet footer, an HDF5 file's
structure and attributes), never of its data: a shard's chunk container can hold hundreds of GB (docs/design.md).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np

EDGE_BYTES = 64 * 1024  # what an unknown format contributes from each end
MOST_NAMED = 5  # differences a warning names before it counts the rest


def _parquet_footer(handle, size: int) -> bytes | None:
    """The footer (schema, row groups, column statistics, key-value metadata) and its length and magic."""
    if size < 12:
        return None
    handle.seek(size - 8)
    tail = handle.read(8)
    length = int.from_bytes(tail[:4], "little")
    if tail[4:] != b"PAR1" or length + 8 > size:
        return None
    handle.seek(size - 8 - length)
    return handle.read(length + 8)


def _attribute_bytes(value) -> bytes:
    if isinstance(value, (str, bytes)):
        return value.encode() if isinstance(value, str) else value
    array = np.asarray(value)
    return repr(value).encode() if array.dtype.kind == "O" else array.dtype.str.encode() + array.tobytes()


def _hdf5_structure(path: Path) -> bytes | None:
    """Every object's name, shape, dtype and attributes: chunk containers record their chunking parameters there."""
    parts = []

    def add(name, item):
        parts.append(name.encode())
        if isinstance(item, h5py.Dataset):
            parts.append(f"{item.shape}{item.dtype}".encode())
        for key in sorted(item.attrs):
            parts.extend([key.encode(), _attribute_bytes(item.attrs[key])])

    try:
        with h5py.File(path, "r") as h5:
            add("/", h5)
            h5.visititems(add)
    except OSError:
        return None
    return b"\0".join(parts)


def _edges(handle, size: int) -> bytes:
    head = handle.read(EDGE_BYTES)
    handle.seek(max(size - EDGE_BYTES, 0))
    return head + handle.read(EDGE_BYTES)


def file_fingerprint(path: str | os.PathLike) -> dict:
    """Size, mtime_ns and a digest of the file's metadata (its first and last 64 KiB for other formats)."""
    path = Path(path)
    stat = path.stat()
    with open(path, "rb") as handle:
        metadata = _parquet_footer(handle, stat.st_size) if path.suffix == ".parquet" else None
        if metadata is None and path.suffix in (".h5", ".hdf5"):
            metadata = _hdf5_structure(path)
        if metadata is None:
            handle.seek(0)
            metadata = _edges(handle, stat.st_size)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "metadata": hashlib.sha256(metadata).hexdigest()}


def image_folder_fingerprint(root: str | os.PathLike, items: list[tuple[str, int]]) -> dict:
    """An ImageFolder set without a stat per image (ImageNet holds 1.28 M): its image names and labels, and the mtime_ns
    of each class folder, which adding, removing or renaming an image changes."""
    names = hashlib.sha256("\n".join(f"{label} {path}" for path, label in items).encode()).hexdigest()
    folders = sorted({str(Path(path).parent) for path, _ in items})
    mtimes = hashlib.sha256(" ".join(str(os.stat(f).st_mtime_ns) for f in folders).encode()).hexdigest()
    return {"images": len(items), "names": names, "folder_mtimes": mtimes}


# The `train` keys that cannot change the weights a run ends with: which methods run, where the labelled set is (its
# files are fingerprinted apart), the loader workers, the GPUs for the same global batch (every sample is a function of
# (seed, index), and shuffle BN keeps its groups), and when checkpoints and monitors run (monitors run under no_grad
# and restore the RNG and BN statistics). They are neither a Snakemake param of training nor part of the identity.
RUN_SETTINGS = ("methods", "labelled", "workers", "gpus", "checkpoint_every", "knn_every", "knn_samples")


def weight_settings(cfg: dict) -> dict:
    """A run's config without the `train` keys that cannot change its weights (RUN_SETTINGS)."""
    return cfg | {"train": {k: v for k, v in cfg["train"].items() if k not in RUN_SETTINGS}}


def run_identity(method: str, cfg: dict, files: dict[str, list[str]], labelled: str | None,
                 labelled_items: list[tuple[str, int]] | None) -> dict:
    """What a resume copy must have been made from to be resumed: `files` holds the file sets the run reads."""
    inputs = {role: {str(path): file_fingerprint(path) for path in paths} for role, paths in sorted(files.items())}
    if labelled:
        inputs["labelled"] = {str(labelled): image_folder_fingerprint(labelled, labelled_items or [])}
    return {"method": method, "config": cfg, "inputs": inputs}


def _changed_values(old, new, prefix: str = ""):
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            yield from _changed_values(old.get(key), new.get(key), f"{prefix}{key}.")
    elif old != new:
        yield f"{prefix.rstrip('.')} {old!r} -> {new!r}"


def _changed_inputs(old: dict, new: dict):
    for role in sorted(set(old) | set(new)):
        before, after = old.get(role) or {}, new.get(role) or {}
        for path in sorted(set(before) | set(after)):
            if path not in before:
                yield f"{role} {path} is new"
            elif path not in after:
                yield f"{role} {path} is no longer read"
            elif before[path] != after[path]:
                fields = [key for key in after[path] if before[path].get(key) != after[path][key]]
                yield f"{role} {path} changed ({', '.join(fields)})"


def differences(old, new: dict) -> list[str]:
    """What differs between two run identities, e.g. ["train.lr 0.06 -> 0.03", "chunks a.h5 changed (size, ...)"]."""
    if not isinstance(old, dict) or set(old) != set(new):
        return ["it was made by another version of vidssl"]
    found = [f"method {old['method']} -> {new['method']}"] if old["method"] != new["method"] else []
    found += list(_changed_values(old["config"], new["config"]))
    return found + list(_changed_inputs(old["inputs"], new["inputs"]))


def describe(found: list[str]) -> str:
    """The first differences, and how many more there are."""
    more = len(found) - MOST_NAMED
    return "; ".join(found[:MOST_NAMED]) + (f"; and {more} more" if more > 0 else "")
