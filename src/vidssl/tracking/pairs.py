"""Frame pairs (z_i, z_i+k) within each chunk, and the tracked boxes visible in both frames of a pair."""
from __future__ import annotations

import numpy as np
import pandas as pd

from vidssl.contracts import BOX, BOX_A, BOX_B, CHUNK_KEY, FRAME_PAIRS, PAIR_KEY, TRACK_KEY, TRACK_PAIRS, TRACKS
from vidssl.core.errors import UserError
from vidssl.video.chunk_store import ChunkStore

PAIR_MODES = ("strided", "all")


def frame_pairs(chunk_len: int, k: int, mode: str) -> list[tuple[int, int]]:
    """strided: (i, i + k) for i a multiple of k with i + k < chunk_len (the paper); all: every (i, j) with j - i >= k."""
    if k < 1:
        raise UserError(f"pairs.k must be at least 1, got {k}")
    if mode == "strided":
        return [(i, i + k) for i in range(0, chunk_len - k, k)]
    if mode == "all":
        return [(i, j) for i in range(chunk_len) for j in range(i + k, chunk_len)]
    raise UserError(f"pairs.mode {mode!r} is not one of {', '.join(PAIR_MODES)}")


def keyframes(chunk_len: int, every: int, k: int, mode: str) -> list[int]:
    """The frames of a chunk whose proposals the tracker matches: every frame when `every` is 1; otherwise frames 0,
    every, 2 x every, ... up to the last frame a pair uses, and every frame a pair uses (the chunk's last frame stands
    in for the pairs when the chunk has none). Frames after the last keyframe are neither searched nor tracked."""
    if every < 1:
        raise UserError(f"tracks.keyframe_every must be at least 1, got {every}")
    if every == 1:
        return list(range(chunk_len))
    used = {frame for pair in frame_pairs(chunk_len, k, mode) for frame in pair} or {chunk_len - 1}
    return sorted(used | set(range(0, max(used) + 1, every)))


def write_frame_pairs(chunks_path: str, out_path: str, *, k: int, mode: str) -> dict:
    """The `vidssl.contracts.FRAME_PAIRS` of every stored chunk of a shard; chunks too short for a pair are listed."""
    chunks = ChunkStore(chunks_path).chunks()
    parts, too_short = [], []
    for row in chunks.itertuples():
        pairs = np.array(frame_pairs(int(row.n_frames), k, mode), np.int32).reshape(-1, 2)
        if len(pairs) == 0:
            too_short.append(dict(video=row.video, chunk=int(row.chunk), reason=f"{row.n_frames} frames, no pair {k} apart"))
            continue
        parts.append(pd.DataFrame({"video": row.video, "chunk": np.int32(row.chunk),
                                   "frame_a": pairs[:, 0], "frame_b": pairs[:, 1]}))
    table = pd.concat(parts, ignore_index=True) if parts else FRAME_PAIRS.empty()
    summary = dict(chunks=len(chunks), pairs=len(table), no_pairs=too_short, params=dict(k=int(k), mode=mode))
    FRAME_PAIRS.write(table, out_path, metadata=summary)
    return summary


def write_track_pairs(frame_pairs_path: str, tracks_path: str, out_path: str) -> dict:
    """One row per frame pair and track present in both of its frames: the track's box in frame_a and in frame_b."""
    pairs = FRAME_PAIRS.read(frame_pairs_path)
    tracks = TRACKS.read(tracks_path, [*TRACK_KEY, "frame", *BOX, "score"])
    boxes = tracks[[*TRACK_KEY, "frame", *BOX]]
    side_a = boxes.rename(columns={"frame": "frame_a", **dict(zip(BOX, BOX_A))})
    side_b = boxes.rename(columns={"frame": "frame_b", **dict(zip(BOX, BOX_B))})
    scores = tracks[[*TRACK_KEY, "score"]].drop_duplicates(TRACK_KEY)
    table = (pairs[PAIR_KEY]
             .merge(side_a, on=[*CHUNK_KEY, "frame_a"])
             .merge(side_b, on=[*TRACK_KEY, "frame_b"])
             .merge(scores, on=TRACK_KEY))
    summary = dict(frame_pairs=len(pairs), track_pairs=len(table),
                   frame_pairs_with_tracks=int(table.groupby(PAIR_KEY).ngroups))
    TRACK_PAIRS.write(table, out_path, metadata=summary)
    return summary
