"""Manifest and chunk extraction: chunk placement, every video source, bad videos beside good ones."""
from __future__ import annotations

import os
import shutil
import struct
import tracemalloc

import cv2
import numpy as np
import pytest
from conftest import moving_square_frames, write_jpeg_folder, write_mp4

from vidssl.core.errors import UserError
from vidssl.video.chunk_store import ChunkStore
from vidssl.video.chunks import extract_chunks
from vidssl.video.manifest import build_manifest, chunk_starts, list_videos, shard_of, write_manifest


@pytest.mark.parametrize(
    "n_frames, expected",
    [
        (0, []),
        (59, []),
        (60, [0]),
        (119, [0]),
        (120, [0, 60]),
        (179, [0, 119]),
        (240, [0, 60, 120, 180]),
        (241, [0, 60, 120, 181]),
        (1000, [0, 313, 626, 940]),
    ],
)
def test_chunk_starts(n_frames, expected):
    starts = chunk_starts(n_frames, 4, 60)
    assert starts == expected
    assert all(b - a >= 60 for a, b in zip(starts, starts[1:])), "chunks overlap"
    assert all(s + 60 <= n_frames for s in starts)


def test_chunk_starts_other_sizes():
    assert chunk_starts(100, n_chunks=2, chunk_len=30) == [0, 70]
    assert chunk_starts(100, n_chunks=1, chunk_len=30) == [0]
    assert chunk_starts(29, n_chunks=3, chunk_len=30) == []


def test_shard_is_stable_and_spread():
    assert shard_of("TRAIN_0/abc", 7) == shard_of("TRAIN_0/abc", 7)
    shards = {shard_of(f"v{i}", 4) for i in range(100)}
    assert shards == {0, 1, 2, 3}


def _manifest(root, **kw):
    return build_manifest(list_videos("folder", str(root)), shards=kw.get("shards", 1), chunk_len=60)


def test_folder_source_reads_mp4_and_jpeg_folders(video_folder):
    manifest = _manifest(video_folder).set_index("video")
    assert manifest.loc["long", "frames"] == 130 and manifest.loc["long", "kind"] == "file"
    assert manifest.loc["jpegs", "frames"] == 90 and manifest.loc["jpegs", "kind"] == "frames"
    assert (manifest.loc["long", "width"], manifest.loc["long", "height"]) == (64, 48)
    assert (manifest.skip_reason == "").all()


def test_chunks_roundtrip(video_folder, tmp_path):
    manifest = _manifest(video_folder)
    out = tmp_path / "chunks.h5"
    summary = extract_chunks(manifest, out, shard=0, per_video=4, length=60, max_side=32, jpeg_quality=95)
    store = ChunkStore(out)
    chunks = store.chunks()
    # long: 130 // 60 = 2 chunks, exact: 1, jpegs: 1
    assert chunks.groupby("video").size().to_dict() == {"exact": 1, "jpegs": 1, "long": 2}
    assert (chunks.n_frames == 60).all() and summary["frames"] == 4 * 60
    assert store.index.query("video == 'long' and chunk == 1").source_frame.tolist() == list(range(70, 130))
    image = store.frame("long", 1, 0)
    assert image.shape == (24, 32, 3)  # 64x48 resized to max side 32
    # The stored frame is source frame 70, not a neighbour: it matches frame 70 better than frames 10 away.
    originals = moving_square_frames(130)
    errors = {t: np.abs(image.astype(int) - cv2.resize(originals[t], (32, 24), interpolation=cv2.INTER_AREA)).mean()
              for t in (60, 70, 80)}
    assert min(errors, key=errors.get) == 70


def test_bad_videos_are_skipped_with_reasons(video_folder, tmp_path):
    (video_folder / "empty.mp4").write_bytes(b"")
    good = (video_folder / "long.mp4").read_bytes()
    (video_folder / "truncated.mp4").write_bytes(good[: len(good) // 3])
    write_mp4(video_folder / "short.mp4", moving_square_frames(59))
    write_jpeg_folder(video_folder / "gray", moving_square_frames(70, seed=3), grayscale=True)
    write_jpeg_folder(video_folder / "gappy", moving_square_frames(80, seed=4), numbers=[*range(65), *range(70, 85)])
    manifest = _manifest(video_folder)
    reasons = manifest.set_index("video").skip_reason
    assert "cannot be opened" in reasons["empty"] or "no decodable" in reasons["empty"]
    assert "fewer than one chunk" in reasons["short"]
    assert reasons["gray"] == "" and reasons["gappy"] == ""
    assert "gap" in manifest.set_index("video").note["gappy"]
    out = tmp_path / "chunks.h5"
    summary = extract_chunks(manifest, out, shard=0, per_video=4, length=60, max_side=32, jpeg_quality=90)
    store = ChunkStore(out)
    kept = set(store.chunks().video)
    assert {"long", "exact", "jpegs", "gray", "gappy"} <= kept
    skipped = {item["video"] for item in summary["skipped"]}
    assert {"empty", "short"} <= skipped
    assert "truncated" in kept or "truncated" in skipped, "a truncated video is either decoded or recorded"
    assert store.frame("gray", 0, 0).shape[2] == 3


def test_unreadable_frame_in_the_middle_skips_its_chunk(tmp_path):
    root = tmp_path / "v"
    folder = write_jpeg_folder(root / "holey", moving_square_frames(130))
    (folder / "100.jpg").write_bytes(b"not a jpeg")
    manifest = _manifest(root)
    summary = extract_chunks(manifest, tmp_path / "c.h5", shard=0, per_video=4, length=60, max_side=32, jpeg_quality=90)
    assert ChunkStore(tmp_path / "c.h5").chunks().chunk.tolist() == [0]
    assert any("unreadable frame 100" in item["reason"] for item in summary["skipped"])


def test_trackingnet_layout(tmp_path):
    for split, names in {"TRAIN_0": ["a", "b"], "TRAIN_1": ["c"]}.items():
        for name in names:
            write_jpeg_folder(tmp_path / split / "frames" / name, moving_square_frames(61))
            (tmp_path / split / "anno").mkdir(parents=True, exist_ok=True)
            (tmp_path / split / "anno" / f"{name}.txt").write_text("1,2,3,4\n" * 61)
    entries = list_videos("trackingnet", str(tmp_path), splits=["TRAIN_0", "TRAIN_1"])
    assert [e.video for e in entries] == ["TRAIN_0/a", "TRAIN_0/b", "TRAIN_1/c"]
    assert all(e.frames == 61 and e.width == 64 for e in entries)
    with pytest.raises(UserError, match="TRAIN_5"):
        list_videos("trackingnet", str(tmp_path), splits=["TRAIN_5"])


def test_missing_and_empty_sources_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        list_videos("folder", str(tmp_path / "nope"))
    with pytest.raises(UserError, match="holds no videos"):
        list_videos("folder", str(tmp_path))


def write_mkv(path, frames, duration_scale: float | None = 1.0):
    """An MJPG Matroska file whose Segment duration is scaled (the frame count OpenCV reports follows it), or removed
    (None), as a stream recorded live has none."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # the Duration element: ID 0x4489, an 8-byte float
    assert at > 0
    if duration_scale is None:
        data[at:at + 11] = b"\xec\x89" + bytes(9)  # a Void element of the same size
    else:
        value = struct.unpack(">d", data[at + 3:at + 11])[0]
        data[at + 3:at + 11] = struct.pack(">d", value * duration_scale)
    path.write_bytes(bytes(data))
    return path


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an EXIF block whose only tag is the orientation (6: shown turned 90 degrees clockwise)."""
    tiff = (b"MM\x00\x2a" + (8).to_bytes(4, "big") + (1).to_bytes(2, "big") + (0x0112).to_bytes(2, "big")
            + (3).to_bytes(2, "big") + (1).to_bytes(4, "big") + orientation.to_bytes(2, "big") + bytes(2) + bytes(4))
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def stored_matches(store, video_id, chunk, frame, original, size) -> float:
    """Mean absolute difference between a stored frame and the original resized to the stored size."""
    stored = store.frame(video_id, chunk, frame).astype(int)
    return float(np.abs(stored - cv2.resize(original, size, interpolation=cv2.INTER_AREA)).mean())


def closest(store, video_id, chunk, frame, candidates: dict, size):
    """The key of the candidate original that a stored frame matches best."""
    return min(candidates, key=lambda key: stored_matches(store, video_id, chunk, frame, candidates[key], size))


@pytest.mark.parametrize("scale, reported", [(2.0, 140), (0.5, 35), (None, None)])
def test_a_wrong_frame_count_is_read_to_the_real_end(tmp_path, scale, reported):
    frames = moving_square_frames(70)
    (tmp_path / "v").mkdir()
    path = write_mkv(tmp_path / "v" / "clip.mkv", frames, scale)
    capture = cv2.VideoCapture(str(path))
    claimed = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    capture.release()
    assert (claimed == reported) if reported else claimed <= 0, f"the container reports {claimed}"
    manifest = build_manifest(list_videos("folder", str(tmp_path / "v")), shards=1, chunk_len=30)
    assert manifest.skip_reason.tolist() == [""]
    summary = extract_chunks(manifest, tmp_path / "c.h5", shard=0, per_video=2, length=30, max_side=64,
                                   jpeg_quality=95)
    store = ChunkStore(tmp_path / "c.h5")
    assert summary["skipped"] == [] and store.chunks().chunk.tolist() == [0, 1]
    assert store.index.query("chunk == 1").source_frame.tolist() == list(range(40, 70))  # placed to the real end
    assert closest(store, "clip", 1, 29, {t: frames[t] for t in (40, 50, 60, 69)}, (64, 48)) == 69


def test_frames_of_another_size_are_stored_at_the_video_size_or_skip_their_chunk(tmp_path):
    root = tmp_path / "v"
    frames = moving_square_frames(130)
    resized = write_jpeg_folder(root / "resized", frames)
    cv2.imwrite(str(resized / "75.jpg"), cv2.resize(frames[75], (128, 96)))  # same shape, twice the size
    cv2.imwrite(str(resized / "10.jpg"), cv2.resize(frames[10], (65, 48)))  # one pixel wider
    rotated = write_jpeg_folder(root / "rotated", frames)
    (rotated / "30.jpg").write_bytes(with_exif_orientation((rotated / "30.jpg").read_bytes(), 6))
    assert cv2.imread(str(rotated / "30.jpg")).shape == (64, 48, 3), "OpenCV applies the EXIF orientation"
    turned = write_jpeg_folder(root / "turned", frames)
    cv2.imwrite(str(turned / "100.jpg"), cv2.rotate(frames[100], cv2.ROTATE_90_CLOCKWISE))
    summary = extract_chunks(_manifest(root), tmp_path / "c.h5", shard=0, per_video=2, length=60, max_side=32,
                                   jpeg_quality=95)
    store = ChunkStore(tmp_path / "c.h5")
    assert store.chunks()[["video", "chunk"]].values.tolist() == [["resized", 0], ["resized", 1], ["rotated", 1],
                                                                   ["turned", 0]]
    assert {store.frame(r.video, r.chunk, r.frame).shape for r in store.index.itertuples()} == {(24, 32, 3)}
    assert closest(store, "resized", 1, 5, {t: frames[t] for t in (55, 65, 75, 85)}, (32, 24)) == 75
    reasons = {(item["video"], item["chunk"]): item["reason"] for item in summary["skipped"]}
    assert reasons == {("rotated", 0): "frame 30 is 48x64, a shape other than the video's 64x48",
                       ("turned", 1): "frame 100 is 48x64, a shape other than the video's 64x48"}


def test_a_4k_video_is_never_held_at_source_size(tmp_path):
    """Chunk extraction decodes one source frame at a time and keeps only stored-size frames."""
    base = cv2.resize(np.random.default_rng(0).integers(0, 255, (9, 16, 3), np.uint8), (3840, 2160))
    (tmp_path / "v").mkdir()
    write_mp4(tmp_path / "v" / "uhd.mp4", [np.roll(base, 40 * t, axis=1) for t in range(8)])
    manifest = build_manifest(list_videos("folder", str(tmp_path / "v")), shards=1, chunk_len=8)
    assert (manifest.width[0], manifest.height[0], manifest.frames[0]) == (3840, 2160, 8)
    source_frame = 3840 * 2160 * 3
    tracemalloc.start()
    try:
        summary = extract_chunks(manifest, tmp_path / "c.h5", shard=0, per_video=1, length=8, max_side=64,
                                       jpeg_quality=90)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary["frames"] == 8 and ChunkStore(tmp_path / "c.h5").frame("uhd", 0, 7).shape == (36, 64, 3)
    assert peak < 3 * source_frame, f"peak {peak / 1e6:.0f} MB: more than 3 source frames ({source_frame / 1e6:.0f} MB each)"


def bytes_name(folder, name: bytes):
    """A path in `folder` whose last part is the raw bytes `name` (not valid UTF-8), as Python's os functions see it."""
    return type(folder)(os.fsdecode(os.fsencode(folder) + b"/" + name))


def test_inputs_that_would_share_an_id_are_kept_apart(tmp_path):
    root = tmp_path / "v"
    root.mkdir()
    sources = {"clip.mp4": 0, "clip.avi": 1, "clip": 2, "clip.avi.mkv": 3, "-dash v2.mp4": 4, "a.b.c.mp4": 5}
    for name, seed in sources.items():
        frames = moving_square_frames(60, seed=seed)
        if name == "clip":
            write_jpeg_folder(root / name, frames)
        elif name.endswith(".mkv"):
            write_mkv(root / name, frames)
        else:
            write_mp4(root / name, frames)
    manifest = _manifest(root)
    assert manifest.video.is_unique and len(manifest) == len(sources) and (manifest.skip_reason == "").all()
    ids = dict(zip(manifest.path.map(lambda p: os.path.basename(p)), manifest.video))
    assert ids == {"clip.mp4": "clip.mp4", "clip.avi": "clip.avi", "clip": "clip", "clip.avi.mkv": "clip.avi.mkv",
                   "-dash v2.mp4": "-dash v2", "a.b.c.mp4": "a.b.c"}
    extract_chunks(manifest, tmp_path / "c.h5", shard=0, per_video=1, length=60, max_side=64, jpeg_quality=95)
    store = ChunkStore(tmp_path / "c.h5")
    assert sorted(store.chunks().video) == sorted(ids.values())
    firsts = {seed: moving_square_frames(60, seed=seed)[0] for seed in sources.values()}
    for name, seed in sources.items():  # each id holds its own source's frames
        assert closest(store, ids[name], 0, 0, firsts, (64, 48)) == seed, name


def test_names_that_are_not_utf8_are_recorded_and_the_rest_read(tmp_path):
    root = tmp_path / "v"
    good = write_jpeg_folder(root / "good", moving_square_frames(60))
    shutil.copy(good / "5.jpg", bytes_name(good, b"7\xff.jpg"))  # a stray frame name: not a number, not read
    write_mp4(root / "fine.mp4", moving_square_frames(60, seed=1))
    shutil.copy(root / "fine.mp4", bytes_name(root, b"caf\xe9.mp4"))  # Latin-1 bytes
    write_jpeg_folder(root / "frames_tmp", moving_square_frames(60, seed=2)).rename(bytes_name(root, b"\xff\xfeframes"))
    manifest = _manifest(root)
    write_manifest(manifest, tmp_path / "manifest.parquet")
    reasons = manifest.set_index("video").skip_reason
    assert reasons["good"] == reasons["fine"] == "" and manifest.set_index("video").frames["good"] == 60
    assert reasons[r"caf\xe9"].startswith("name is not valid UTF-8") and r"caf\xe9.mp4" in reasons[r"caf\xe9"]
    assert reasons[r"\xff\xfeframes"].startswith("name is not valid UTF-8")
    summary = extract_chunks(manifest, tmp_path / "c.h5", shard=0, per_video=1, length=60, max_side=64,
                                   jpeg_quality=95)
    assert sorted(ChunkStore(tmp_path / "c.h5").chunks().video) == ["fine", "good"]
    assert {item["video"] for item in summary["skipped"]} == {r"caf\xe9", r"\xff\xfeframes"}
    split = tmp_path / "tn" / "TRAIN_0" / "frames"
    write_jpeg_folder(split / "ok", moving_square_frames(60))
    shutil.copytree(split / "ok", bytes_name(split, b"n\xf6"))
    entries = list_videos("trackingnet", str(tmp_path / "tn"), splits=["TRAIN_0"])
    assert [e.video for e in entries] == ["TRAIN_0/n\\xf6", "TRAIN_0/ok"] and entries[1].skip_reason == ""
    assert entries[0].skip_reason.startswith("name is not valid UTF-8") and "frames/n\\xf6" in entries[0].skip_reason


def test_frame_numbers_are_ascii_digits(tmp_path):
    """Names str.isdigit() accepts but that are no frame number: circled, superscript, Arabic-Indic, fullwidth."""
    frames = moving_square_frames(70)
    folder = write_jpeg_folder(tmp_path / "v" / "digits", frames)
    white = np.full((48, 64, 3), 255, np.uint8)
    for name in ("①", "²", "٣", "５", "٣٤", " 4", "4 ", "+5", "-1", "1_0", "0x1"):
        cv2.imwrite(str(folder / "w.jpg"), white)
        (folder / "w.jpg").rename(folder / f"{name}.jpg")
    manifest = _manifest(tmp_path / "v")
    assert manifest.frames.tolist() == [70] and manifest.note.tolist() == [""]
    extract_chunks(manifest, tmp_path / "c.h5", shard=0, per_video=1, length=60, max_side=64, jpeg_quality=95)
    store = ChunkStore(tmp_path / "c.h5")
    white = {"white": np.full((48, 64, 3), 255, np.uint8)}
    assert all(closest(store, "digits", 0, i, {i: frames[i], **white}, (64, 48)) == i for i in range(60))


def test_two_frames_with_one_number_end_the_usable_run(tmp_path):
    frames = moving_square_frames(80)
    folder = write_jpeg_folder(tmp_path / "v" / "twice", frames)
    cv2.imwrite(str(folder / "0065.jpg"), frames[0])
    [row] = _manifest(tmp_path / "v").itertuples()
    assert row.frames == 65 and row.note == "two frames numbered 65 (0065.jpg, 65.jpg): only the frames before them are used"
