"""Pascal-Part reader: MATLAB struct layouts as scipy.io.savemat/loadmat produce them."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
import scipy.io

from vidssl.core.io import UserError
from vidssl.datasets.pascal_part import (
    PascalObject,
    fold_part_name,
    read_annotation,
    write_annotation,
)

OBJECT_FIELDS = [("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")]
PART_FIELDS = [("part_name", "O"), ("mask", "O")]


def box_mask(y1, y2, x1, x2, shape=(6, 8)):
    mask = np.zeros(shape, np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def part_array(parts):
    array = np.empty((1, len(parts)), dtype=PART_FIELDS)
    for index, part in enumerate(parts):
        array[0, index] = part
    return array


def save_raw(path, objects, imname="2008_000001", fields=OBJECT_FIELDS):
    structs = np.empty((1, len(objects)), dtype=fields)
    for index, obj in enumerate(objects):
        structs[0, index] = obj
    scipy.io.savemat(path, {"anno": np.array([[(imname, structs)]], dtype=[("imname", "O"), ("objects", "O")])})


def test_fold_part_name():
    assert fold_part_name("engine_3") == "engine"
    assert fold_part_name("wheel_12") == "wheel"
    assert fold_part_name("lwing", {"lwing": "wing"}) == "wing"
    assert fold_part_name("rwing_2", {"rwing": "wing"}) == "wing"
    assert fold_part_name("lfho") == "lfho"
    assert fold_part_name("head_top") == "head_top"  # only a numeric suffix is an index


def test_reads_every_field_type(tmp_path):
    wheel_1, wheel_2 = box_mask(4, 6, 0, 2), box_mask(4, 6, 6, 8)
    car = ("car", np.array([[7]], np.uint8), box_mask(1, 6, 0, 8),
           part_array([("wheel_1", wheel_1), ("window_1", box_mask(1, 3, 2, 5)), ("wheel_2", wheel_2)]))
    boat = ("boat", np.array([[4.0]]), box_mask(0, 2, 0, 3), np.zeros((0, 0)))
    person = ("person", 15, box_mask(0, 4, 5, 7), np.empty((1, 0), dtype=PART_FIELDS))
    bird = ("bird", np.array([[3]], np.uint8), box_mask(0, 3, 0, 3),
            part_array([("lwing", box_mask(0, 1, 0, 1)), ("rwing", box_mask(2, 3, 2, 3)), ("head", box_mask(1, 2, 1, 2))]))
    path = tmp_path / "2008_000001.mat"
    save_raw(path, [car, boat, person, bird])
    # the layout is the one the reader must cope with: strings as 1-element arrays, 2-D numbers
    raw = scipy.io.loadmat(path)["anno"][0, 0]["objects"]
    assert raw.shape == (1, 4) and raw[0, 0]["class"].shape == (1,) and raw[0, 0]["class_ind"].shape == (1, 1)

    objects = read_annotation(path, merge={"lwing": "wing", "rwing": "wing"})
    assert [(o.class_name, o.class_ind) for o in objects] == [("car", 7), ("boat", 4), ("person", 15), ("bird", 3)]
    car_obj = objects[0]
    assert car_obj.mask.dtype == bool and car_obj.mask.shape == (6, 8) and car_obj.mask.sum() == 40
    assert sorted(car_obj.parts) == ["wheel", "window"]
    np.testing.assert_array_equal(car_obj.parts["wheel"], (wheel_1 | wheel_2).astype(bool))
    assert car_obj.parts["window"].sum() == 6
    assert objects[1].parts == {} and objects[2].parts == {}
    assert sorted(objects[3].parts) == ["head", "wing"] and objects[3].parts["wing"].sum() == 2
    assert sorted(read_annotation(path)[3].parts) == ["head", "lwing", "rwing"]


def test_missing_parts_field_names_it(tmp_path):
    path = tmp_path / "2008_000002.mat"
    save_raw(path, [("car", 7, box_mask(0, 2, 0, 2))], fields=OBJECT_FIELDS[:3])
    with pytest.raises(UserError, match=r"2008_000002\.mat.*'parts'"):
        read_annotation(path)


def test_missing_part_name_and_unreadable_file(tmp_path):
    path = tmp_path / "bad_part.mat"
    parts = np.empty((1, 1), dtype=[("name", "O"), ("mask", "O")])
    parts[0, 0] = ("wheel_1", box_mask(0, 1, 0, 1))
    save_raw(path, [("car", 7, box_mask(0, 2, 0, 2), parts)])
    with pytest.raises(UserError, match=r"bad_part\.mat.*'part_name'"):
        read_annotation(path)
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(UserError, match=r"garbage\.mat"):
        read_annotation(garbage)
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"something": np.ones(3)})
    with pytest.raises(UserError, match=r"other\.mat.*'anno'"):
        read_annotation(other)


def test_part_mask_of_other_shape_rejected(tmp_path):
    path = tmp_path / "shape.mat"
    save_raw(path, [("car", 7, box_mask(0, 2, 0, 2), part_array([("door_1", np.ones((3, 3), np.uint8))]))])
    with pytest.raises(UserError, match=r"shape\.mat object 0 part 0 mask"):
        read_annotation(path)


def test_write_annotation_round_trip(tmp_path):
    objects = [
        PascalObject("cat", 8, box_mask(0, 4, 0, 4).astype(bool),
                     {"head": box_mask(0, 2, 0, 2).astype(bool), "leg_1": box_mask(3, 4, 0, 1).astype(bool),
                      "leg_2": box_mask(3, 4, 3, 4).astype(bool)}),
        PascalObject("chair", 9, box_mask(4, 6, 4, 8).astype(bool), {}),
    ]
    path = tmp_path / "x.mat"
    write_annotation(path, "x", objects)
    back = read_annotation(path)
    assert [(o.class_name, o.class_ind) for o in back] == [("cat", 8), ("chair", 9)]
    np.testing.assert_array_equal(back[0].mask, objects[0].mask)
    assert sorted(back[0].parts) == ["head", "leg"] and back[0].parts["leg"].sum() == 2
    assert back[1].parts == {}


def test_write_annotation_bytes_do_not_depend_on_the_time(tmp_path, monkeypatch):
    """scipy's header names the second a file was written in (time.asctime): two clocks a year apart, no waiting
    for the real one to move on."""
    objects = [PascalObject("cat", 8, box_mask(0, 4, 0, 4).astype(bool), {"head": box_mask(0, 2, 0, 2).astype(bool)})]
    written = {}
    for name, clock in (("a", "Mon Jan  1 00:00:00 2024"), ("b", "Wed Jan  1 00:00:01 2025")):
        monkeypatch.setattr(time, "asctime", lambda *_, clock=clock: clock)
        written[name] = io.BytesIO()
        scipy.io.savemat(written[name], {"anno": np.ones(3)})
        write_annotation(tmp_path / f"{name}.mat", "x", objects)
    assert written["a"].getvalue() != written["b"].getvalue(), "scipy no longer writes the clock: test the new source"
    assert (tmp_path / "a.mat").read_bytes() == (tmp_path / "b.mat").read_bytes()
    assert [o.class_name for o in read_annotation(tmp_path / "b.mat")] == ["cat"]


def save_v73(path, matlab_header: bool = True):
    """A MATLAB v7.3 file as MATLAB writes it: an HDF5 file behind a 512-byte MAT header (version 0x0200)."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as h5:
        h5["anno"] = np.zeros((2, 2))
    if matlab_header:
        text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
        with open(path, "r+b") as handle:
            handle.write(text.ljust(116, b" ") + bytes(8) + b"\x00\x02IM")
    return path


def unreadable_mat_files(folder):
    """Files scipy.io.loadmat raises on, each with another exception type: v7.3 (NotImplementedError), a compressed
    element cut (zlib.error), an unknown element type (TypeError), an unknown version (ValueError)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_v73(folder / "v73.mat")
    whole = folder / "whole.mat"
    scipy.io.savemat(whole, {"anno": np.ones((40, 40))}, do_compression=True)
    data = whole.read_bytes()
    whole.unlink()
    (folder / "cut_compressed.mat").write_bytes(data[:140] + data[150:])
    (folder / "bad_element.mat").write_bytes(data[:128] + (99).to_bytes(4, "little") + data[132:])
    (folder / "bad_version.mat").write_bytes(data[:124] + b"\x00\x09" + data[126:])
    return [folder / f"{name}.mat" for name in ("bad_element", "bad_version", "cut_compressed", "v73")]


def test_any_file_scipy_cannot_read_is_a_user_error_naming_it(tmp_path):
    files = unreadable_mat_files(tmp_path)
    assert len(files) == 4
    for path in files:
        with pytest.raises(UserError, match=rf"^{path.name}: unreadable \.mat file \(.+\)$"):
            read_annotation(path)
    with pytest.raises(UserError, match=r"MATLAB v7\.3"):
        read_annotation(tmp_path / "v73.mat")
