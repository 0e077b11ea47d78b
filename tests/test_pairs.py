"""Frame pairs k apart and the tracked boxes seen in both frames of a pair, against hand-built tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_tracks import make_container

from vidssl.core.io import UserError, parquet_metadata, read_parquet, write_parquet
from vidssl.tracking.pairs import frame_pairs, write_frame_pairs, write_track_pairs


@pytest.mark.parametrize("chunk_len, expected", [
    (60, [(0, 40)]), (81, [(0, 40), (40, 80)]), (80, [(0, 40)]), (40, []), (41, [(0, 40)]), (0, []),
])
def test_strided_pairs(chunk_len, expected):
    assert frame_pairs(chunk_len, 40, "strided") == expected


def test_all_pairs():
    assert frame_pairs(5, 3, "all") == [(0, 3), (0, 4), (1, 4)]
    pairs = frame_pairs(60, 40, "all")
    assert len(pairs) == sum(60 - 40 - i for i in range(20)) and all(b - a >= 40 for a, b in pairs)
    assert frame_pairs(3, 3, "all") == []


def test_bad_pair_settings():
    with pytest.raises(UserError):
        frame_pairs(60, 40, "random")
    with pytest.raises(UserError):
        frame_pairs(60, 0, "strided")


def test_write_frame_pairs(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(9)]
    chunks = make_container(tmp_path, {"b": frames, "a": frames}, length=9)
    out = tmp_path / "pairs.parquet"
    write_frame_pairs(chunks, out, k=4, mode="strided")
    table = read_parquet(out)
    expected = pd.DataFrame({"video": ["a", "a", "b", "b"], "chunk": np.int32(0),
                             "frame_a": np.int32([0, 4, 0, 4]), "frame_b": np.int32([4, 8, 4, 8])})
    pd.testing.assert_frame_equal(table, expected)

    summary = write_frame_pairs(chunks, out, k=9, mode="strided")
    assert len(read_parquet(out)) == 0 and summary["pairs"] == 0
    assert [item["video"] for item in parquet_metadata(out)["no_pairs"]] == ["a", "b"]


def test_write_track_pairs(tmp_path):
    pairs = pd.DataFrame({"video": ["a", "a", "b"], "chunk": np.int32([0, 0, 1]),
                          "frame_a": np.int32([0, 4, 0]), "frame_b": np.int32([4, 8, 4])})
    write_parquet(pairs, tmp_path / "pairs.parquet", sort_by=["video", "chunk", "frame_a", "frame_b"])
    # Track 0 of a/0 spans frames 0..8; track 1 only 0..5 (not in frame 8); b/1 track 0 spans 0..4.
    rows = [("a", 0, 0, f, 0.9) for f in range(9)] + [("a", 0, 1, f, 0.6) for f in range(6)] + \
           [("b", 1, 0, f, 0.7) for f in range(5)]
    tracks = pd.DataFrame(rows, columns=["video", "chunk", "track", "frame", "score"])
    tracks["chunk"] = tracks.chunk.astype(np.int32)
    tracks["track"] = tracks.track.astype(np.int32)
    tracks["frame"] = tracks.frame.astype(np.int32)
    tracks["score"] = tracks.score.astype(np.float32)
    tracks["x1"] = (tracks.frame * 10 + tracks.track).astype(np.float32)  # encodes frame and track, to check the join
    tracks["y1"] = np.float32(1)
    tracks["x2"] = tracks.x1 + 5
    tracks["y2"] = np.float32(9)
    write_parquet(tracks, tmp_path / "tracks.parquet", sort_by=["video", "chunk", "track", "frame"])

    out = tmp_path / "track_pairs.parquet"
    summary = write_track_pairs(tmp_path / "pairs.parquet", tmp_path / "tracks.parquet", out)
    table = read_parquet(out)
    assert list(table.columns) == ["video", "chunk", "frame_a", "frame_b", "track",
                                   "ax1", "ay1", "ax2", "ay2", "bx1", "by1", "bx2", "by2", "score"]
    got = list(table[["video", "frame_a", "frame_b", "track", "ax1", "bx1", "score"]].itertuples(index=False, name=None))
    expected = [("a", 0, 4, 0, 0.0, 40.0, 0.9), ("a", 0, 4, 1, 1.0, 41.0, 0.6), ("a", 4, 8, 0, 40.0, 80.0, 0.9),
                ("b", 0, 4, 0, 0.0, 40.0, 0.7)]
    assert [(v, a, b, t, x, y, round(float(s), 4)) for v, a, b, t, x, y, s in got] == expected
    assert (table.bx2 - table.bx1 == 5).all() and (table.ay2 == 9).all()
    assert summary == dict(frame_pairs=3, track_pairs=4, frame_pairs_with_tracks=3)
