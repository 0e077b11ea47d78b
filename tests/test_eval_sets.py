"""Evaluation-set readers against small hand-written ALOI, GOT-10k, Pascal3D+, ImageFolder and VOC fixtures whose
expected sets are written out by hand, the dataset plan of a config, and image loading."""
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import scipy.io
import yaml

from vidssl.contracts import EVAL_INDEX
from vidssl.core.io import UserError
from vidssl.datasets.aloi import aloi_index
from vidssl.datasets.eval_sets import load_image, synthetic_index
from vidssl.datasets.got10k import AUTHORS_SEED, got10k_index
from vidssl.datasets.labelled import imagefolder_index, list_labelled, split_index, voc07_index
from vidssl.datasets.pascal3d import pascal3d_index
from vidssl.datasets.readers import build_index
from vidssl.datasets.sources import INVARIANCE_TITLES, eval_plan


def write_image(path, value=128, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full(size, value, dtype=np.uint8))


def names(paths):
    return sorted(str(p).split("/")[-1] for p in paths)


def sets_by_name(frame):
    """set id -> sorted file names of its members."""
    return {int(s): names(group["path"]) for s, group in frame.groupby("set")}


@pytest.fixture
def aloi_root(tmp_path):
    """ALOI_viewpoint with objects 1, 2, 4 and 1000 (3 and the rest missing); ALOI_illumcolor with object 1;
    no ALOI_illumdir."""
    root = tmp_path / "aloi"
    for name in ("1/1_r0.png", "1/1_r5.png", "2/2_r0.png", "4/4_r0.png", "4/4_r10.png", "4/4_r15.png",
                 "1000/1000_r0.png"):
        write_image(root / "ALOI_viewpoint" / name)
    (root / "ALOI_viewpoint" / "2" / "notes.txt").write_text("not an image")
    (root / "ALOI_viewpoint" / "5").mkdir()
    write_image(root / "ALOI_illumcolor" / "1" / "1_i110.png")
    return root


def test_aloi_each_object_folder_one_set_and_its_own_class(aloi_root):
    frame, skipped = aloi_index(aloi_root / "ALOI_viewpoint", dataset="aloi_viewpoint")
    assert list(frame.columns) == EVAL_INDEX.names
    assert (frame["dataset"] == "aloi_viewpoint").all()
    assert sets_by_name(frame) == {1: ["1_r0.png", "1_r5.png"], 2: ["2_r0.png"],
                                   4: ["4_r0.png", "4_r10.png", "4_r15.png"], 1000: ["1000_r0.png"]}
    # class = the object; labels in numeric object order
    assert (frame["class_name"] == frame["set"].astype(str)).all()
    assert dict(zip(frame["class_name"], frame["label"])) == {"1": 0, "2": 1, "4": 2, "1000": 3}
    assert frame[["x1", "y1", "x2", "y2"]].isna().all().all()
    reasons = {s["item"].split("/")[-1]: s["reason"] for s in skipped}
    assert reasons["3"] == "object folder missing" and reasons["5"] == "no images"
    assert reasons["notes.txt"] == "not an image"
    assert set(reasons) == {str(n) for n in range(3, 1000) if n != 4} | {"notes.txt"}


def test_aloi_plan_names_three_datasets_and_skips_a_missing_folder(aloi_root):
    plan = eval_plan(plan_config(aloi=str(aloi_root)), "synth")
    assert list(plan.invariance) == ["aloi_viewpoint", "aloi_illumcolor"]
    assert plan.skipped == [{"item": "aloi_illumdir", "reason": f"{aloi_root / 'ALOI_illumdir'} is not a folder"}]
    frame, _ = build_index(plan.invariance["aloi_illumcolor"])
    assert sets_by_name(frame) == {1: ["1_i110.png"]} and (frame["dataset"] == "aloi_illumcolor").all()
    with pytest.raises(UserError, match="holds none of"):
        eval_plan(plan_config(aloi=str(aloi_root / "ALOI_viewpoint")), "synth")


def plan_config(**evaluation):
    return {
        "seed": 3,
        "model": {"image_size": 48},
        "evaluation": {"synthetic_sets": [], "aloi": None, "got10k": None, "pascal3d": None, "seed": 1992,
                       "image_size": None, "image_size_by_dataset": {}, **evaluation},
        "classification": {"synthetic": False, "test_fraction": 0.3, "imagefolder": None, "voc07": None},
    }


def test_plan_image_sizes_and_classification_sources(tmp_path):
    config = plan_config(synthetic_sets=["viewpoint"], got10k="/g", pascal3d="/p", image_size=128,
                         image_size_by_dataset={"pascal3d_instance": 224, "pascal3d_viewpoint_instance": 224})
    config["classification"].update(synthetic=True, voc07="/voc")
    plan = eval_plan(config, "synth")
    assert plan.invariance["viewpoint"] == {"reader": "synthetic", "root": "synth/trajectories",
                                            "datasets": ["viewpoint"]}
    assert plan.invariance["got10k_occlusion"] == {"reader": "got10k", "root": "/g", "seed": 1992}
    assert plan.datasets == ["viewpoint", "got10k_occlusion", "pascal3d_viewpoint_instance", "pascal3d_instance",
                             "synthetic_labelled", "voc07"]
    assert plan.image_sizes == {"viewpoint": 128, "got10k_occlusion": 128, "pascal3d_viewpoint_instance": 224,
                                "pascal3d_instance": 224, "synthetic_labelled": 128, "voc07": 128}
    assert plan.classification["synthetic_labelled"]["seed"] == 3
    # the synthetic world's folders are rule outputs the image lists depend on
    assert plan.synthetic_folders == {"viewpoint": "synth/trajectories", "synthetic_labelled": "synth/labelled"}
    # without evaluation.image_size every dataset takes the model's input size
    assert set(eval_plan(plan_config(synthetic_sets=["viewpoint"]), "synth").image_sizes.values()) == {48}


def write_video(root, name, covers, boxes=None, meta="cat", files=("groundtruth.txt", "cover.label", "meta_info.ini")):
    folder = root / name
    for i in range(len(covers)):
        write_image(folder / f"{i + 1:08d}.jpg", size=(40, 60))
    boxes = boxes or [(i, 2 * i, 10 + i, 5 + i) for i in range(len(covers))]
    if "groundtruth.txt" in files:
        (folder / "groundtruth.txt").write_text("".join(f"{x},{y},{w},{h}\n" for x, y, w, h in boxes))
    if "cover.label" in files:
        (folder / "cover.label").write_text("".join(f"{c}\n" for c in covers))
    if "meta_info.ini" in files:
        (folder / "meta_info.ini").write_text(f"[METAINFO]\nurl: x\nobject_class: {meta}\nmotion_class: walking\n")
    return folder


@pytest.fixture
def got_root(tmp_path):
    """Every kept level has one frame, so the expected crops are known without the generator."""
    root = tmp_path / "got10k"
    write_video(root, "V1", [8, 4])  # two distinct levels spanning exactly 4: kept
    write_video(root, "V2", [5, 2, 3, 5])  # spans 3: dropped
    write_video(root, "V3", [0, 8, 3], meta="sea lion")  # spans 8: kept, class with a space
    write_video(root, "V4", [8, 0], files=("groundtruth.txt", "meta_info.ini"))
    write_video(root, "V5", [8, 0], boxes=[(1, 1, 0, 4), (1, 1, 4, 4)])  # level 8's only frame has an empty box
    write_video(root, "unlisted", [8, 0])
    (root / "list.txt").write_text("V1\nV2\nV3\nV4\nV5\nV6\n")
    return root


def test_got10k_authors_rule_one_frame_per_level_cropped_to_its_box(got_root):
    frame, skipped = got10k_index(got_root, seed=AUTHORS_SEED)
    assert list(frame.columns) == EVAL_INDEX.names and (frame["dataset"] == "got10k_occlusion").all()
    members = {int(s): [p.split("/")[-2] + "/" + p.split("/")[-1] for p in g["path"]] for s, g in frame.groupby("set")}
    # sets count the kept videos in list.txt order: V1 -> 0, V3 -> 1, V5 -> 2
    assert {s: sorted(m) for s, m in members.items()} == {
        0: ["V1/00000001.jpg", "V1/00000002.jpg"],
        1: ["V3/00000001.jpg", "V3/00000002.jpg", "V3/00000003.jpg"],
        2: ["V5/00000002.jpg"]}
    row = frame[frame["path"].str.endswith("V3/00000003.jpg")].iloc[0]  # box line 3: x=2, y=4, w=12, h=7
    assert (row.x1, row.y1, row.x2, row.y2) == (2, 4, 14, 11)
    assert dict(zip(frame["set"], frame["class_name"])) == {0: "cat", 1: "sea_lion", 2: "cat"}
    assert dict(zip(frame["class_name"], frame["label"])) == {"cat": 0, "sea_lion": 1}
    reasons = {s["item"].split("got10k/")[-1]: s["reason"] for s in skipped}
    assert reasons == {"V2": "cover levels span 3 (max - min < 4)", "V4": "missing cover.label",
                       "V5/00000001.jpg": "drawn frame has an empty box (1,1,0,4)", "V6": "missing groundtruth.txt"}


def test_got10k_draws_are_the_authors_seeded_numpy_draws(tmp_path):
    root = tmp_path / "got10k"
    write_video(root, "A", [8, 8, 8, 8, 0, 0, 0, 0])
    write_video(root, "B", [1, 1, 1, 1, 1, 6, 6, 6])
    (root / "list.txt").write_text("A\nB\n")
    np.random.seed(1992)  # the authors' script: one global seed, one np.random.choice per level of each kept video
    expected = [np.random.choice([4, 5, 6, 7]), np.random.choice([0, 1, 2, 3]),
                np.random.choice([0, 1, 2, 3, 4]), np.random.choice([5, 6, 7])]
    frame, _ = got10k_index(root, seed=AUTHORS_SEED)
    chosen = sorted((p.split("/")[-2], int(p.split("/")[-1][:8]) - 1) for p in frame["path"])
    assert chosen == sorted(zip("AABB", expected))
    other, _ = got10k_index(root, seed=7)
    assert len(other) == 4 and other["set"].tolist() == [0, 0, 1, 1]


def test_got10k_needs_list_txt(tmp_path):
    (tmp_path / "g").mkdir()
    with pytest.raises(UserError, match="list.txt"):
        got10k_index(tmp_path / "g", seed=AUTHORS_SEED)


def write_record(path, objects):
    """A Pascal3D+ annotation: record.objects(i) with bbox and viewpoint (None: an empty viewpoint)."""
    table = np.empty((1, len(objects)), dtype=[("class", object), ("bbox", object), ("viewpoint", object)])
    for i, (bbox, view) in enumerate(objects):
        viewpoint = np.zeros((0, 0)) if view is None else {"azimuth_coarse": float(view[0]),
                                                             "elevation_coarse": float(view[1])}
        table[0, i] = ("x", np.array([bbox], dtype=float), viewpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"record": {"filename": path.stem, "objects": table}})


@pytest.fixture
def pascal3d_root(tmp_path):
    root = tmp_path / "PASCAL3D+_release1.1"
    sets = root / "Image_sets"
    sets.mkdir(parents=True)
    objects = {  # (class, source, image): [(bbox, (azimuth, elevation))]
        ("car", "imagenet", "n01"): [((1, 2, 30, 20), (10, 5))],  # bins (0, 0)
        ("car", "imagenet", "n02"): [((0, 0, 9, 9), (200, -10))],  # 200 mod 180 = 20, -10 mod 90 = 80: (0, 2)
        ("car", "imagenet", "n03"): [((0, 0, 9, 9), (95, 40))],  # (3, 1)
        ("car", "pascal", "p_a"): [((0, 0, 9, 9), (185, 0)), ((0, 0, 9, 9), (100, 35))],  # (0, 0), (3, 1)
        ("car", "pascal", "p_b"): [((0, 0, 9, 9), (359, 10))],  # (5, 0)
        ("aeroplane", "imagenet", "a01"): [((0, 0, 9, 9), (30, 30))],  # (1, 1)
        ("aeroplane", "imagenet", "a02"): [((0, 0, 9, 9), None)],  # no viewpoint: skipped
    }
    for (name, source, image), items in objects.items():
        write_record(root / "Annotations" / f"{name}_{source}" / f"{image}.mat", items)
        write_image(root / "Images" / f"{name}_{source}" / f"{image}.{'JPEG' if source == 'imagenet' else 'jpg'}")
    (sets / "car_imagenet_train.txt").write_text("n01\nn02\n")
    (sets / "car_imagenet_val.txt").write_text("n03\n")
    (sets / "car_pascal.txt").write_text("p_a 0\np_a 1\np_b 0\np_b 3\n")  # p_b has no object 3
    (sets / "aeroplane_imagenet_train.txt").write_text("a01\n")
    (sets / "aeroplane_imagenet_val.txt").write_text("a02\n")
    return root  # no aeroplane_pascal.txt


def pascal_members(frame):
    """set id -> the sorted image names of its members (an image with two objects appears twice)."""
    out = {}
    for row in frame.itertuples():
        image = row.path.split("/")[-1].split(".")[0]
        out.setdefault(int(row.set), []).append(image)
    return {s: sorted(m) for s, m in out.items()}


def test_pascal3d_viewpoint_instance_sets(pascal3d_root):
    frame, skipped = pascal3d_index(pascal3d_root, dataset="pascal3d_viewpoint_instance")
    assert list(frame.columns) == EVAL_INDEX.names and (frame["dataset"] == "pascal3d_viewpoint_instance").all()
    # aeroplane: a01 (azimuth bin 1) -> set 0. car, in order n01 n02 n03 p_a#0 p_a#1 p_b#0 with azimuth bins
    # 0 0 3 0 3 5, starts at 1: the j-th of each bin -> 1 + j
    assert pascal_members(frame) == {0: ["a01"], 1: ["n01", "n03", "p_b"], 2: ["n02", "p_a"], 3: ["p_a"]}
    assert dict(zip(frame["class_name"], frame["label"])) == {"aeroplane": 0, "car": 1}
    row = frame[frame["path"].str.endswith("n01.JPEG")].iloc[0]
    assert (row.x1, row.y1, row.x2, row.y2) == (1, 2, 30, 20)
    reasons = {s["item"].split("/")[-1]: s["reason"] for s in skipped}
    assert reasons == {"aeroplane_pascal.txt": "image list missing", "a02.mat object 0": "annotation has no viewpoint",
                       "p_b.mat object 3": "object index 3 out of range (1 objects)"}


def test_pascal3d_instance_sets(pascal3d_root):
    frame, _ = pascal3d_index(pascal3d_root, dataset="pascal3d_instance")
    # aeroplane (1, 1) -> 0; car's (azimuth, elevation) bins sorted: (0,0) -> 1, (0,2) -> 2, (3,1) -> 3, (5,0) -> 4
    assert pascal_members(frame) == {0: ["a01"], 1: ["n01", "p_a"], 2: ["n02"], 3: ["n03", "p_a"], 4: ["p_b"]}
    with pytest.raises(UserError, match="choose"):
        pascal3d_index(pascal3d_root, dataset="pascal3d_view")


def test_split_index_stratified_and_seeded(tmp_path):
    for name, count in (("cat", 10), ("dog", 4)):
        for i in range(count):
            write_image(tmp_path / "set" / name / f"{i}.png")
    frame, skipped = split_index(tmp_path / "set", dataset="labelled", test_fraction=0.3, seed=0)
    assert list(frame.columns) == [*EVAL_INDEX.names, "split"] and skipped == []
    counts = frame.groupby(["class_name", "split"]).size().to_dict()
    assert counts == {("cat", "test"): 3, ("cat", "train"): 7, ("dog", "test"): 1, ("dog", "train"): 3}
    assert dict(zip(frame["class_name"], frame["label"])) == {"cat": 0, "dog": 1} and (frame["set"] == -1).all()
    again, _ = split_index(tmp_path / "set", dataset="labelled", test_fraction=0.3, seed=0)
    assert again["split"].tolist() == frame["split"].tolist()


def test_imagefolder_pair_labels_from_train(tmp_path):
    for split, name in (("train", "cat"), ("train", "dog"), ("val", "dog"), ("val", "emu")):
        write_image(tmp_path / split / name / "0.jpg")
    frame, skipped = imagefolder_index(tmp_path / "train", tmp_path / "val", dataset="imagefolder")
    assert sorted(zip(frame["split"], frame["class_name"], frame["label"])) == [
        ("test", "dog", 1), ("train", "cat", 0), ("train", "dog", 1)]
    assert skipped == [{"item": str(tmp_path / "val" / "emu"), "reason": "class absent from the train folder"}]


def test_voc07_marks_per_class(tmp_path):
    main = tmp_path / "VOC2007" / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "cat_trainval.txt").write_text("000001  1\n000002 -1\n000005 1\n")
    (main / "dog_trainval.txt").write_text("000001 -1\n000002  0\n")
    (main / "cat_test.txt").write_text("000003 -1\n000004  1\n")
    (main / "dog_test.txt").write_text("000003  1\n")
    (main / "train.txt").write_text("000001\n000002\n")  # not a class list
    (main / "cat_train.txt").write_text("000001 1\n")
    for image in ("000001", "000002", "000003", "000005"):
        write_image(tmp_path / "VOC2007" / "JPEGImages" / f"{image}.jpg")
    frame, skipped = voc07_index(tmp_path / "VOC2007", dataset="voc07")
    assert list(frame.columns) == [*EVAL_INDEX.names, "split", "target_cat", "target_dog"]
    table = {p.split("/")[-1]: (s, c, d) for p, s, c, d in zip(frame["path"], frame["split"], frame["target_cat"],
                                                                 frame["target_dog"])}
    # 000004 is listed but has no image; dog's list omits 000005, marked 0 (ignored)
    assert table == {"000001.jpg": ("train", 1, -1), "000002.jpg": ("train", -1, 0), "000003.jpg": ("test", -1, 1),
                     "000005.jpg": ("train", 1, 0)}
    assert [s["reason"] for s in skipped] == ["listed in ImageSets/Main but missing"]
    (main / "dog_test.txt").unlink()
    with pytest.raises(UserError, match="dog_test.txt missing"):
        voc07_index(tmp_path / "VOC2007", dataset="voc07")


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
    assert list(frame.columns) == EVAL_INDEX.names
    assert len(frame) == 5 and (frame["dataset"] == "viewpoint").all()
    assert frame["path"].tolist() == [str(tmp_path / r[1]) for r in rows[1:6]]
    assert frame["set"].tolist() == [0, 0, 1, 1, 1] and (frame["label"] == 1).all()
    assert frame[["x1", "y1", "x2", "y2"]].isna().all().all()
    assert skipped == [{"item": str(tmp_path / rows[0][1]), "reason": "image listed in index.parquet is missing"}]
    with pytest.raises(UserError, match="available: occlusion, viewpoint"):
        synthetic_index(tmp_path, ["viewpoint", "lighting"])


def test_schema_names_every_planned_dataset():
    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    names = schema["properties"]["evaluation"]["properties"]["image_size_by_dataset"]["propertyNames"]["enum"]
    assert set(names) == set(INVARIANCE_TITLES) | {"synthetic_labelled", "imagefolder", "voc07"}


def test_training_and_evaluation_number_an_imagefolder_alike(tmp_path):
    """An empty class folder is no class: the trainer's list and the evaluation list give each image one label."""
    for name, count in (("ant", 2), ("bee", 0), ("cat", 4)):
        (tmp_path / name).mkdir()
        for i in range(count):
            cv2.imwrite(str(tmp_path / name / f"{i}.jpg"), np.full((8, 8, 3), 40 * i, np.uint8))
    items, classes = list_labelled(tmp_path)
    assert classes == ["ant", "cat"] and sorted({label for _, label in items}) == [0, 1]
    index, _ = split_index(tmp_path, dataset="labelled", test_fraction=0.5, seed=0)
    assert dict(items) == dict(zip(index.path, index.label))
    train, _ = list_labelled(tmp_path, {"test_fraction": 0.5, "seed": 0})
    assert set(train) <= set(items) and len(train) == 3
