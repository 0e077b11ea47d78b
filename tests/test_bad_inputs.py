"""A corpus of bad inputs, generated here, run through the stages beside good inputs.

Already covered elsewhere (not repeated): each bad video alone through manifest and chunks (test_video.py), unreadable
and truncated .mat files through make_crops (test_partseg.py) and the reader (test_pascal_part.py), NaN/inf and
mixed-class sets in the invariance measure itself (test_invariance.py), a config with a wrong type, an unknown key or a
negative threshold (test_config.py: one `vidssl:` line each, nothing run).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from conftest import moving_square_frames, search_params, track_params, write_jpeg_folder, write_mp4
from test_partseg import plain_car, write_image
from test_pascal_part import OBJECT_FIELDS, box_mask, save_raw
from test_video import with_exif_orientation, write_mkv

from vidssl.core.io import parquet_metadata, read_parquet
from vidssl.datasets.readers import write_index
from vidssl.evaluation.partseg_crops import make_crops
from vidssl.tracking import proposals, tracks
from vidssl.video.chunk_store import ChunkStore
from vidssl.video.chunks import extract_chunks
from vidssl.video.manifest import build_manifest, list_videos, write_manifest

ROOT = Path(__file__).resolve().parents[1]
LENGTH = 60
GOOD = {"good", "good_jpegs", "gray_jpegs", "gappy_jpegs", "resized_jpegs", "count_too_high", "count_missing"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Every bad video beside good ones, in one `videos.source: folder` root."""
    root = tmp_path_factory.mktemp("corpus") / "videos"
    root.mkdir()
    good = write_mp4(root / "good.mp4", moving_square_frames(70))
    write_jpeg_folder(root / "good_jpegs", moving_square_frames(64, seed=5))
    (root / "zero.mp4").write_bytes(b"")
    (root / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    write_mp4(root / "short59.mp4", moving_square_frames(59, seed=1))
    holey = write_jpeg_folder(root / "holey_jpegs", moving_square_frames(64, seed=2))
    (holey / "30.jpg").write_bytes(b"not a jpeg")
    write_mp4(root / "holey.mp4", moving_square_frames(64, seed=3))
    damaged = bytearray((root / "holey.mp4").read_bytes())
    middle = len(damaged) // 2
    damaged[middle:middle + 2000] = bytes(2000)  # zeroes over a few frames' bitstream, container intact
    (root / "holey.mp4").write_bytes(bytes(damaged))
    # OpenCV's mp4 writer cannot make a 1x1 video, so the 1x1 input is a frame folder
    write_jpeg_folder(root / "tiny1x1_jpegs", [np.full((1, 1, 3), 128, np.uint8)] * 64)
    write_mp4(root / "panorama.mp4", moving_square_frames(64, size=(4000, 200), seed=4))
    write_jpeg_folder(root / "gray_jpegs", moving_square_frames(64, seed=6), grayscale=True)
    write_jpeg_folder(root / "gappy_jpegs", moving_square_frames(70, seed=7), numbers=[*range(62), *range(64, 72)])
    resized = write_jpeg_folder(root / "resized_jpegs", moving_square_frames(64, seed=8))
    cv2.imwrite(str(resized / "30.jpg"), cv2.resize(cv2.imread(str(resized / "30.jpg")), (128, 96)))
    turned = write_jpeg_folder(root / "exif_jpegs", moving_square_frames(64, seed=9))
    (turned / "20.jpg").write_bytes(with_exif_orientation((turned / "20.jpg").read_bytes(), 6))
    write_mkv(root / "count_too_high.mkv", moving_square_frames(70, seed=10), duration_scale=2.0)
    write_mkv(root / "count_missing.mkv", moving_square_frames(70, seed=11), duration_scale=None)
    return root


@pytest.fixture(scope="module")
def stages(corpus) -> dict:
    """manifest -> chunks -> proposals -> tracks, as the rules call them (one shard, 60-frame chunks)."""
    out = corpus.parent
    manifest = build_manifest(list_videos("folder", str(corpus)), shards=1, chunk_len=LENGTH)
    write_manifest(manifest, str(out / "manifest.parquet"))
    summary = extract_chunks(read_parquet(out / "manifest.parquet"), str(out / "chunks.h5"), shard=0,
                                   per_video=1, length=LENGTH, max_side=64, jpeg_quality=90)
    proposals.propose_shard(str(out / "chunks.h5"), str(out / "proposals.parquet"), **search_params(), threads=1)
    tracks.track_shard(str(out / "chunks.h5"), str(out / "proposals.parquet"), str(out / "tracks.parquet"), **track_params())
    return dict(manifest=read_parquet(out / "manifest.parquet").set_index("video"), chunk_summary=summary,
                store=ChunkStore(out / "chunks.h5"), proposals=read_parquet(out / "proposals.parquet"),
                proposal_meta=parquet_metadata(out / "proposals.parquet"),
                tracks=read_parquet(out / "tracks.parquet"), track_meta=parquet_metadata(out / "tracks.parquet"))


def test_every_input_has_a_manifest_row_and_skips_are_recorded(corpus, stages):
    manifest = stages["manifest"]
    assert set(manifest.index) == {p.stem if p.is_file() else p.name for p in corpus.iterdir()}
    reasons = manifest.skip_reason
    assert reasons["zero"] == reasons["truncated"] == "cannot be opened as a video"
    assert reasons["short59"] == "59 frames, fewer than one chunk of 60"
    assert (reasons.drop(["zero", "truncated", "short59"]) == "").all()
    assert manifest.frames["gappy_jpegs"] == 62 and "gap after frame 61" in manifest.note["gappy_jpegs"]
    assert (manifest.width["panorama"], manifest.height["panorama"]) == (4000, 200)
    recorded = {item["video"]: item["reason"] for item in parquet_metadata(corpus.parent / "manifest.parquet")["skipped"]}
    assert recorded == reasons[reasons != ""].to_dict()


def test_unreadable_frames_skip_their_chunk_and_are_recorded_in_the_container(stages):
    store = stages["store"]
    skipped = {item["video"]: item["reason"] for item in store.skipped}
    assert skipped == {item["video"]: item["reason"] for item in stages["chunk_summary"]["skipped"]}
    assert skipped["holey_jpegs"] == "unreadable frame 30 (of 1)"
    assert skipped["exif_jpegs"] == "frame 20 is 48x64, a shape other than the video's 64x48"
    assert skipped["holey"].startswith("unreadable frame ")  # the decoder gives up on the zeroed frames
    assert {"zero", "truncated", "short59"} <= set(skipped)
    kept = set(store.chunks().video)
    assert kept == GOOD | {"panorama", "tiny1x1_jpegs"}
    assert store.frame("gray_jpegs", 0, 0).shape == (48, 64, 3)
    assert {store.frame("resized_jpegs", 0, i).shape for i in range(LENGTH)} == {(48, 64, 3)}
    assert store.frame("panorama", 0, 0).shape == (3, 64, 3)  # 4000x200 at max_side 64
    assert store.frame("tiny1x1_jpegs", 0, 0).shape == (1, 1, 3)  # never upscaled


def test_degenerate_frames_have_no_proposals_or_tracks_recorded(stages):
    per_video = stages["proposals"].groupby("video").size()
    assert set(per_video.index) == GOOD and (per_video > 100).all()
    no_proposals = {(item["video"], item["reason"]) for item in stages["proposal_meta"]["skipped"]}
    assert no_proposals == {("panorama", "no proposals"), ("tiny1x1_jpegs", "no proposals")}
    assert len(stages["proposal_meta"]["skipped"]) == 2 * LENGTH  # every frame of both, one entry each
    assert set(stages["tracks"].video) == GOOD
    no_tracks = {item["video"]: item["reason"] for item in stages["track_meta"]["no_tracks"]}
    assert no_tracks == {v: "first frame has no proposals (60 of 60 frames have none)"
                         for v in ("panorama", "tiny1x1_jpegs")}


def test_pascal_part_file_missing_a_field_is_a_recorded_skip(tmp_path):
    write_image(tmp_path, "good", [plain_car(0, 20, 0, 20)])
    save_raw(tmp_path / "Annotations_Part" / "no_parts.mat", [("car", 7, box_mask(0, 2, 0, 2))], fields=OBJECT_FIELDS[:3])
    summary = make_crops(tmp_path / "JPEGImages", tmp_path / "Annotations_Part", tmp_path / "crops.h5", classes=["car"],
                         merge={}, context=0.25, min_box=8, crop_size=16, test_fraction=0.5, seed=0)
    assert summary["crops"] == 1
    [skip] = summary["skipped"]
    assert skip["item"] == "no_parts" and "no_parts.mat" in skip["reason"] and "'parts'" in skip["reason"]
    with h5py.File(tmp_path / "crops.h5") as h5:
        assert json.loads(h5.attrs["skipped"]) == [skip] and h5["image"].asstr()[:].tolist() == ["good"]


def run_invariance_script(tmp_path: Path, feature_files: list[Path]) -> subprocess.CompletedProcess:
    """workflow/scripts/invariance.py as Snakemake runs it: a fresh Python with a `snakemake` object in its globals."""
    job = dict(input=[str(p) for p in feature_files], output=[str(tmp_path / "out.csv")], log=[str(tmp_path / "job.log")],
               params={"invariance": {"top_k": [2], "firing_rate": 0.01, "min_set_size": 2, "bootstrap": 0}, "seed": 0})
    code = ("import json, runpy, sys, types\n"
            "job = json.loads(sys.argv[1])\n"
            "smk = types.SimpleNamespace(input=job['input'], output=job['output'], log=job['log'], rule='invariance',\n"
            "                            threads=1, params=types.SimpleNamespace(**job['params']))\n"
            "runpy.run_path(sys.argv[2], init_globals={'snakemake': smk})\n")
    return subprocess.run([sys.executable, "-c", code, json.dumps(job), str(ROOT / "workflow" / "scripts" / "invariance.py")],
                          capture_output=True, text=True, timeout=120)


def feature_file(path: Path, *, nan_row: int | None = None, mixed: bool = False) -> Path:
    rng = np.random.default_rng(0)
    features = rng.random((12, 8), dtype=np.float32)
    if nan_row is not None:
        features[nan_row, 3] = np.nan
    sets = np.repeat(np.arange(4), 3)
    labels = sets % 2
    if mixed:
        labels[4] = 1 - labels[4]  # set 1 now holds two classes
    with h5py.File(path, "w") as h5:
        h5["features"], h5["label"], h5["set"] = features, labels, sets
    return path


@pytest.mark.parametrize("bad, message", [
    (dict(nan_row=5), r"1 feature rows hold NaN or inf \(first rows \[5\]\)"),
    (dict(mixed=True), r"set ids \[1\]"),
])
def test_bad_feature_file_is_one_error_naming_it(tmp_path, bad, message):
    good = feature_file(tmp_path / "viewpoint.h5")
    broken = feature_file(tmp_path / "occlusion.h5", **bad)
    result = run_invariance_script(tmp_path, [good, broken])
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("vidssl invariance:")]
    assert line.startswith(f"vidssl invariance: {broken}: ")  # one line naming the file, from any check
    assert re.search(message, line), line
    assert not (tmp_path / "out.csv").exists()
    assert run_invariance_script(tmp_path, [good]).returncode == 0  # the good file alone scores


def test_pascal_part_files_scipy_cannot_read_are_recorded_skips(tmp_path):
    from test_pascal_part import unreadable_mat_files

    write_image(tmp_path, "good", [plain_car(0, 20, 0, 20)])
    bad = unreadable_mat_files(tmp_path / "Annotations_Part")
    summary = make_crops(tmp_path / "JPEGImages", tmp_path / "Annotations_Part", tmp_path / "crops.h5", classes=["car"],
                         merge={}, context=0.25, min_box=8, crop_size=16, test_fraction=0.5, seed=0)
    assert summary["crops"] == 1
    reasons = {skip["item"]: skip["reason"] for skip in summary["skipped"]}
    assert sorted(reasons) == sorted(path.stem for path in bad) and "good" not in reasons
    assert all(reason.startswith(f"{item}.mat: unreadable .mat file") for item, reason in reasons.items())
    with h5py.File(tmp_path / "crops.h5") as h5:
        assert h5["image"].asstr()[:].tolist() == ["good"] and len(json.loads(h5.attrs["skipped"])) == 4


def raw_name(folder: Path, name: bytes) -> Path:
    """`folder` / the bytes `name` (not valid UTF-8), as Python's os functions see it."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + name))


def written_index(source: dict, out: Path) -> tuple[list[str], dict[str, str]]:
    """The image list the eval_index rule writes for `source`: its file names and its recorded skips by item."""
    write_index(source, str(out), log=logging.getLogger("test"))
    names = sorted(Path(path).name for path in read_parquet(out).path)
    return names, {item["item"]: item["reason"] for item in parquet_metadata(out)["skipped"]}


def test_aloi_and_got10k_names_that_are_not_utf8_are_recorded_and_the_rest_read(tmp_path):
    from test_eval_sets import write_image as write_gray
    from test_eval_sets import write_video

    views = tmp_path / "aloi" / "ALOI_viewpoint"
    write_gray(views / "1" / "1_r0.png")
    write_gray(views / "2" / "2_r0.png")
    shutil.copy(views / "1" / "1_r0.png", raw_name(views / "1", b"1_r5\xff.png"))
    names, skipped = written_index({"reader": "aloi", "root": str(views), "dataset": "aloi_viewpoint"},
                                   tmp_path / "aloi.parquet")
    assert names == ["1_r0.png", "2_r0.png"]
    assert skipped[f"{views}/1/1_r5\\xff.png"].startswith("name is not valid UTF-8")

    got = tmp_path / "got10k"
    for name in ("V1", "V3", "V2"):
        write_video(got, name, [8, 0])
    (got / "V2").rename(raw_name(got, b"V\xe92"))  # Latin-1 bytes, listed as they are
    (got / "list.txt").write_bytes(b"V1\nV\xe92\nV3\n")
    names, skipped = written_index({"reader": "got10k", "root": str(got), "seed": 1992}, tmp_path / "got.parquet")
    assert names == ["00000001.jpg", "00000001.jpg", "00000002.jpg", "00000002.jpg"]
    unreadable = {item: reason for item, reason in skipped.items() if "\\xe9" in item}
    assert len(unreadable) == 2 and all(r.startswith("name is not valid UTF-8") for r in unreadable.values())


def test_pascal_names_that_are_not_utf8_or_numbers_are_read_or_recorded(tmp_path):
    from test_eval_sets import write_image as write_gray
    from test_eval_sets import write_record

    write_image(tmp_path, "good", [plain_car(0, 20, 0, 20)])
    write_image(tmp_path, "odd", [plain_car(2, 22, 2, 22)])
    for folder, suffix in (("Annotations_Part", ".mat"), ("JPEGImages", ".jpg")):
        (tmp_path / folder / f"odd{suffix}").rename(raw_name(tmp_path / folder, b"caf\xe9" + suffix.encode()))
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_bytes(b"good\n")
    (lists / "val.txt").write_bytes(b"caf\xe9\n")
    summary = make_crops(tmp_path / "JPEGImages", tmp_path / "Annotations_Part", tmp_path / "crops.h5",
                         classes=["car"], merge={}, context=0.25, min_box=8, crop_size=16, test_fraction=0.5, seed=0,
                         split_lists=lists)
    assert summary["crops"] == 2 and summary["skipped"] == []
    with h5py.File(tmp_path / "crops.h5") as h5:
        assert h5["image"].asstr()[:].tolist() == ["caf\\xe9", "good"] and h5["split"][:].tolist() == [1, 0]

    root = tmp_path / "pascal3d"
    (root / "Image_sets").mkdir(parents=True)
    for image in ("n01", "p_a"):
        source = "imagenet" if image == "n01" else "pascal"
        write_record(root / "Annotations" / f"car_{source}" / f"{image}.mat", [((0, 0, 9, 9), (10, 5))])
        write_gray(root / "Images" / f"car_{source}" / f"{image}.{'JPEG' if source == 'imagenet' else 'jpg'}")
    shutil.copy(root / "Images" / "car_imagenet" / "n01.JPEG", raw_name(root / "Images" / "car_imagenet", b"n\xff.JPEG"))
    shutil.copy(root / "Annotations" / "car_imagenet" / "n01.mat", raw_name(root / "Annotations" / "car_imagenet", b"n\xff.mat"))
    (root / "Image_sets" / "car_imagenet_train.txt").write_bytes(b"n01\nn\xff\n")
    (root / "Image_sets" / "car_imagenet_val.txt").write_text("")
    (root / "Image_sets" / "car_pascal.txt").write_text("p_a 0\np_a \u2460\np_a \u0663\n")  # circled 1, Arabic-Indic 3
    names, skipped = written_index({"reader": "pascal3d", "root": str(root), "dataset": "pascal3d_instance"},
                                   tmp_path / "p3d.parquet")
    assert names == ["n01.JPEG", "p_a.jpg"]
    reasons = {item.split("/")[-1]: reason for item, reason in skipped.items()}
    assert reasons["car_pascal.txt: p_a \u2460"] == reasons["car_pascal.txt: p_a \u0663"] == "not '<image> <object index>'"
    assert reasons["n\\xff.JPEG"].startswith("name is not valid UTF-8")
