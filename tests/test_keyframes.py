"""Keyframes: selective search only on chunk frames 0, N, 2N, ... and the frames pairs use; flow carries the boxes in
between. N = 1 is the dense tracker; with N > 1 tracks still follow small objects, the proposals stage
searches only the keyframes, and no frame after the last pair frame is searched or tracked."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import search_params, search_settings, track_params
from test_tracks import BOXES, chunk_coverage, moving_object_frames, small_object_container

from vidssl.core.errors import UserError
from vidssl.core.io import parquet_metadata, read_parquet
from vidssl.tracking.pairs import keyframes
from vidssl.tracking.proposals import propose_shard
from vidssl.tracking.selective_search import selective_search
from vidssl.tracking.tracks import link_chunk, track_shard


@pytest.fixture(scope="module")
def scene():
    frames, truth = moving_object_frames()
    return frames, truth, [selective_search(f, **search_settings()) for f in frames]


def test_keyframes_of_a_chunk():
    assert keyframes(60, 1, 40, "strided") == list(range(60))
    assert keyframes(60, 10, 40, "strided") == [0, 10, 20, 30, 40]
    assert keyframes(60, 40, 40, "strided") == [0, 40]
    assert keyframes(60, 15, 40, "strided") == [0, 15, 30, 40], "pair frames join the multiples of N"
    assert len(keyframes(60, 10, 40, "all")) == 42, "all pairs use frames 0-19 and 40-59"
    assert keyframes(30, 10, 40, "strided") == [0, 10, 20, 29], "no pair fits: the last frame ends the chunk"
    with pytest.raises(UserError):
        keyframes(60, 0, 40, "strided")


def test_every_frame_a_keyframe_is_the_dense_tracker(scene):
    """Every frame a keyframe, given or by default, is one tracker; its best-scoring track follows the object's known
    motion: its centre stays within 3 px of the true centre in every frame (the object moves 45 px and grows 40%)."""
    frames, truth, proposals = scene
    dense = link_chunk(frames, proposals, **track_params())
    assert dense.equals(link_chunk(frames, proposals, keyframes=range(60), **track_params()))
    assert dense.equals(link_chunk(frames, proposals, keyframes=keyframes(60, 1, 40, "strided"), **track_params()))
    best = dense[dense.track == dense.sort_values("score", ascending=False, kind="stable").track.iat[0]]
    boxes, true = best[BOXES].to_numpy(), truth[best.frame.to_numpy()]
    assert best.frame.tolist() == list(range(60))
    centre_error = np.hypot(*((boxes[:, :2] + boxes[:, 2:] - true[:, :2] - true[:, 2:]) / 2).T)
    assert centre_error.max() <= 3, centre_error.max()


def test_keyframe_tracks_read_only_keyframe_proposals(scene):
    frames, truth, proposals = scene
    keys = list(range(0, 60, 10)) + [59]
    only_keys = [p if i in keys else np.zeros((0, 4), np.float32) for i, p in enumerate(proposals)]
    tracks = link_chunk(frames, proposals, keyframes=keys, **track_params())
    assert tracks.equals(link_chunk(frames, only_keys, keyframes=keys, **track_params()))
    for _, track in tracks.groupby("track"):  # one row per frame from frame 0, ending on a keyframe
        assert track.frame.tolist() == list(range(len(track))) and track.frame.iat[-1] in keys
    assert set(tracks.frame[tracks.keyframe]) <= set(keys)
    for row in tracks[tracks.keyframe].itertuples():
        assert (proposals[row.frame] == [row.x1, row.y1, row.x2, row.y2]).all(axis=1).any()
    dense = link_chunk(frames, proposals, **track_params())
    for result in (dense, tracks):
        assert chunk_coverage(result, truth, 0) >= 0.9
    with pytest.raises(ValueError):
        link_chunk(frames, proposals, keyframes=[10, 20], **track_params())


def test_coasting_is_counted_in_frames_at_any_keyframe_spacing(scene):
    """max_missed is frames coasted since the last made link: with keyframes 10 apart a missed keyframe is 10 frames,
    so with max_missed 3 the track ends on the keyframe before it; with max_missed 10 it coasts over that keyframe."""
    frames, _, proposals = scene
    keys = list(range(0, 60, 10))
    missing_20 = [np.zeros((0, 4), np.float32) if i == 20 else p for i, p in enumerate(proposals)]
    ended = link_chunk(frames, missing_20, keyframes=keys, **track_params(score_threshold=0.0, min_length=2, max_missed=3))
    assert not ended.empty and ended.frame.max() == 10
    bridged = link_chunk(frames, missing_20, keyframes=keys, **track_params(score_threshold=0.0, min_length=2, max_missed=10))
    assert bridged.frame.max() == 50 and not bridged[bridged.frame == 20].keyframe.any()


@pytest.fixture(scope="module")
def small_object(tmp_path_factory):
    return small_object_container(tmp_path_factory.mktemp("small"))


@pytest.mark.parametrize("k, tracked", [(40, 41), (59, 60)])
def test_small_object_followed_with_keyframes(small_object, tmp_path, k, tracked):
    """N = 10: the best track covers >= 80% of every chunk's frames a pair can use (0-40 for k = 40, all for k = 59)."""
    chunks, truth, starts = small_object
    propose_shard(chunks, tmp_path / "proposals.parquet", **search_params(keyframe_every=10, pairs=dict(k=k, mode="strided")))
    track_shard(chunks, tmp_path / "proposals.parquet", tmp_path / "tracks.parquet", **track_params())
    tracks = read_parquet(tmp_path / "tracks.parquet")
    assert tracks.frame.max() == tracked - 1
    coverage = [chunk_coverage(tracks[tracks.chunk == chunk], truth, start, tracked) for chunk, start in enumerate(starts)]
    assert min(coverage) >= 0.8, coverage


def test_strided_pairs_search_and_track_only_up_to_the_last_pair_frame(small_object, tmp_path):
    """60-frame chunks, k = 40, N = 40: frames 0 and 40 are searched; frames 41-59 get neither search nor flow."""
    chunks, _, _ = small_object
    proposals, out = tmp_path / "proposals.parquet", tmp_path / "tracks.parquet"
    summary = propose_shard(chunks, proposals, **search_params(keyframe_every=40, pairs=dict(k=40, mode="strided")))
    table = read_parquet(proposals)
    assert set(table.frame) == {0, 40} and summary["frames_searched"] == 8 and summary["frames"] == 240
    params = parquet_metadata(proposals)["params"]
    assert params["keyframe_every"] == 40 and params["pairs"] == {"k": 40, "mode": "strided"}
    track_shard(chunks, proposals, out, **track_params(min_length=10))
    tracks = read_parquet(out)
    assert not tracks.empty and tracks.frame.max() == 40
    assert set(tracks.frame[tracks.keyframe]) <= {0, 40}
    assert parquet_metadata(out)["params"]["keyframe_every"] == 40

