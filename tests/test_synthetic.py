"""The synthetic world: exact part maps, determinism, and the on-disk formats the later stages read."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import scipy.io

from vidssl import synthetic
from vidssl.core.errors import UserError
from vidssl.core.io import read_parquet
from vidssl.synthetic.render import class_materials, make_background, make_leaves_background, sample_instance
from vidssl.synthetic.templates import TEMPLATES, part_names
from vidssl.synthetic.videos import camera_path

REQUIRED = {
    "aeroplane": ["body", "wing", "tail", "engine"],
    "car": ["body", "window", "wheel"],
    "bird": ["head", "torso", "wing", "leg", "tail"],
    "cat": ["head", "torso", "leg", "tail"],
    "bicycle": ["wheel", "frame", "handlebar", "saddle"],
    "person": ["head", "torso", "arm", "leg"],
}


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return cols[0], rows[0], cols[-1] + 1, rows[-1] + 1


# ------------------------------------------------------------------------------------------ rendering


def test_classes_have_the_required_parts_in_order():
    for class_name, parts in REQUIRED.items():
        assert synthetic.CLASSES[class_name] == parts


def test_class_part_lists_match_the_templates():
    for class_name, parts in synthetic.CLASSES.items():
        assert sorted(parts) == sorted(part_names(TEMPLATES[class_name]))


@pytest.mark.parametrize("class_name", sorted(REQUIRED))
def test_render_object_part_map_is_exact_and_shows_every_part(class_name):
    layer = synthetic.render_object(class_name, np.random.default_rng(3), 96)
    parts = synthetic.CLASSES[class_name]
    assert layer.image.shape == (96, 96, 3) and layer.image.dtype == np.uint8
    assert set(np.unique(layer.part_map)) == set(range(len(parts) + 1))  # background plus every part
    # the part map and the instance map describe the same pixels, and instances fold onto their part
    assert np.array_equal(layer.part_map > 0, layer.instance_map > 0)
    for ident, name in enumerate(layer.instance_names, start=1):
        part = re.sub(r"_\d+$", "", name)
        assert np.all(layer.part_map[layer.instance_map == ident] == 1 + parts.index(part))
    assert not layer.image[~layer.mask].any()  # transparent outside the object
    # a unit-radius object at scale 1 spans 90% of the layer, and rotation keeps it on the layer
    assert not layer.mask[0].any() and not layer.mask[-1].any()
    assert not layer.mask[:, 0].any() and not layer.mask[:, -1].any()


def test_repeated_parts_are_indexed():
    car = synthetic.render_object("car", np.random.default_rng(0), 64)
    assert {"body", "wheel_1", "wheel_2", "window_1", "window_2"} == set(car.instance_names)
    cat = synthetic.render_object("cat", np.random.default_rng(0), 64)
    assert {"leg_1", "leg_2", "leg_3", "leg_4"} <= set(cat.instance_names)


def test_pose_controls_the_drawing():
    instance = synthetic.sample_instance("car", np.random.default_rng(1), jitter=0.0)
    upright = synthetic.draw_instance(instance, 80)
    x1, y1, x2, y2 = box_of(upright.mask)
    assert x2 - x1 > 1.5 * (y2 - y1)  # a side-view car is wide
    x1, y1, x2, y2 = box_of(synthetic.draw_instance(instance, 80, angle=90).mask)
    assert y2 - y1 > 1.5 * (x2 - x1)  # and tall when turned a quarter
    small = synthetic.draw_instance(instance, 80, scale=0.5).mask.sum()
    assert 0.2 < small / upright.mask.sum() < 0.3  # area scales with the square of the scale
    mirrored = synthetic.draw_instance(instance, 80, flip=True).mask
    overlap = (mirrored & upright.mask[:, ::-1]).sum() / (mirrored | upright.mask[:, ::-1]).sum()
    assert overlap > 0.95
    person = synthetic.draw_instance(synthetic.sample_instance("person", np.random.default_rng(1), jitter=0.0), 80)
    x1, y1, x2, y2 = box_of(person.mask)
    assert y2 - y1 > 1.5 * (x2 - x1)  # classes differ in shape


def test_given_colour_paints_the_first_part():
    layer = synthetic.render_object("car", np.random.default_rng(0), 64, colour=(0, 0, 200))
    body = layer.image[layer.part_map == 1].astype(float)
    assert body[:, 2].mean() > 120 and body[:, :2].max() < 10  # red body, texture only modulates it


def test_unknown_class_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="boat"):
        synthetic.generate_labelled(tmp_path, classes=["car", "boat"], per_class=1, image_size=32, seed=0)


# ---------------------------------------------------------------------------------------------- videos


def make_videos(root: Path, seed: int) -> Path:
    synthetic.generate_videos(root, classes=["car", "person", "bird"], n_videos=3, n_frames=12, size=(64, 48),
                              seed=seed)
    return root


def test_videos_read_back_with_their_boxes(tmp_path):
    root = make_videos(tmp_path / "a", seed=0)
    assert sorted(p.name for p in root.glob("*.mp4")) == ["video_000.mp4", "video_001.mp4", "video_002.mp4"]
    for path in root.glob("*.mp4"):
        capture = cv2.VideoCapture(str(path))
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        assert len(frames) == 12 and frames[0].shape == (48, 64, 3)

    boxes = read_parquet(root / "boxes.parquet")
    assert list(boxes.columns) == ["video", "frame", "object", "class_name", "x1", "y1", "x2", "y2"]
    assert all(boxes[c].dtype == np.float32 for c in ["x1", "y1", "x2", "y2"])
    assert boxes.groupby("video")["object"].nunique().tolist() == [1, 2, 3]
    assert set(boxes["class_name"]) <= {"car", "person", "bird"}
    assert (boxes.groupby(["video", "object"])["class_name"].nunique() == 1).all()
    assert (boxes.groupby(["video", "object"])["frame"].count() == 12).all()  # objects never leave the frame
    assert ((boxes.x1 >= 0) & (boxes.y1 >= 0) & (boxes.x2 <= 64) & (boxes.y2 <= 48)).all()
    assert ((boxes.x2 - boxes.x1 >= 4) & (boxes.y2 - boxes.y1 >= 4)).all()
    for _, track in boxes.groupby(["video", "object"]):
        first, last = track.iloc[0], track.iloc[-1]
        centre_shift = np.hypot(first.x1 + first.x2 - last.x1 - last.x2, first.y1 + first.y2 - last.y1 - last.y2) / 2
        area = lambda row: (row.x2 - row.x1) * (row.y2 - row.y1)  # noqa: E731
        area_change = abs(area(first) / area(last) - 1)
        assert centre_shift > 0.5 or area_change > 0.05  # every object moves


def test_videos_are_deterministic_from_the_seed(tmp_path):
    first, again = tree_bytes(make_videos(tmp_path / "a", 0)), tree_bytes(make_videos(tmp_path / "b", 0))
    assert first == again
    other = tree_bytes(make_videos(tmp_path / "c", 1))
    assert other.keys() == first.keys() and all(other[k] != first[k] for k in first)


def test_camera_pans_over_a_larger_background(tmp_path):
    """A moving camera's view wanders smoothly over the whole padded background; camera 0 is the static world."""
    view = camera_path(np.random.default_rng(0), 240, pad=16)
    assert view.min() >= 0 and view.max() <= 32 and np.ptp(view[:, 0]) > 16 and np.ptp(view[:, 1]) > 16
    assert np.abs(np.diff(view, axis=0)).max() <= 3  # a pan, not a jump
    assert not camera_path(np.random.default_rng(0), 10, pad=0).any()
    assert tree_bytes(make_videos(tmp_path / "default", 0)) == tree_bytes(make_videos_with_camera(tmp_path / "zero"))
    synthetic.generate_videos(tmp_path / "panned", classes=["car"], n_videos=2, n_frames=20, size=(64, 48), seed=3,
                              camera=0.25)
    boxes = read_parquet(tmp_path / "panned" / "boxes.parquet")
    assert len(boxes) >= 40 and ((boxes.x1 >= 0) & (boxes.y1 >= 0) & (boxes.x2 <= 64) & (boxes.y2 <= 48)).all()
    with pytest.raises(UserError, match="camera"):
        synthetic.generate_videos(tmp_path / "bad", classes=["car"], n_videos=1, n_frames=4, camera=1.5)


def first_frame(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    assert ok
    return frame


def test_leaves_backgrounds_carry_edges_and_big_objects_grow(tmp_path):
    """background: leaves draws a textured scene per video, with edges where the smooth default has gradients;
    object_size sets how much of the short side an object spans."""
    def edges(image):  # mean horizontal step at a quarter of the size, where the grain both share averages out
        small = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (40, 30), interpolation=cv2.INTER_AREA)
        return float(np.abs(np.diff(small.astype(np.float32), axis=1)).mean())

    for seed in range(5):
        smooth = make_background(np.random.default_rng(seed), 120, 160)
        leaves = make_leaves_background(np.random.default_rng(seed), 120, 160)
        assert edges(leaves) > 2 * edges(smooth) and edges(leaves) > 10

    def world(name, **options):
        synthetic.generate_videos(tmp_path / name, classes=["car", "person", "bird"], n_videos=3, n_frames=4,
                                  size=(64, 48), seed=0, **options)
        return tmp_path / name

    leaves = world("leaves", background="leaves")
    assert tree_bytes(world("leaves_again", background="leaves")) == tree_bytes(leaves)
    assert tree_bytes(leaves) != tree_bytes(world("smooth"))
    area = lambda boxes: float(((boxes.x2 - boxes.x1) * (boxes.y2 - boxes.y1)).median())  # noqa: E731
    big = world("big", object_size=(0.6, 0.9))
    assert area(read_parquet(big / "boxes.parquet")) > 2 * area(read_parquet(tmp_path / "smooth" / "boxes.parquet"))
    with pytest.raises(UserError, match="synthetic.background"):
        world("bad", background="stripes")
    with pytest.raises(UserError, match="synthetic.object_size"):
        world("worse", object_size=(0.5, 0.3))


def test_class_materials_give_each_class_one_texture_and_leave_the_default_world_as_it_was(tmp_path):
    """materials: class draws one texture family per class (the same distribution an instance draws alone), so two
    instances of a class share its pattern kind, scale and gain; instance keeps the default world byte for byte."""
    shared = class_materials("class", seed=0)
    assert shared("cat") == class_materials("class", seed=0)("cat")
    assert len({shared(name) for name in REQUIRED}) == len(REQUIRED)  # the six classes draw six materials
    assert class_materials("class", seed=1)("cat") != shared("cat")
    cats = [sample_instance("cat", np.random.default_rng(i), material=shared("cat")) for i in range(4)]
    assert {c.texture_gain for c in cats} == {shared("cat").gain}
    assert not np.array_equal(cats[0].texture, cats[1].texture)  # a pattern drawn afresh, of the class's family
    own = [sample_instance("cat", np.random.default_rng(i)) for i in range(4)]
    assert len({c.texture_gain for c in own}) == 4
    assert class_materials("instance", seed=0)("cat") is None

    def labelled(name, **options):
        synthetic.generate_labelled(tmp_path / name, classes=["cat", "car"], per_class=3, image_size=32, seed=0,
                                    **options)
        return tree_bytes(tmp_path / name)

    assert labelled("default") == labelled("instance", materials="instance") != labelled("class", materials="class")
    with pytest.raises(UserError, match="synthetic.materials"):
        labelled("bad", materials="fur")


def make_videos_with_camera(root: Path) -> Path:
    synthetic.generate_videos(root, classes=["car", "person", "bird"], n_videos=3, n_frames=12, size=(64, 48),
                              seed=0, camera=0.0)
    return root


# ------------------------------------------------------------------------------------ part segmentation


def test_partseg_mat_files_round_trip_in_pascal_part_format(tmp_path):
    # 14 images with seed 0 include overlapping pairs and a part-less bottle
    synthetic.generate_partseg(tmp_path, classes=["car", "cat", "bicycle"], n_images=14, image_size=64, seed=0)
    mats = sorted((tmp_path / "Annotations_Part").glob("*.mat"))
    assert len(mats) == 14 and len(list((tmp_path / "JPEGImages").glob("*.jpg"))) == 14
    names, classes, partless, two_objects = set(), set(), 0, 0
    for path in mats:
        anno = scipy.io.loadmat(path)["anno"][0, 0]
        assert anno["imname"][0] == path.stem + ".jpg"
        assert cv2.imread(str(tmp_path / "JPEGImages" / anno["imname"][0])).shape == (64, 64, 3)
        objects = anno["objects"]
        assert objects.shape[0] == 1 and 1 <= objects.shape[1] <= 3
        two_objects += objects.shape[1] >= 2
        covered = np.zeros((64, 64), dtype=int)
        for obj in objects[0]:
            class_name = obj["class"][0]
            classes.add(class_name)
            assert int(obj["class_ind"][0, 0]) == synthetic.VOC_CLASSES.index(class_name) + 1
            mask = obj["mask"]
            assert mask.shape == (64, 64) and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
            covered += mask
            if class_name == "bottle":
                assert obj["parts"].shape == (0, 0)
                partless += 1
                continue
            union = np.zeros((64, 64), dtype=int)
            for part in obj["parts"][0]:
                names.add(part["part_name"][0])
                part_mask = part["mask"]
                assert part_mask.shape == (64, 64) and part_mask.any()
                assert not (part_mask & (1 - mask)).any()  # a part lies inside its object
                union += part_mask
            assert np.array_equal(union, mask)  # parts tile the visible object exactly once
        assert covered.max() == 1  # objects own disjoint visible pixels
    assert {"car", "bottle"} <= classes <= {"car", "cat", "bicycle", "bottle"}
    assert partless >= 1 and two_objects >= 3
    assert {"wheel_1", "wheel_2", "body", "frame"} <= names
    folded = {re.sub(r"_\d+$", "", n) for n in names}
    assert folded <= {p for c in ["car", "cat", "bicycle"] for p in synthetic.CLASSES[c]}


def test_partseg_is_deterministic(tmp_path):
    for name, seed in [("a", 0), ("b", 0), ("c", 5)]:
        synthetic.generate_partseg(tmp_path / name, classes=["bird"], n_images=3, image_size=48, seed=seed)
    first = tree_bytes(tmp_path / "a")
    assert first == tree_bytes(tmp_path / "b")
    assert first != tree_bytes(tmp_path / "c")


# ------------------------------------------------------------------------------------------ labelled set


def test_labelled_is_an_image_folder_stable_across_class_subsets(tmp_path):
    synthetic.generate_labelled(tmp_path / "two", classes=["car", "person"], per_class=3, image_size=40, seed=0)
    synthetic.generate_labelled(tmp_path / "one", classes=["person"], per_class=3, image_size=40, seed=0)
    two = tree_bytes(tmp_path / "two")
    assert sorted(two) == [f"{c}/{i:04d}.jpg" for c in ["car", "person"] for i in range(3)]
    assert cv2.imread(str(tmp_path / "two" / "car" / "0000.jpg")).shape == (40, 40, 3)
    assert tree_bytes(tmp_path / "one") == {k: v for k, v in two.items() if k.startswith("person/")}
    assert len(set(two.values())) == 6  # every image differs


# ------------------------------------------------------------------------------------------ invariance sets


def make_trajectories(root: Path, seed: int) -> pd.DataFrame:
    synthetic.generate_trajectories(root, classes=["cat", "car"], sets_per_class=2, set_length=4, image_size=48,
                                    seed=seed)
    return read_parquet(root / "index.parquet")


def test_trajectory_index_and_sets(tmp_path):
    index = make_trajectories(tmp_path, 0)
    assert list(index.columns) == ["dataset", "path", "label", "class_name", "set", "frame"]
    assert len(index) == 4 * 2 * 2 * 4
    assert set(index["dataset"]) == set(synthetic.TRAJECTORY_DATASETS)
    assert (index["label"] == index["class_name"].map({"cat": 0, "car": 1})).all()
    sets = index.groupby("set")
    assert sets.ngroups == 16  # unique across datasets
    assert (sets["class_name"].nunique() == 1).all() and (sets["dataset"].nunique() == 1).all()
    assert all(sorted(frames) == [0, 1, 2, 3] for frames in sets["frame"].agg(list))
    images = {row.path: cv2.imread(str(tmp_path / row.path)).astype(float) for row in index.itertuples()}
    assert all(image.shape == (48, 48, 3) for image in images.values())

    def ordered(dataset):
        for _, group in index[index["dataset"] == dataset].groupby("set"):
            yield [images[p] for p in group.sort_values("frame")["path"]]

    for frames in ordered("viewpoint"):
        assert np.abs(frames[0] - frames[-1]).mean() > 3
    for frames in ordered("instance"):
        assert np.abs(frames[0] - frames[1]).mean() > 1
    for frames in ordered("illumination"):  # brightness moves one way along the set
        means = np.array([f.mean() for f in frames])
        assert np.all(np.diff(means) > 0) or np.all(np.diff(means) < 0)
    for frames in ordered("occlusion"):  # the occluder only grows: changed pixels from frame 0 nest
        changed = [np.abs(f - frames[0]).max(axis=2) > 40 for f in frames[1:]]
        assert changed[-1].sum() > changed[0].sum() > 0


def test_trajectories_are_deterministic(tmp_path):
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        make_trajectories(tmp_path / name, seed)
    first = tree_bytes(tmp_path / "a")
    assert first == tree_bytes(tmp_path / "b")
    other = tree_bytes(tmp_path / "c")
    assert other.keys() == first.keys()  # same layout
    assert read_parquet(tmp_path / "c" / "index.parquet").equals(read_parquet(tmp_path / "a" / "index.parquet"))
    assert all(other[k] != first[k] for k in first if k.endswith(".jpg"))
