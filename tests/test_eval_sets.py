"""Evaluation-set readers on tiny ALOI-, GOT-10k- and synthetic-style fixtures, and image loading."""
import math

import cv2
import numpy as np
import pandas as pd
import pytest

from vidssl.datasets.eval_sets import COLUMNS, aloi_index, got10k_index, load_image, synthetic_index
from vidssl.io import UserError


def write_image(path, value=128, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full(size, value, dtype=np.uint8))


@pytest.fixture
def aloi_root(tmp_path):
    root = tmp_path / "aloi"
    for name in ("1/1_r0.png", "1/1_r5.png", "1/1_l1c1.png", "1/1_i110.png",
                 "2/2_r0.jpg", "2/2_r10.jpg", "2/2_l2c1.png",
                 "10/10_r0.png", "10/10_r5.png"):
        write_image(root / name)
    (root / "1" / "notes.txt").write_text("not an image")
    return root


def test_aloi_views_one_set_per_object_each_its_own_class(aloi_root):
    frame, skipped = aloi_index(aloi_root, kind="view")
    assert list(frame.columns) == COLUMNS
    assert skipped == []
    assert (frame["dataset"] == "aloi_view").all()
    assert sorted(p.split("/")[-1] for p in frame["path"]) == sorted(
        ["1_r0.png", "1_r5.png", "2_r0.jpg", "2_r10.jpg", "10_r0.png", "10_r5.png"])
    assert all(p.startswith(str(aloi_root)) for p in frame["path"])
    # objects in numeric folder order 1, 2, 10 -> sets 0, 1, 2
    set_of = {p.split("/")[-2]: s for p, s in zip(frame["path"], frame["set"])}
    assert set_of == {"1": 0, "2": 1, "10": 2}
    # each object its own class, named after its folder; labels number the sorted names
    assert (frame["class_name"] == frame["path"].str.split("/").str[-2]).all()
    assert dict(zip(frame["class_name"], frame["label"])) == {"1": 0, "10": 1, "2": 2}
    assert frame[["x1", "y1", "x2", "y2"]].isna().all().all()


def test_aloi_illumination_and_objects_without_images(aloi_root):
    frame, skipped = aloi_index(aloi_root, kind="illum")
    names = sorted(p.split("/")[-1] for p in frame["path"])
    assert names == ["1_i110.png", "1_l1c1.png", "2_l2c1.png"]
    assert [s["item"] for s in skipped] == [str(aloi_root / "10")]
    assert "no illum images" in skipped[0]["reason"]


def test_aloi_classes_csv(aloi_root):
    (aloi_root / "classes.csv").write_text("object,class_name\n1,cup\n2,duck\n")
    frame, skipped = aloi_index(aloi_root, kind="view")
    assert dict(zip(frame["path"].str.split("/").str[-2], frame["class_name"])) == {"1": "cup", "2": "duck"}
    assert dict(zip(frame["class_name"], frame["label"])) == {"cup": 0, "duck": 1}
    assert len(skipped) == 1 and "not listed" in skipped[0]["reason"]


def test_aloi_bad_kind_and_root(aloi_root, tmp_path):
    with pytest.raises(UserError, match="kind"):
        aloi_index(aloi_root, kind="colour")
    with pytest.raises(UserError, match="not a directory"):
        aloi_index(tmp_path / "absent", kind="view")


def write_video(root, name, covers, boxes=None, frames=None, meta=None, files=("groundtruth.txt", "cover.label")):
    folder = root / name
    for i in range(len(covers) if frames is None else frames):
        write_image(folder / f"{i + 1:08d}.jpg", size=(40, 60))
    boxes = boxes or [(i, 2 * i, 10 + i, 5 + i) for i in range(len(covers))]
    if "groundtruth.txt" in files:
        (folder / "groundtruth.txt").write_text("".join(f"{x},{y},{w},{h}\n" for x, y, w, h in boxes))
    if "cover.label" in files:
        (folder / "cover.label").write_text("".join(f"{c}\n" for c in covers))
    if meta:
        (folder / "meta_info.ini").write_text(f"[METAINFO]\nurl: x\nobject_class: {meta}\nmotion_class: walking\n")
    return folder


@pytest.fixture
def got_root(tmp_path):
    root = tmp_path / "got10k"
    write_video(root, "GOT-10k_Train_000001", [8, 8, 5, 3, 3, 1], meta="cat")
    write_video(root, "GOT-10k_Train_000002", [8, 8, 8, 7, 7, 7])  # two levels only
    write_video(root, "GOT-10k_Train_000003", [8, 6, 4, 2], frames=5)  # five frames, four lines
    write_video(root, "GOT-10k_Train_000004", [8, 6, 4, 2], files=("groundtruth.txt",))
    # level 0 first appears with an empty box (object absent): the next level-0 frame stands in
    write_video(root, "GOT-10k_Train_000005", [0, 0, 2, 4, 6],
                boxes=[(0, 0, 0, 0), (1, 1, 5, 5), (2, 2, 5, 5), (3, 3, 5, 5), (4, 4, 5, 5)])
    (root / "list.txt").write_text("not a video\n")
    return root


def test_got10k_one_frame_per_cover_level_cropped_to_its_box(got_root):
    frame, skipped = got10k_index(got_root)
    assert list(frame.columns) == COLUMNS
    assert (frame["dataset"] == "got10k_occlusion").all()
    first = frame[frame["path"].str.contains("000001/")]
    # levels 8 (frame 1), 5 (frame 3), 3 (frame 4, not 5), 1 (frame 6)
    assert sorted(p.split("/")[-1] for p in first["path"]) == ["00000001.jpg", "00000003.jpg", "00000004.jpg",
                                                                 "00000006.jpg"]
    row = first[first["path"].str.endswith("00000004.jpg")].iloc[0]  # box line 4: x=3, y=6, w=13, h=8
    assert (row.x1, row.y1, row.x2, row.y2) == (3, 6, 16, 14)
    assert set(first["class_name"]) == {"cat"}
    fifth = frame[frame["path"].str.contains("000005/")]
    assert sorted(p.split("/")[-1] for p in fifth["path"]) == ["00000002.jpg", "00000003.jpg", "00000004.jpg",
                                                                 "00000005.jpg"]
    assert set(fifth["class_name"]) == {"object"}
    # one set per video (numbered over the sorted video folders), labels number the sorted class names
    assert frame.groupby("set")["path"].apply(lambda p: p.str.split("/").str[-2].nunique()).eq(1).all()
    assert first["set"].iloc[0] == 0 and fifth["set"].iloc[0] == 4
    assert dict(zip(frame["class_name"], frame["label"])) == {"cat": 0, "object": 1}

    reasons = {s["item"].split("/")[-1]: s["reason"] for s in skipped}
    assert set(reasons) == {"GOT-10k_Train_000002", "GOT-10k_Train_000003", "GOT-10k_Train_000004"}
    assert "2 distinct cover levels" in reasons["GOT-10k_Train_000002"]
    assert "line count mismatch" in reasons["GOT-10k_Train_000003"]
    assert "missing cover.label" in reasons["GOT-10k_Train_000004"]


def test_got10k_cover_span_threshold_and_classes_csv(got_root):
    frame, skipped = got10k_index(got_root, min_cover_span=2)
    assert frame["path"].str.contains("000002/").sum() == 2
    assert len(skipped) == 2
    frame, _ = got10k_index(got_root, min_cover_span=5)
    assert frame.empty and list(frame.columns) == COLUMNS

    (got_root / "classes.csv").write_text("video,class_name\nGOT-10k_Train_000005,dog\n")
    frame, skipped = got10k_index(got_root)
    assert set(frame["class_name"]) == {"dog"} and (frame["label"] == 0).all()
    assert any("not listed in classes.csv" in s["reason"] for s in skipped)


def test_load_image_crops_clips_and_resizes(tmp_path):
    image = np.zeros((10, 20, 3), dtype=np.uint8)
    image[:, 10:] = (255, 0, 0)  # right half pure blue in OpenCV's BGR
    path = tmp_path / "half.png"
    cv2.imwrite(str(path), image)
    whole = load_image({"path": str(path), "x1": math.nan, "y1": math.nan, "x2": math.nan, "y2": math.nan}, 16)
    assert whole.shape == (16, 16, 3) and whole.dtype == np.uint8
    assert (whole[:, :6] == 0).all() and (whole[:, -6:] == (0, 0, 255)).all()  # RGB order
    # a box reaching past the image is clipped to it: only the blue half remains
    crop = load_image(pd.Series({"path": str(path), "x1": 10.0, "y1": -5.0, "x2": 40.0, "y2": 30.0}), 8)
    assert crop.shape == (8, 8, 3) and (crop == (0, 0, 255)).all()
    with pytest.raises(UserError, match="outside"):
        load_image({"path": str(path), "x1": 30.0, "y1": 0.0, "x2": 40.0, "y2": 5.0}, 8)


def test_load_image_grayscale_and_unreadable(tmp_path):
    gray = tmp_path / "gray.png"
    write_image(gray, value=77, size=(5, 7))
    out = load_image({"path": str(gray), "x1": math.nan, "y1": math.nan, "x2": math.nan, "y2": math.nan}, 4)
    assert out.shape == (4, 4, 3) and (out == 77).all()
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a jpeg")
    for path in (broken, tmp_path / "absent.png"):
        with pytest.raises(UserError, match=str(path)):
            load_image({"path": str(path), "x1": math.nan, "y1": math.nan, "x2": math.nan, "y2": math.nan}, 4)


def test_synthetic_index_keeps_datasets_and_records_missing_images(tmp_path):
    rows = [("viewpoint", f"viewpoint/car/{s:04d}_{f:02d}.jpg", 1, "car", s, f) for s in (0, 1) for f in range(3)]
    rows += [("occlusion", f"occlusion/cat/{s:04d}_{f:02d}.jpg", 0, "cat", s, f) for s in (2,) for f in range(2)]
    pd.DataFrame(rows, columns=["dataset", "path", "label", "class_name", "set", "frame"]).to_parquet(
        tmp_path / "index.parquet")
    for _, relative, *_ in rows[1:]:  # the first image is missing
        write_image(tmp_path / relative)
    frame, skipped = synthetic_index(tmp_path, ["viewpoint"])
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 5 and (frame["dataset"] == "viewpoint").all()
    assert frame["path"].tolist() == [str(tmp_path / r[1]) for r in rows[1:6]]
    assert frame["set"].tolist() == [0, 0, 1, 1, 1] and (frame["label"] == 1).all()
    assert frame[["x1", "y1", "x2", "y2"]].isna().all().all()
    assert skipped == [{"item": str(tmp_path / rows[0][1]), "reason": "image listed in index.parquet is missing"}]
    with pytest.raises(UserError, match="available: occlusion, viewpoint"):
        synthetic_index(tmp_path, ["viewpoint", "lighting"])
