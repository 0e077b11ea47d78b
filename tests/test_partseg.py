"""Object crops from Pascal-Part files, and the part-segmentation probe."""
from __future__ import annotations

import json
import logging

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from vidssl.core.errors import UserError
from vidssl.datasets.pascal_part import PascalObject, write_annotation
from vidssl.evaluation.partseg_crops import make_crops, resize_maps
from vidssl.evaluation.partseg_probe import PartDecoder, probe_all, train_probe
from vidssl.evaluation.table5_intervals import intervals, stack_counts

HEIGHT, WIDTH = 40, 48
RED, GREY = (255, 0, 0), (128, 128, 128)


def region(y1, y2, x1, x2):
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[y1:y2, x1:x2] = True
    return mask


def write_image(folder, stem, objects, jpeg=True):
    write_annotation(folder / "Annotations_Part" / f"{stem}.mat", stem, objects)
    if jpeg:
        rgb = np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)
        for obj in objects:
            rgb[obj.mask] = RED
        (folder / "JPEGImages").mkdir(exist_ok=True)
        cv2.imwrite(str(folder / "JPEGImages" / f"{stem}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def plain_car(y1, y2, x1, x2):
    return PascalObject("car", 7, region(y1, y2, x1, x2), {"body": region(y1, y2, x1, x2)})


@pytest.fixture
def world(tmp_path):
    (tmp_path / "Annotations_Part").mkdir()
    write_image(tmp_path, "img_a", [
        # wheel_2 spills below the object mask: those pixels must stay background
        PascalObject("car", 7, region(8, 24, 8, 24), {"wheel_1": region(20, 24, 8, 12), "wheel_2": region(20, 26, 20, 24)}),
        PascalObject("car", 7, region(30, 34, 30, 34), {"wheel_1": region(30, 34, 30, 34)}),  # too small
        PascalObject("cat", 8, region(8, 24, 24, 30), {"head": region(8, 12, 24, 30)}),  # not probed
    ])
    write_image(tmp_path, "img_b", [
        PascalObject("bird", 3, region(10, 30, 10, 30), {
            "lwing": region(10, 20, 10, 20), "rwing": region(10, 20, 20, 30), "head": region(20, 30, 10, 30)}),
    ])
    write_image(tmp_path, "img_c", [
        PascalObject("car", 7, region(0, 20, 0, 40), {"body_1": region(0, 10, 0, 40), "wheel_1": region(10, 20, 0, 10)}),
        PascalObject("bird", 3, region(20, 40, 0, 20), {}),
    ])
    write_image(tmp_path, "img_d", [plain_car(0, 20, 0, 20)], jpeg=False)
    (tmp_path / "Annotations_Part" / "img_i.mat").write_bytes(b"truncated" * 20)
    for index, stem in enumerate(["img_e", "img_f", "img_g", "img_h"]):
        write_image(tmp_path, stem, [plain_car(index, 20 + index, 0, 20), PascalObject("bird", 3, region(20, 40, 20, 40), {
            "head": region(20, 30, 20, 40), "lwing": region(30, 40, 20, 30)})])
    return tmp_path


def crops_of(world, out, **overrides):
    options = dict(classes=["bird", "car"], merge={"lwing": "wing", "rwing": "wing"}, context=0.25, min_box=8,
                   crop_size=24, test_fraction=0.3, seed=0)
    options.update(overrides)
    summary = make_crops(world / "JPEGImages", world / "Annotations_Part", out, **options)
    with h5py.File(out, "r") as h5:
        data = {name: h5[name][:] for name in ("images", "part_maps", "label", "split")}
        data.update({name: h5[name].asstr()[:] for name in ("class_name", "image")})
        data.update({name: json.loads(h5.attrs[name]) for name in ("classes", "part_names", "skipped")})
    return summary, data


def test_make_crops(world, tmp_path):
    summary, data = crops_of(world, tmp_path / "out" / "crops.h5")
    n = len(data["label"])
    assert n == summary["crops"] == 1 + 1 + 1 + 4 * 2
    assert data["images"].shape == (n, 24, 24, 3) and data["images"].dtype == np.uint8
    assert data["part_maps"].shape == (n, 24, 24) and data["part_maps"].dtype == np.uint8
    assert data["classes"] == ["bird", "car"]
    assert data["part_names"] == {"bird": ["head", "wing"], "car": ["body", "wheel"]}
    assert list(data["image"][:3]) == ["img_a", "img_b", "img_c"]
    assert list(data["class_name"][:3]) == ["car", "bird", "car"]
    assert list(data["label"][:3]) == [1, 0, 1]

    # img_a's car: box rows/cols 8..24 widened by 4 each side -> a 24x24 crop, no resampling.
    # `wheel` is label 2 although `body` only appears in a later file: labels follow the sorted names.
    expected = np.zeros((24, 24), np.uint8)
    expected[16:20, 4:8] = 2
    expected[16:20, 16:20] = 2
    np.testing.assert_array_equal(data["part_maps"][0], expected)
    red, grey = data["images"][0][10, 10], data["images"][0][1, 1]
    assert red[0] > 200 and red[2] < 60 and abs(int(grey[0]) - 128) < 20  # RGB, not BGR

    # img_b's bird, merged wings: box 20x20 + 5 each side = 30 -> resized to 24
    bird = data["part_maps"][1]
    assert set(np.unique(bird)) == {0, 1, 2}
    assert bird[6, 6] == 2 and bird[17, 12] == 1 and bird[0, 0] == 0

    reasons = {item["item"]: item["reason"] for item in data["skipped"]}
    assert "smaller than min_box" in reasons["img_a/1:car"]
    assert reasons["img_c/1:bird"] == "no part annotations"
    assert "img_d.jpg" in reasons["img_d"]
    assert "img_i.mat: unreadable" in reasons["img_i"]
    assert not any(item.startswith("img_a/2") for item in reasons)  # other classes are not probed, not skipped
    assert summary["skipped"] == data["skipped"]

    # split by image: an image is in one split only, and both splits are used
    split_of = {}
    for image, split in zip(data["image"], data["split"]):
        assert split_of.setdefault(image, split) == split
    assert set(data["split"]) == {0, 1}
    counts = summary["counts"]
    assert sum(c["train"] + c["test"] for c in counts.values()) == n
    assert counts["car"]["test"] == int(((data["split"] == 1) & (data["label"] == 1)).sum())

    # deterministic: same seed, same file contents
    _, again = crops_of(world, tmp_path / "again.h5")
    np.testing.assert_array_equal(again["split"], data["split"])
    np.testing.assert_array_equal(again["images"], data["images"])


def test_make_crops_split_lists_and_errors(world, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("img_a\nimg_b\nimg_e\nimg_f\n")
    (lists / "val.txt").write_text("img_c\nimg_g\n")
    _, data = crops_of(world, tmp_path / "crops.h5", split_lists=lists)
    split_of = dict(zip(data["image"], data["split"]))
    assert split_of == {"img_a": 0, "img_b": 0, "img_c": 1, "img_e": 0, "img_f": 0, "img_g": 1}
    reasons = {item["item"]: item["reason"] for item in data["skipped"]}
    assert "neither" in reasons["img_h"]

    with pytest.raises(UserError, match="no usable objects"):
        crops_of(world, tmp_path / "none.h5", classes=["cat", "dog"], min_box=100)
    assert not (tmp_path / "none.h5").exists()
    with pytest.raises(UserError, match="val.txt"):
        (lists / "val.txt").unlink()
        crops_of(world, tmp_path / "x.h5", split_lists=lists)


def test_resize_maps_nearest():
    maps = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    np.testing.assert_array_equal(resize_maps(maps, 2)[0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(resize_maps(maps, 8)[0, ::2, ::2], maps[0])
    assert resize_maps(maps, 4).tolist() == maps.tolist()


def test_decoder_shapes():
    for size, first_kernel in ((16, 2), (32, 4), (64, 8)):
        decoder = PartDecoder(10, 5, size)
        convs = [m for m in decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
        assert len(convs) == 4 and convs[0].kernel_size == (first_kernel, first_kernel)
        assert decoder(torch.zeros(3, 10)).shape == (3, 5, size, size)
    assert not isinstance(list(PartDecoder(10, 5, 32).layers)[-1], (torch.nn.ReLU, torch.nn.BatchNorm2d))
    for bad in (8, 24, 48):
        with pytest.raises(ValueError):
            PartDecoder(10, 5, bad)


def part_maps(n, rng, size=16):
    """Small two-part objects anywhere: background is the most frequent label at every pixel."""
    maps = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        h, w = rng.integers(4, 10, 2)
        y, x = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        maps[i, y:y + h // 2, x:x + w] = 1
        maps[i, y + h // 2:y + h, x:x + w] = 2
    return maps


def encode(maps):
    small = resize_maps(maps, 8)
    return np.concatenate([(small == k).reshape(len(maps), -1) for k in (1, 2)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def probe_data():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    train, test = part_maps(120, rng), part_maps(60, rng)
    assert ((train == 0).mean(axis=0) > 0.5).all()
    return train, test


def test_probe_reads_an_informative_representation(probe_data):
    train, test = probe_data
    # informative units tiny, uninformative ones huge (raw features of different methods differ like this):
    # standardising with the train statistics must make the scales irrelevant
    noise = np.random.default_rng(1).normal(size=(len(train) + len(test), 16)).astype(np.float32)

    def scaled(maps, rows):
        return np.concatenate([1e-3 * encode(maps) + 5, 1e3 * noise[rows]], axis=1)

    result = train_probe(scaled(train, slice(0, len(train))), train, scaled(test, slice(len(train), None)), test,
                         n_labels=3, epochs=30, lr=1e-3, seed=0)
    assert result["floor"] == pytest.approx((test == 0).mean())
    assert result["pixel_accuracy"] >= 0.9 and result["pixel_accuracy"] > result["floor"] + 0.08


def test_probe_constant_representation_scores_the_floor_and_its_interval(probe_data):
    train, test = probe_data
    result = train_probe(np.ones((len(train), 32), np.float32), train, np.ones((len(test), 32), np.float32), test,
                         n_labels=3, epochs=10, lr=1e-3, seed=0)
    assert result["pixel_accuracy"] <= result["floor"] + 0.01
    # background is the most frequent label at every pixel: a probe that sees nothing predicts it everywhere
    assert result["correct"].shape == (len(test),)
    # so its 95% interval is the floor's: the same per-image counts through the same resamples
    scores = pd.DataFrame({"image": [f"img{i // 3}" for i in range(len(test))], "class_name": "car",
                           "pixels": test[0].size, "correct": result["correct"],
                           "floor_correct": result["floor_correct"]}).groupby(["image", "class_name"]).sum()
    probe, floor = (intervals(stack_counts({"constant": [scores.reset_index()]}, ["car"], column=column),
                              reference="constant", resamples=200, seed=0) for column in ("correct", "floor_correct"))
    pd.testing.assert_frame_equal(probe, floor)
    assert probe.ci_low[0] < 100 * result["floor"] < probe.ci_high[0]


def test_probe_all(tmp_path, probe_data, caplog):
    train, test = probe_data
    maps = np.concatenate([train, test, train[:5]])
    big = resize_maps(maps, 32)  # stored crops are larger than the probe's maps
    class_name = ["car"] * (len(train) + len(test)) + ["bird"] * 5
    split = [0] * len(train) + [1] * len(test) + [0] * 5
    # two car crops per image: the per-image scores add them up
    image = [f"img{i // 2:03d}" for i in range(len(train) + len(test))] + [f"bird{i}" for i in range(5)]
    crops = tmp_path / "crops.h5"
    with h5py.File(crops, "w") as h5:
        h5["part_maps"] = big
        h5.create_dataset("class_name", data=np.array(class_name, dtype=object), dtype=h5py.string_dtype())
        h5.create_dataset("image", data=np.array(image, dtype=object), dtype=h5py.string_dtype())
        h5["split"] = np.array(split, np.int8)
        h5.attrs["part_names"] = json.dumps({"car": ["lower", "upper"], "bird": ["head"], "cat": []})
    features = tmp_path / "features.h5"
    with h5py.File(features, "w") as h5:
        h5["features"] = encode(maps)

    with caplog.at_level(logging.WARNING, logger="vidssl"):
        frame, images = probe_all(crops, features, classes=["car", "bird", "cat"], size=16, epochs=30, lr=1e-3,
                                  seed=0)
    assert list(frame.columns) == ["class_name", "parts", "train_crops", "test_crops", "pixel_accuracy", "floor"]
    assert frame["class_name"].tolist() == ["car", "bird", "cat"]
    assert frame["parts"].tolist() == [2, 1, 0]
    assert frame["train_crops"].tolist() == [120, 5, 0] and frame["test_crops"].tolist() == [60, 0, 0]
    car = frame.iloc[0]
    assert car["pixel_accuracy"] >= 0.9 and car["floor"] == pytest.approx((test == 0).mean())
    assert frame["pixel_accuracy"].iloc[1:].isna().all()
    assert "bird" in caplog.text and "cat" in caplog.text
    assert list(images.columns) == ["image", "class_name", "pixels", "correct", "floor_correct"]
    assert len(images) == len(test) // 2 and set(images.class_name) == {"car"}
    assert images.image.tolist() == sorted(f"img{i // 2:03d}" for i in range(len(train), len(train) + len(test)))[::2]
    assert (images.pixels == 2 * 16 * 16).all()
    # the per-image counts are the class accuracy's numerator and denominator
    assert images.correct.sum() / images.pixels.sum() == pytest.approx(car["pixel_accuracy"])
    assert images.floor_correct.sum() / images.pixels.sum() == pytest.approx(car["floor"])

    with h5py.File(features, "w") as h5:
        h5["features"] = encode(maps[:-1])
    with pytest.raises(UserError, match="feature rows"):
        probe_all(crops, features, classes=["car"], size=16, epochs=1, lr=1e-3, seed=0)
