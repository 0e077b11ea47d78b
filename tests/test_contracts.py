"""Every artifact's writer gives what its contract (vidssl.contracts) says, its reader reads that back, and a file
without one of the contract's columns or datasets stops with one line naming it."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import search_params, track_params

from vidssl import contracts, synthetic
from vidssl.core.errors import UserError
from vidssl.core.io import write_parquet
from vidssl.datasets.readers import write_index
from vidssl.evaluation import partseg_crops, partseg_probe
from vidssl.tracking import pairs, proposals, tracks
from vidssl.video import chunks, manifest

CLASSES = ["aeroplane", "car", "bird"]
TABLES = {name: value for name, value in vars(contracts).items() if isinstance(value, contracts.Table)}
FILES = {name: value for name, value in vars(contracts).items() if isinstance(value, contracts.H5)}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A tiny synthetic world and every artifact of the pipeline written from it by the stages' own writers."""
    root = tmp_path_factory.mktemp("contracts")
    common = dict(classes=CLASSES, seed=0, materials="instance")
    synthetic.generate_videos(root / "videos", n_videos=2, n_frames=40, size=(96, 72), **common)
    synthetic.generate_partseg(root / "pascal_part", n_images=12, image_size=48, **common)
    synthetic.generate_labelled(root / "labelled", per_class=4, image_size=48, **common)
    synthetic.generate_trajectories(root / "trajectories", sets_per_class=2, set_length=2, image_size=48, **common)
    listed = manifest.build_manifest(manifest.list_videos("folder", str(root / "videos")), shards=1, chunk_len=20)
    manifest.write_manifest(listed, root / "manifest.parquet")
    chunks.extract_chunks(contracts.MANIFEST.read(root / "manifest.parquet"), str(root / "chunks.h5"), shard=0,
                          per_video=1, length=20, max_side=64, jpeg_quality=90)
    proposals.propose_shard(str(root / "chunks.h5"), str(root / "proposals.parquet"), **search_params(), threads=1)
    tracks.track_shard(str(root / "chunks.h5"), str(root / "proposals.parquet"), str(root / "tracks.parquet"), **track_params(min_length=2, score_threshold=0.0))
    pairs.write_frame_pairs(str(root / "chunks.h5"), str(root / "frames.parquet"), k=5, mode="strided")
    pairs.write_track_pairs(str(root / "frames.parquet"), str(root / "tracks.parquet"), str(root / "track_pairs.parquet"))
    write_index({"reader": "split", "root": str(root / "labelled"), "dataset": "labelled", "test_fraction": 0.5,
                 "seed": 0}, str(root / "eval.parquet"))
    partseg_crops.make_crops(root / "pascal_part/JPEGImages", root / "pascal_part/Annotations_Part", root / "crops.h5",
                             classes=CLASSES, merge={}, context=0.1, min_box=4, crop_size=16, test_fraction=0.5, seed=0)
    crops = contracts.CROPS.read(root / "crops.h5", ["label"])["label"]
    with contracts.feature_file(root / "features.h5", rows=len(crops), dim=4, labels=crops, sets=np.full(len(crops), -1),
                                class_names=CLASSES, attrs={"model": "random", "dataset": "partseg"}) as features:
        features[:] = np.random.default_rng(0).random((len(crops), 4))
    _, images = partseg_probe.probe_all(root / "crops.h5", root / "features.h5", classes=CLASSES, size=16, epochs=1,
                                        lr=1e-3, seed=0)
    contracts.PROBE_IMAGES.write(images, root / "probe.parquet")
    return root


WRITTEN = {
    "MANIFEST": "manifest.parquet", "PROPOSALS": "proposals.parquet", "TRACKS": "tracks.parquet",
    "FRAME_PAIRS": "frames.parquet", "TRACK_PAIRS": "track_pairs.parquet", "EVAL_INDEX": "eval.parquet",
    "PROBE_IMAGES": "probe.parquet", "TRAJECTORY_INDEX": "trajectories/index.parquet",
    "SYNTHETIC_BOXES": "videos/boxes.parquet", "CHUNKS": "chunks.h5", "FEATURES": "features.h5", "CROPS": "crops.h5",
}


def test_every_contract_has_a_written_artifact_here():
    assert set(WRITTEN) == set(TABLES) | set(FILES)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_table_reads_back_with_exactly_its_columns_and_dtypes(world, name):
    contract = TABLES[name]
    table = contract.read(world / WRITTEN[name])
    assert len(table) > 0, "an empty table would not show its dtypes"
    own = list(table.columns[:len(contract.columns)])
    assert own == contract.names
    assert {column: table[column].dtype for column in own} == {n: np.dtype(t) for n, t in contract.columns.items()}
    extra = list(table.columns[len(contract.columns):])
    assert extra == (["split"] if contract.open_ended else [])


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_hdf5_file_reads_back_with_exactly_its_datasets_dtypes_and_attributes(world, name):
    contract = FILES[name]
    values = contract.read(world / WRITTEN[name])
    assert list(values) == list(contract.datasets)
    assert len({len(v) for name, v in values.items() if name != "class_names"}) == 1, "one row per item"
    for dataset, dtype in contract.datasets.items():
        if dtype is contracts.STR:
            assert all(isinstance(v, str) for v in values[dataset])
        elif dtype != contracts.JPEG:
            assert values[dataset].dtype == np.dtype(dtype), dataset
    with h5py.File(world / WRITTEN[name]) as h5:
        assert list(h5) == sorted(contract.datasets)  # nothing beside the contract's datasets
        assert set(h5.attrs) <= set(contract.attrs)


def test_json_attributes_read_back_as_written(world):
    assert contracts.CROPS.attr(world / "crops.h5", "classes") == CLASSES
    assert contracts.CHUNKS.attr(world / "chunks.h5", "skipped") == []
    assert contracts.CHUNKS.attr(world / "chunks.h5", "length") == 20


@pytest.mark.parametrize("name", sorted(TABLES))
def test_a_table_missing_a_column_is_one_line_naming_it(tmp_path, name):
    contract = TABLES[name]
    dropped = contract.names[-1]
    frame = contract.empty().drop(columns=[dropped])
    write_parquet(frame, tmp_path / "t.parquet", sort_by=[c for c in contract.sort_by if c != dropped])
    with pytest.raises(UserError) as error:
        contract.read(tmp_path / "t.parquet")
    message = str(error.value)
    assert "\n" not in message and f"(missing column {dropped})" in message and "t.parquet" in message


@pytest.mark.parametrize("name", sorted(FILES))
def test_an_hdf5_file_missing_a_dataset_is_one_line_naming_it(tmp_path, name):
    contract = FILES[name]
    dropped = list(contract.datasets)[0]
    with h5py.File(tmp_path / "f.h5", "w") as h5:
        for dataset in list(contract.datasets)[1:]:
            h5[dataset] = np.zeros(2)
    with pytest.raises(UserError) as error:
        contract.read(tmp_path / "f.h5")
    message = str(error.value)
    assert "\n" not in message and f"(missing dataset {dropped})" in message and "f.h5" in message


def test_a_reader_asks_only_for_the_columns_it_reads(tmp_path):
    """A subset read names only what it lacks: track pairs need no keyframe column."""
    frame = contracts.TRACKS.empty().drop(columns=["keyframe", "score"])
    write_parquet(frame, tmp_path / "tracks.parquet", sort_by=["video"])
    assert list(contracts.TRACKS.read(tmp_path / "tracks.parquet", ["video", "x1"]).columns) == ["video", "x1"]
    with pytest.raises(UserError, match=r"\(missing column score\)"):
        contracts.TRACKS.read(tmp_path / "tracks.parquet", ["video", "score"])


def test_writing_puts_the_contract_columns_first_in_order_and_casts_them(tmp_path):
    frame = pd.DataFrame({"frame_b": [45], "frame_a": [5], "chunk": [0], "video": ["v"]})
    contracts.FRAME_PAIRS.write(frame, tmp_path / "p.parquet")
    table = contracts.FRAME_PAIRS.read(tmp_path / "p.parquet")
    assert table.columns.tolist() == contracts.PAIR_KEY and (table.dtypes.iloc[1:] == np.int32).all()
    with pytest.raises(ValueError, match="frame_b"):
        contracts.FRAME_PAIRS.write(frame.drop(columns=["frame_b"]), tmp_path / "q.parquet")
