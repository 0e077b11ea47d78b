"""Frame pairs (z_i, z_i+k) within each chunk, and the tracked boxes visible in both frames of a pair."""
from __future__ import annotations

import numpy as np
import pandas as pd

from vidssl.core.errors import UserError
from vidssl.core.io import empty_frame, read_parquet, write_parquet
from vidssl.video.chunk_store import ChunkStore

PAIR_MODES = ("strided", "all")
PAIR_KEY = ["video", "chunk", "frame_a", "frame_b"]


def frame_pairs(chunk_len: int, k: int = 40, mode: str = "strided") -> list[tuple[int, int]]:
    """strided: (i, i + k) for i a multiple of k with i + k < chunk_len (the paper); all: every (i, j) with j - i >= k."""
    if k < 1:
        raise UserError(f"pairs.k must be at least 1, got {k}")
    if mode == "strided":
        return [(i, i + k) for i in range(0, chunk_len - k, k)]
    if mode == "all":
        return [(i, j) for i in range(chunk_len) for j in range(i + k, chunk_len)]
    raise UserError(f"pairs.mode {mode!r} is not one of {', '.join(PAIR_MODES)}")


def keyframes(chunk_len: int, every: int = 1, k: int = 40, mode: str = "strided") -> list[int]:
    """The frames of a chunk whose proposals the tracker matches: every frame when `every` is 1; otherwise frames 0,
    every, 2 x every, ... up to the last frame a pair uses, and every frame a pair uses (the chunk's last frame stands
    in for the pairs when the chunk has none). Frames after the last keyframe are neither searched nor tracked."""
    if every < 1:
        raise UserError(f"tracks.keyframe_every must be at least 1, got {every}")
    if every == 1:
        return list(range(chunk_len))
    used = {frame for pair in frame_pairs(chunk_len, k, mode) for frame in pair} or {chunk_len - 1}
    return sorted(used | set(range(0, max(used) + 1, every)))


def write_frame_pairs(chunks_path: str, out_path: str, *, k: int = 40, mode: str = "strided") -> dict:
    """video, chunk, frame_a, frame_b (int32) for every stored chunk of a shard; chunks too short for a pair are listed."""
    chunks = ChunkStore(chunks_path).chunks()
    parts, too_short = [], []
    for row in chunks.itertuples():
        pairs = np.array(frame_pairs(int(row.n_frames), k, mode), np.int32).reshape(-1, 2)
        if len(pairs) == 0:
            too_short.append(dict(video=row.video, chunk=int(row.chunk), reason=f"{row.n_frames} frames, no pair {k} apart"))
            continue
        parts.append(pd.DataFrame({"video": row.video, "chunk": np.int32(row.chunk),
                                   "frame_a": pairs[:, 0], "frame_b": pairs[:, 1]}))
    table = pd.concat(parts, ignore_index=True) if parts else empty_frame(
        {"video": object, **dict.fromkeys(PAIR_KEY[1:], np.int32)})
    summary = dict(chunks=len(chunks), pairs=len(table), no_pairs=too_short, params=dict(k=int(k), mode=mode))
    write_parquet(table, out_path, sort_by=PAIR_KEY, group_by=["video", "chunk"], metadata=summary)
    return summary


def write_track_pairs(frame_pairs_path: str, tracks_path: str, out_path: str) -> dict:
    """One row per frame pair and track present in both of its frames: the track's box in frame_a and in frame_b."""
    pairs = read_parquet(frame_pairs_path)
    tracks = read_parquet(tracks_path)
    for path, table, needed in ((frame_pairs_path, pairs, PAIR_KEY),
                                (tracks_path, tracks, ["video", "chunk", "track", "frame", "x1", "y1", "x2", "y2", "score"])):
        missing = [c for c in needed if c not in table.columns]
        if missing:
            raise UserError(f"{path}: missing columns {', '.join(missing)}")
    boxes = tracks[["video", "chunk", "track", "frame", "x1", "y1", "x2", "y2"]]
    side_a = boxes.rename(columns={"frame": "frame_a", "x1": "ax1", "y1": "ay1", "x2": "ax2", "y2": "ay2"})
    side_b = boxes.rename(columns={"frame": "frame_b", "x1": "bx1", "y1": "by1", "x2": "bx2", "y2": "by2"})
    scores = tracks[["video", "chunk", "track", "score"]].drop_duplicates(["video", "chunk", "track"])
    table = (pairs[PAIR_KEY]
             .merge(side_a, on=["video", "chunk", "frame_a"])
             .merge(side_b, on=["video", "chunk", "track", "frame_b"])
             .merge(scores, on=["video", "chunk", "track"]))
    columns = [*PAIR_KEY, "track", "ax1", "ay1", "ax2", "ay2", "bx1", "by1", "bx2", "by2", "score"]
    summary = dict(frame_pairs=len(pairs), track_pairs=len(table),
                   frame_pairs_with_tracks=int(table.groupby(PAIR_KEY).ngroups))
    write_parquet(table[columns], out_path, sort_by=[*PAIR_KEY, "track"], group_by=["video", "chunk"], metadata=summary)
    return summary
