"""Selective search: repeatable order (in one process and across processes), awkward image shapes, and the shard writer
(identical bytes for 1 and 2 workers, skips recorded)."""
from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import cv2
import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import search_params, search_settings
from test_tracks import make_container, moving_object_frames

from vidssl.core.io import UserError, parquet_metadata, read_parquet
from vidssl.tracking.proposals import propose_shard
from vidssl.tracking.selective_search import selective_search
from vidssl.tracking.tracks import box_iou
from vidssl.video.chunk_store import ChunkStore
from vidssl.video.chunks import resize_max_side


def _smooth_texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(2, height // 40), max(2, width // 40), 3), dtype=np.uint8)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def _check_boxes(boxes: np.ndarray, image: np.ndarray, top_k: int, min_size: int) -> None:
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert 0 < len(boxes) <= top_k
    height, width = image.shape[:2]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    assert ((boxes[:, 2] - boxes[:, 0]) >= min_size).all() and ((boxes[:, 3] - boxes[:, 1]) >= min_size).all()


def test_same_order_twice_in_one_process():
    image = moving_object_frames(n_frames=1)[0][0]
    first, second = selective_search(image, **search_settings()), selective_search(image, **search_settings())
    assert len(first) > 20
    np.testing.assert_array_equal(first, second)


def test_same_order_in_fresh_processes(tmp_path):
    image = moving_object_frames(n_frames=1)[0][0]
    np.save(tmp_path / "image.npy", image)
    code = ("import sys, json, numpy as np; from vidssl.tracking.selective_search import selective_search; "
            "np.save(sys.argv[2], selective_search(np.load(sys.argv[1]), **json.loads(sys.argv[3])))")
    for name in ("a.npy", "b.npy"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "image.npy"), str(tmp_path / name),
                        json.dumps(search_settings())], check=True)
    here = selective_search(image, **search_settings())
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), here)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), here)


@pytest.mark.parametrize("width, height", [(640, 272), (1280, 720), (4000, 200), (90, 1200)])
@pytest.mark.parametrize("max_side", [128, 256])
def test_extreme_shapes_after_resize(width, height, max_side):
    image = resize_max_side(_smooth_texture(height, width), max_side)
    assert max(image.shape[:2]) == max_side
    _check_boxes(selective_search(image, **search_settings(top_k=300, min_size=4)), image, 300, 4)


def test_tiny_and_grayscale_images():
    tiny = _smooth_texture(8, 8)
    boxes = selective_search(tiny, **search_settings(min_size=1))
    _check_boxes(boxes, tiny, 300, 1)
    gray = _smooth_texture(96, 128)[..., 1]
    np.testing.assert_array_equal(selective_search(gray, **search_settings()), selective_search(np.dstack([gray] * 3), **search_settings()))
    np.testing.assert_array_equal(selective_search(gray[..., None], **search_settings()), selective_search(gray, **search_settings()))


def test_top_k_and_min_size_filter_in_order():
    image = moving_object_frames(n_frames=1)[0][0]
    every = selective_search(image, **search_settings(top_k=10_000, min_size=1))
    sizes = np.minimum(every[:, 2] - every[:, 0], every[:, 3] - every[:, 1])
    np.testing.assert_array_equal(selective_search(image, **search_settings(top_k=7, min_size=10)), every[sizes >= 10][:7])
    assert selective_search(image, **search_settings(min_size=1000)).shape == (0, 4)


def _opencv_search(image: np.ndarray, mode: str) -> np.ndarray:
    """OpenCV's own fast / quality set-up, seeded as selective_search seeds it, boxes filtered the same way."""
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(image)
    search.switchToSelectiveSearchFast() if mode == "fast" else search.switchToSelectiveSearchQuality()
    ctypes.CDLL(None).srand(0)
    rects = search.process()
    rects = rects[(rects[:, 2] >= 4) & (rects[:, 3] >= 4)][:300].astype(np.float32)
    rects[:, 2:] += rects[:, :2]
    return rects


@pytest.mark.parametrize("mode", ["fast", "quality"])
def test_min_region_100_is_opencvs_own_search(mode):
    image = moving_object_frames(n_frames=1)[0][0]
    np.testing.assert_array_equal(selective_search(image, **search_settings(mode=mode, min_region=100)), _opencv_search(image, mode))


@pytest.mark.parametrize("side", [8, 9])
def test_objects_under_10_px_get_a_proposal_only_below_opencvs_min_region(side):
    """OpenCV's graph segmentation merges regions under 100 px into a neighbour: an 8-9 px object has no box."""
    image = _smooth_texture(96, 128, seed=1)
    image[40:40 + side, 60:60 + side] = (30, 220, 240)
    truth = np.array([[60, 40, 60 + side, 40 + side]], np.float32)
    assert box_iou(truth, selective_search(image, **search_settings(min_region=100))).max() < 0.3
    assert box_iou(truth, selective_search(image, **search_settings(min_region=36))).max() >= 0.9


def test_bad_input_is_a_user_error():
    with pytest.raises(UserError):
        selective_search(np.zeros((10, 10, 3), np.float32), **search_settings())
    with pytest.raises(UserError):
        selective_search(np.zeros((10, 10, 3), np.uint8), **search_settings(mode="slow"))


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proposals")
    frames = [moving_object_frames(n_frames=8, seed=seed)[0] for seed in range(3)]
    return make_container(tmp, {"v0": frames[0], "v1": frames[1], "v2": frames[2]}, length=8)


def test_worker_module_imports_only_opencv_and_numpy():
    """Each spawned proposals worker imports vidssl.tracking.selective_search; pandas/pyarrow/h5py would cost ~0.3 s a worker."""
    code = "import sys, vidssl.tracking.selective_search; print(sorted({'pandas', 'pyarrow', 'h5py', 'torch'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_propose_shard_same_bytes_for_one_and_two_workers(container, tmp_path):
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    summary = propose_shard(container, one, **search_params(), threads=1)
    propose_shard(container, two, **search_params(), threads=2)
    assert one.read_bytes() == two.read_bytes()

    table = read_parquet(one)
    assert list(table.columns) == ["video", "chunk", "frame", "rank", "x1", "y1", "x2", "y2"]
    assert {c: str(t) for c, t in table.dtypes.items() if c != "video"} == dict(
        chunk="int32", frame="int32", rank="int32", x1="float32", y1="float32", x2="float32", y2="float32")
    keys = table[["video", "chunk", "frame", "rank"]]
    assert keys.equals(keys.sort_values(list(keys.columns)).reset_index(drop=True))
    per_frame = table.groupby(["video", "chunk", "frame"])["rank"]
    assert per_frame.ngroups == 24 and (per_frame.min() == 0).all() and (per_frame.max() + 1 == per_frame.size()).all()
    assert pq.ParquetFile(one).num_row_groups == 3
    assert parquet_metadata(one)["frames"] == 24 and summary["skipped"] == []
    # The shard holds exactly what selective_search gives each stored frame.
    store = ChunkStore(container)
    rows = table[(table.video == "v1") & (table.frame == 5)]
    np.testing.assert_array_equal(rows[["x1", "y1", "x2", "y2"]].to_numpy(), selective_search(store.frame("v1", 0, 5), **search_settings()))


def test_propose_shard_records_bad_and_empty_frames(container, tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(open(container, "rb").read())
    with h5py.File(broken, "r+") as h5:
        h5["jpeg"][3] = np.frombuffer(b"not a jpeg", np.uint8)
    out = tmp_path / "broken.parquet"
    summary = propose_shard(broken, out, **search_params(), threads=1)
    assert summary["skipped"] == [dict(video="v0", chunk=0, frame=3, reason="stored JPEG does not decode")]
    table = read_parquet(out)
    assert table.groupby(["video", "frame"]).ngroups == 23 and 3 not in set(table[table.video == "v0"].frame)

    out = tmp_path / "empty.parquet"
    summary = propose_shard(container, out, **search_params(min_size=1000), threads=1)
    assert len(summary["skipped"]) == 24 and {s["reason"] for s in summary["skipped"]} == {"no proposals"}
    assert len(read_parquet(out)) == 0 and parquet_metadata(out)["frames"] == 24
