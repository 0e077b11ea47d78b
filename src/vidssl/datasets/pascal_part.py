"""Reader of Pascal-Part annotations (Chen et al. 2014): one MATLAB `.mat` file per VOC 2010 image.

`scipy.io.loadmat(f)["anno"][0, 0]` holds `imname` and `objects` (a 1 x n struct array). An object
has `class`, `class_ind` (1-20), `mask` (H x W, 0/1) and `parts` (a 1 x m struct array of
`part_name` and `mask`; an empty 0x0 or 1x0 array when the object has none).

Part names: Pascal-Part numbers repeated parts (`wheel_1`, `wheel_2`, `engine_3`, `window_4`) and
names sides and positions separately (`lwing`/`rwing`, `lleg`/`rleg`, `fwheel`/`bwheel`, `lfho`
= left front hoof, `lebrow` = left eyebrow). Numbers are always folded away; sides and positions are
kept unless `merge` maps them (e.g. `{"lwing": "wing", "rwing": "wing"}`), so that the label set of
a class is as fine or as coarse as the user wants. Boat, chair, diningtable and sofa carry no parts.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io

from vidssl.core.errors import UserError
from vidssl.core.io import atomic_path
from vidssl.datasets.matlab import load_mat

_INDEX_SUFFIX = re.compile(r"_\d+$")


@dataclass
class PascalObject:
    """One annotated object: its class, its H x W mask and its part masks by folded name."""

    class_name: str
    class_ind: int
    mask: np.ndarray
    parts: dict[str, np.ndarray] = field(default_factory=dict)


def fold_part_name(name: str, merge: dict[str, str] | None = None) -> str:
    """`wheel_2` -> `wheel`; then `merge` renames (e.g. `lwing` -> `wing`)."""
    folded = _INDEX_SUFFIX.sub("", name.strip())
    return (merge or {}).get(folded, folded)


def _field(struct: np.void, name: str, where: str) -> object:
    if struct.dtype.names is None or name not in struct.dtype.names:
        raise UserError(f"{where}: missing field '{name}'; not a Pascal-Part annotation")
    return struct[name]


def _string(value: object, where: str) -> str:
    # loadmat without squeeze_me wraps strings in 1-element arrays (sometimes nested in object arrays).
    while isinstance(value, np.ndarray):
        if value.size != 1:
            raise UserError(f"{where}: expected a string, found an array of shape {value.shape}")
        value = value.reshape(-1)[0]
    if not isinstance(value, str):
        raise UserError(f"{where}: expected a string, found {type(value).__name__}")
    return value


def _integer(value: object, where: str) -> int:
    array = np.asarray(value)
    if array.size != 1 or not np.issubdtype(array.dtype, np.number):
        raise UserError(f"{where}: expected one number, found {array.dtype} of shape {array.shape}")
    return int(array.reshape(-1)[0])


def _mask(value: object, where: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 2 or array.dtype == object:
        raise UserError(f"{where}: expected a 2-D mask, found {array.dtype} of shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise UserError(f"{where}: mask shape {array.shape} differs from the object's {shape}")
    return array != 0


def _structs(value: object) -> list[np.void]:
    """The elements of a MATLAB struct array; none for the empty (0x0, 1x0, []) placeholders."""
    array = np.asarray(value)
    if array.size == 0 or array.dtype.names is None:
        return []
    return list(array.reshape(-1))


def read_annotation(mat_path: str | Path, merge: dict[str, str] | None = None) -> list[PascalObject]:
    """Every object of one Pascal-Part file, part masks OR-ed per folded name (see `fold_part_name`)."""
    mat_path = Path(mat_path)
    name = mat_path.name
    contents = load_mat(mat_path, squeeze_me=False)
    if "anno" not in contents:
        raise UserError(f"{name}: missing field 'anno'; not a Pascal-Part annotation")
    anno = np.asarray(contents["anno"])
    if anno.size == 0 or anno.dtype.names is None:
        raise UserError(f"{name}: field 'anno' is not a struct")
    anno = anno.reshape(-1)[0]
    _field(anno, "imname", name)
    objects = []
    for index, struct in enumerate(_structs(_field(anno, "objects", name))):
        where = f"{name} object {index}"
        mask = _mask(_field(struct, "mask", where), f"{where} mask")
        parts: dict[str, np.ndarray] = {}
        for part_index, part in enumerate(_structs(_field(struct, "parts", where))):
            part_where = f"{where} part {part_index}"
            part_name = fold_part_name(_string(_field(part, "part_name", part_where), part_where), merge)
            part_mask = _mask(_field(part, "mask", part_where), f"{part_where} mask", mask.shape)
            parts[part_name] = parts[part_name] | part_mask if part_name in parts else part_mask
        objects.append(PascalObject(
            class_name=_string(_field(struct, "class", where), f"{where} class"),
            class_ind=_integer(_field(struct, "class_ind", where), f"{where} class_ind"),
            mask=mask,
            parts=parts,
        ))
    return objects


# MAT 5's 116-byte text header, fixed: scipy's holds the time of writing, and the same set must be the same bytes
MAT_HEADER = b"MATLAB 5.0 MAT-file, written by vidssl".ljust(116)


def write_annotation(mat_path: str | Path, imname: str, objects: list[PascalObject]) -> None:
    """Write `objects` in the Pascal-Part layout (part names as given, e.g. `wheel_1`); for synthetic sets."""
    structs = np.empty((1, len(objects)), dtype=[("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")])
    for index, obj in enumerate(objects):
        parts = np.empty((1, len(obj.parts)), dtype=[("part_name", "O"), ("mask", "O")])
        for part_index, (name, mask) in enumerate(obj.parts.items()):
            parts[0, part_index] = (name, np.asarray(mask, np.uint8))
        structs[0, index] = (
            obj.class_name,
            np.array([[obj.class_ind]], np.uint8),
            np.asarray(obj.mask, np.uint8),
            parts if obj.parts else np.zeros((0, 0)),
        )
    anno = np.array([[(imname, structs)]], dtype=[("imname", "O"), ("objects", "O")])
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"anno": anno}, do_compression=True)
    data = buffer.getvalue()
    with atomic_path(mat_path) as tmp:
        tmp.write_bytes(MAT_HEADER + data[len(MAT_HEADER):])
