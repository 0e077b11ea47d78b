"""Region tracks: the flow-and-IoU linker on scenes with a known box, noise and black chunks, the shard writer, and the
contact sheet drawn from them."""
from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import write_mp4
from vidssl import video
from vidssl.chunk_store import ChunkStore
from vidssl.figures import contact_sheet
from vidssl.io import parquet_metadata, read_parquet
from vidssl.proposals import propose_shard
from vidssl.selective_search import selective_search
from vidssl.tracks import box_iou, link_chunk, masked_median, propagate, track_shard

BOXES = ["x1", "y1", "x2", "y2"]


def moving_object_frames(n_frames: int = 60, size=(128, 96), seed: int = 0):
    """A red-yellow checkered rectangle that moves and grows by 40% over a bland blue-green background with fresh
    noise in every frame. Returns the BGR frames and the object's ground-truth box per frame (n x 4, x1 y1 x2 y2)."""
    rng = np.random.default_rng(seed)
    width, height = size
    coarse = rng.integers(60, 200, (6, 8, 3), dtype=np.uint8)
    coarse[..., 2] //= 3
    background = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(float)
    texture = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    texture[..., 2] = rng.integers(200, 256, (6, 6))
    texture[..., 0] //= 4
    frames, boxes = [], []
    for t in range(n_frames):
        progress = t / max(n_frames - 1, 1)
        box_w, box_h = round(30 * (1 + 0.4 * progress)), round(24 * (1 + 0.4 * progress))
        x1, y1 = round(35 + 45 * progress - box_w / 2), round(38 + 14 * progress - box_h / 2)
        frame = np.clip(background + rng.normal(0, 6, background.shape), 0, 255).astype(np.uint8)
        frame[y1:y1 + box_h, x1:x1 + box_w] = cv2.resize(texture, (box_w, box_h), interpolation=cv2.INTER_NEAREST)
        frames.append(frame)
        boxes.append((x1, y1, x1 + box_w, y1 + box_h))
    return frames, np.array(boxes, np.float32)


def make_container(tmp_path: Path, videos: dict[str, list[np.ndarray]], length: int, max_side: int = 128) -> str:
    """A one-shard chunk container holding one chunk of `length` frames from each video."""
    root = tmp_path / "videos"
    root.mkdir(exist_ok=True)
    for name, frames in videos.items():
        write_mp4(root / f"{name}.mp4", frames)
    manifest = video.build_manifest(video.list_videos("folder", str(root)), shards=1, chunk_len=length)
    out = str(tmp_path / "chunks.h5")
    video.extract_chunks(manifest, out, shard=0, per_video=1, length=length, max_side=max_side, jpeg_quality=90)
    return out


def best_track_overlap(tracks, truth: np.ndarray, min_length: int) -> float:
    """Fraction of frames where the highest-scoring track of at least `min_length` frames overlaps the truth >= 0.5."""
    long = tracks.groupby("track").filter(lambda g: len(g) >= min_length)
    best = long.sort_values("score", ascending=False, kind="stable").track.iat[0]
    track = long[long.track == best]
    overlap = box_iou(track[BOXES].to_numpy(), truth[track.frame.to_numpy()]).diagonal()
    return float((overlap >= 0.5).sum() / len(truth))


def test_box_iou_hand_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    expected = np.array([[50 / 150, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(box_iou(a, b), expected, rtol=1e-6)


def test_masked_median_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 9))
    mask = rng.random((40, 9)) < 0.5
    mask[0] = False
    got = masked_median(values, mask)
    assert np.isnan(got[0])
    for row in range(1, 40):
        if mask[row].any():
            assert got[row] == pytest.approx(np.median(values[row][mask[row]]))


def _texture(size=(128, 96), seed=3) -> np.ndarray:
    coarse = np.random.default_rng(seed).integers(0, 256, (size[1] // 4, size[0] // 4), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(coarse, size, interpolation=cv2.INTER_LINEAR), (3, 3), 0)


def test_propagate_recovers_translation_and_scale():
    image = _texture()
    box = np.array([[40, 30, 80, 66]], np.float32)
    shifted = cv2.warpAffine(image, np.float32([[1, 0, 3], [0, 1, -2]]), image.shape[::-1], borderMode=cv2.BORDER_REFLECT)
    moved, kept = propagate(image, shifted, box, points=25, fb_error=1.0)
    np.testing.assert_allclose(moved[0], box[0] + [3, -2, 3, -2], atol=0.5)
    assert kept[0] > 0.8
    # Zoom by 1.1 about the box centre (60, 48): the box grows by 10% about its centre.
    zoom = cv2.getRotationMatrix2D((60, 48), 0, 1.1)
    zoomed = cv2.warpAffine(image, zoom, image.shape[::-1], borderMode=cv2.BORDER_REFLECT)
    moved, kept = propagate(image, zoomed, box, points=25, fb_error=1.0)
    np.testing.assert_allclose(moved[0], [38, 28.2, 82, 67.8], atol=0.8)
    assert kept[0] > 0.5


@pytest.fixture(scope="module")
def scene():
    frames, truth = moving_object_frames()
    return frames, truth, [selective_search(f) for f in frames]


def test_best_track_follows_the_object(scene):
    frames, truth, proposals = scene
    tracks = link_chunk(frames, proposals, score_threshold=0.5, min_length=10)
    assert list(tracks.columns) == ["track", "frame", *BOXES, "score"]
    assert best_track_overlap(tracks, truth, min_length=40) >= 0.8
    # Every kept track is contiguous from frame 0, at least min_length long, with one score >= the threshold.
    for _, track in tracks.groupby("track"):
        assert track.frame.tolist() == list(range(len(track)))
        assert len(track) >= 10 and track.score.nunique() == 1 and track.score.iat[0] >= 0.5
    # Boxes are proposals of their frame (tracks are made of proposals).
    for row in tracks.sample(20, random_state=0).itertuples():
        assert (proposals[row.frame] == [row.x1, row.y1, row.x2, row.y2]).all(axis=1).any()


def test_missing_proposals_end_every_track(scene):
    frames, _, proposals = scene
    gap = [*proposals[:25], np.zeros((0, 4), np.float32), *proposals[26:]]
    tracks = link_chunk(frames, gap, score_threshold=0.0, min_length=2)
    assert not tracks.empty and tracks.frame.max() == 24


def test_noise_yields_few_tracks():
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(30)]
    tracks = link_chunk(noise, [selective_search(f) for f in noise], score_threshold=0.5, min_length=10)
    assert tracks.track.nunique() <= 2


def test_black_chunk_yields_nothing():
    black = [np.zeros((96, 128, 3), np.uint8)] * 20
    proposals = [selective_search(f) for f in black]
    assert len(link_chunk(black, proposals, score_threshold=0.0, min_length=2)) == 0
    assert len(link_chunk([], [])) == 0


def test_track_shard_and_contact_sheet(tmp_path):
    frames, truth = moving_object_frames(n_frames=24)
    black = [np.zeros((96, 128, 3), np.uint8)] * 24
    chunks = make_container(tmp_path, {"object": frames, "black": black}, length=24)
    propose_shard(chunks, tmp_path / "proposals.parquet", threads=1)
    out = tmp_path / "tracks.parquet"
    summary = track_shard(chunks, tmp_path / "proposals.parquet", out, score_threshold=0.5, min_length=10)

    tracks = read_parquet(out)
    assert list(tracks.columns) == ["video", "chunk", "track", "frame", *BOXES, "score"]
    assert {c: str(t) for c, t in tracks.dtypes.items() if c != "video"} == dict(
        chunk="int32", track="int32", frame="int32", x1="float32", y1="float32", x2="float32", y2="float32",
        score="float32")
    assert set(tracks.video) == {"object"}
    keys = tracks[["video", "chunk", "track", "frame"]]
    assert keys.equals(keys.sort_values(list(keys.columns)).reset_index(drop=True))
    assert best_track_overlap(tracks, truth, min_length=20) >= 0.8
    meta = parquet_metadata(out)
    assert meta["chunks"] == 2 and meta["chunks_with_tracks"] == 1 == summary["chunks_with_tracks"]
    assert [(item["video"], item["chunk"]) for item in meta["no_tracks"]] == [("black", 0)]
    assert meta["tracks"] == tracks.track.nunique()
    assert pq.ParquetFile(out).num_row_groups == 1

    png = tmp_path / "sheet.png"
    drawn = contact_sheet(chunks, tmp_path / "proposals.parquet", out, png, n_chunks=2, frames_per_chunk=4)
    assert drawn == [("object", 0), ("black", 0)]  # the chunk with tracks first
    sheet = cv2.imread(str(png))
    assert sheet.shape[1] > 4 * 240 and sheet.shape[0] > 2 * 180
    assert not list(tmp_path.glob(".*tmp*"))

    # A frame that no longer decodes cuts its chunk short instead of failing the shard.
    with h5py.File(chunks, "r+") as h5:
        h5["jpeg"][ChunkStore(chunks).row("object", 0, 15)] = np.frombuffer(b"not a jpeg", np.uint8)
    summary = track_shard(chunks, tmp_path / "proposals.parquet", tmp_path / "cut.parquet", min_length=10)
    assert [(t["video"], t["frame"]) for t in summary["truncated"]] == [("object", 15)]
    cut = read_parquet(tmp_path / "cut.parquet")
    assert len(cut) > 0 and cut.frame.max() == 14
