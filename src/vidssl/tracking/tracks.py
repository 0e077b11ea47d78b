"""Unsupervised region tracks: selective-search proposals linked through a chunk by sparse optical flow.

The supplementary's tracking text is cut short, so the tracker is ours. Per chunk:

1. Seeds. The first `max_tracks` proposals of the chunk's first frame (in selective-search order) each start a track.
   No track starts later: a frame pair (i, i + k) needs a track present in both frames, and with the paper's chunks of
   60 frames and k = 40 every pair starts at frame 0.
2. Propagation. Each live track's box is carried to the next frame with pyramidal Lucas-Kanade flow
   (cv2.calcOpticalFlowPyrLK; all tracks' points in one call per frame pair) on a g x g grid of points inside the box,
   g = round(sqrt(`points`)). A point is kept when LK finds it forwards and backwards and the forward-backward error
   (distance between the point and its flow there and back) is at most `fb_error` pixels. The box moves by the median
   displacement of the kept points and scales about its centre by the median ratio of their pairwise distances
   (next frame over this frame; 1 when fewer than two points are kept).
3. Matching, at keyframes only (every frame by default; see `vidssl.tracking.pairs.keyframes`; only they need proposals).
   Between keyframes every live box is propagated from frame to frame as above. At a keyframe the propagated boxes are
   matched one-to-one to its proposals by IoU (Hungarian assignment, scipy.optimize.linear_sum_assignment, maximising
   the total IoU). The link score of the interval since the previous keyframe is IoU(propagated box, matched proposal)
   x the geometric mean over its frames of the fraction of grid points kept (one frame's fraction when every frame is
   a keyframe). A track whose points are all lost ends at once, keyframe or not. A link scoring at least `link_floor` is
   made: the track takes the matched proposal's box when that overlaps the propagated box by at least `snap_iou`
   (IoU) once the flow has carried the box SNAP_FRAMES frames since it was last a proposal, and by more after fewer
   frames (`snap_overlap`), and keeps the propagated box otherwise. A link below the floor (or no proposal left for
   the track, or a keyframe without proposals) is missed: the track coasts on its propagated box with a link score
   of 0. A track ends when no grid point is kept, once it has coasted more than `max_missed` frames since its last
   made link (dense: `max_missed` missed links in a row; with keyframes every N > `max_missed` frames, the first missed
   keyframe), or at a frame that does not decode; it ends on its last made link (the frames after it are dropped) and
   never resumes. Tracking stops at the last keyframe.
   Why not always snap: a 10-20 px object's proposals are a few pixels off and a duplicate track may take the best
   one, so a chain of proposals each overlapping the last by >= 0.3 walks off the object while the flow stays on it;
   coasting carries a track across a frame without a good proposal. Why the snap overlap depends on the frames of
   flow: matched at every frame against `snap_iou` alone, the dense tracker took a near-miss proposal (the object and
   a rim of background) nearly every frame; each snap let the next, larger, proposal pass, and once background filled
   the box its flow points stayed behind a moving object, stretching the box further. Keyframes 10 apart snap at
   most six times a chunk and held the object. (`snap_iou` = 0 and `max_missed` = 0: every made link snaps and the first
   miss ends the track.)
4. Scoring. A track's score is the mean over its frames of the link scores up to its last made link (each link
   weighs as many frames as its interval; missed ones count 0; 0 for a single-frame track), so it means the same for
   any keyframe spacing. Tracks with score >= `score_threshold` and at least `min_length` frames are kept, one row per
   frame; `keyframe` is true where the box is a keyframe's proposal (the seed, or a snapped match) and false where it
   was carried by the flow.

Random noise gives no coherent flow (forward-backward errors are large) and a uniform frame gives LK nothing to lock
on, so both end tracks at once instead of producing spurious ones.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from vidssl.contracts import BOX, CHUNK_KEY, PROPOSALS, TRACK_KEY, TRACKS
from vidssl.core.errors import UserError
from vidssl.core.io import parquet_metadata
from vidssl.tracking.pairs import keyframes
from vidssl.video.chunk_store import ChunkStore

# Frames are stored at ~128 px, where objects move a few pixels between frames: an 8 x 8 window on two pyramid levels
# follows up to about 8 px. LK cost is per point (about 1 us each); measured here, this window costs 0.7 ms per 1250
# points against 1.1 ms for 9 x 9 (even sizes suit OpenCV's SIMD), and 5 iterations to 0.1 px suffice for a 1 px
# forward-backward test.
LK_PARAMS = dict(winSize=(8, 8), maxLevel=1, criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 5, 0.1))
# Frames of flow after which a proposal overlapping the carried box by `snap_iou` may replace it (see snap_overlap):
# measured on 10-20 px objects that halve or double in size within a chunk (docs/robustness.md), where 5 kept the dense
# tracker on the object as long as keyframes 10 apart; with keyframes N >= 5 apart the threshold is `snap_iou` itself.
SNAP_FRAMES = 5
TRACK_COLUMNS = TRACKS.names[len(CHUNK_KEY):]  # a chunk's columns


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (m x 4) with every box in `b` (n x 4), x1, y1, x2, y2: an m x n matrix."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    width = np.minimum(a[:, 2:3], b[None, :, 2]) - np.maximum(a[:, 0:1], b[None, :, 0])
    height = np.minimum(a[:, 3:4], b[None, :, 3]) - np.maximum(a[:, 1:2], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, np.finfo(np.float32).tiny)  # an empty union has an empty intersection: 0


@functools.cache
def _grid_layout(points: int) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Cell-centre fractions (x, y) of the g x g grid, g = round(sqrt(points)), and the index pairs of its points."""
    side = max(2, round(math.sqrt(points)))
    fractions = (np.arange(side, dtype=np.float32) + 0.5) / side
    fx, fy = (f.ravel() for f in np.meshgrid(fractions, fractions))
    return fx, fy, np.triu_indices(side * side, k=1)


def grid_points(boxes: np.ndarray, points: int) -> np.ndarray:
    """m x g*g x 2 points at the cell centres of a g x g grid inside each box, g = round(sqrt(points))."""
    fx, fy, _ = _grid_layout(points)
    size = boxes[:, 2:] - boxes[:, :2]
    xs = boxes[:, 0:1] + size[:, 0:1] * fx[None]
    ys = boxes[:, 1:2] + size[:, 1:2] * fy[None]
    return np.stack([xs, ys], axis=2).astype(np.float32)


def masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-row median of `values` (m x n) over the entries where `mask` is true; NaN for rows with none.

    Sort-based and vectorised: np.nanmedian loops over rows in Python, which cost more than the flow itself.
    """
    ordered = np.sort(np.where(mask, values, np.inf), axis=1)
    count = mask.sum(axis=1)
    rows = np.arange(len(values))
    low = ordered[rows, np.maximum(count - 1, 0) // 2]
    high = ordered[rows, count // 2]
    return np.where(count > 0, (low + high) / 2, np.nan)


def propagate(prev_gray: np.ndarray, next_gray: np.ndarray, boxes: np.ndarray, *, points: int,
              fb_error: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes carried from `prev_gray` to `next_gray` by LK flow, and the fraction of each box's points kept."""
    grid = grid_points(boxes, points)
    m, n = grid.shape[:2]
    start = grid.reshape(-1, 1, 2)
    forward, found_forward, _ = cv2.calcOpticalFlowPyrLK(prev_gray, next_gray, start, None, **LK_PARAMS)
    backward, found_backward, _ = cv2.calcOpticalFlowPyrLK(next_gray, prev_gray, forward, None, **LK_PARAMS)
    round_trip = np.hypot(*(backward - start).reshape(m, n, 2).transpose(2, 0, 1))
    kept = (found_forward.reshape(m, n) == 1) & (found_backward.reshape(m, n) == 1) & (round_trip <= fb_error)
    moved = forward.reshape(m, n, 2)

    shift = np.stack([masked_median(moved[..., d] - grid[..., d], kept) for d in range(2)], axis=1)
    # Scale: median over pairs of kept points of (distance after) / (distance before); needs two kept points.
    fx, fy, (first, second) = _grid_layout(points)
    pairs = kept[:, first] & kept[:, second]
    size = boxes[:, 2:] - boxes[:, :2]
    before = np.hypot((fx[first] - fx[second]) * size[:, 0:1], (fy[first] - fy[second]) * size[:, 1:2])
    after = np.hypot(*(moved[:, first] - moved[:, second]).transpose(2, 0, 1))
    pairs &= before > 0
    scale = masked_median(after / np.where(pairs, before, 1), pairs)
    scale = np.where(pairs.any(axis=1), scale, 1.0)
    shift = np.where(kept.any(axis=1)[:, None], shift, 0.0)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + shift
    half = size / 2 * scale[:, None]
    propagated = np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)
    return propagated, kept.mean(axis=1)


def snap_overlap(snap_iou: float, flow_frames: np.ndarray) -> np.ndarray:
    """The IoU a matched proposal needs with a box the flow has carried `flow_frames` frames since it was last a
    proposal before the track takes the proposal: `snap_iou` ** min(1, flow_frames / SNAP_FRAMES).

    A proposal is a few pixels off a 10-20 px object, while the flow drifts little from frame to frame: a snap may
    move the box only as far as the flow may have drifted since its last snap, so it reaches `snap_iou` after
    SNAP_FRAMES frames of flow (per frame, the overlap the flow may lose is a constant factor, as in the link score's
    geometric mean). `snap_iou` 0 snaps every made link; 1 never snaps after the seed.
    """
    return np.float32(snap_iou) ** np.minimum(1.0, np.asarray(flow_frames) / SNAP_FRAMES).astype(np.float32)


def match(propagated: np.ndarray, kept: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one Hungarian matching of propagated boxes to proposals by IoU: per box its link score (IoU x share of
    points kept, 0 when unmatched), the IoU and the matched proposal (NaN when unmatched)."""
    link, iou = np.zeros(len(propagated)), np.zeros(len(propagated), np.float32)
    matched = np.full(propagated.shape, np.nan, np.float32)
    if len(candidates) and len(propagated):
        overlap = box_iou(propagated, candidates)
        rows, cols = linear_sum_assignment(overlap, maximize=True)
        link[rows], iou[rows], matched[rows] = overlap[rows, cols] * kept[rows], overlap[rows, cols], candidates[cols]
    return link, iou, matched


@dataclass
class _Chains:
    """Every track of a chunk while it is linked: boxes per frame, which are proposals, running sums, the live set."""
    boxes: np.ndarray  # tracks x frames x 4, NaN after a track's end
    from_proposal: np.ndarray  # tracks x frames
    link_sum: np.ndarray  # sum over made links of link score x frames the link spans
    length: np.ndarray  # frames up to and including the last made link
    missed: np.ndarray  # frames coasted since the last made link
    survival: np.ndarray  # product of the shares of points kept since the last keyframe
    flow_frames: np.ndarray  # frames the box has been carried by the flow since it was last a proposal
    live: np.ndarray

    @classmethod
    def seeded(cls, seeds: np.ndarray, n_frames: int) -> "_Chains":
        n_tracks = len(seeds)
        boxes = np.full((n_tracks, n_frames, 4), np.nan, np.float32)
        boxes[:, 0] = seeds
        from_proposal = np.zeros((n_tracks, n_frames), bool)
        from_proposal[:, 0] = True
        return cls(boxes, from_proposal, np.zeros(n_tracks), np.ones(n_tracks, int), np.zeros(n_tracks, int),
                   np.ones(n_tracks), np.zeros(n_tracks, int), np.arange(n_tracks))

    def link(self, frame: int, interval: int, candidates: np.ndarray, *, link_floor: float, snap_iou: float,
             max_missed: int) -> None:
        """Match the live tracks' carried boxes at keyframe `frame`, `interval` frames after the previous one."""
        live, carried = self.live, self.boxes[self.live, frame]
        # The per-frame survival rate (geometric mean): on a dense link's scale, so floor and threshold keep their
        # meaning over any interval, and one frame that loses most points pulls it down as it broke the chain.
        rate = self.survival[live] ** (1.0 / interval)
        link, iou, matched = match(carried, rate, candidates)
        linked = (link >= link_floor) & (rate > 0)
        flow_frames = self.flow_frames[live] + interval
        snapped = linked & (iou >= snap_overlap(snap_iou, flow_frames))
        self.flow_frames[live] = np.where(snapped, 0, flow_frames)
        self.boxes[live, frame] = np.where(snapped[:, None], matched, carried)
        self.from_proposal[live, frame] = snapped
        self.link_sum[live[linked]] += link[linked] * interval
        self.length[live[linked]] = frame + 1
        self.missed[live] = np.where(linked, 0, self.missed[live] + interval)
        self.survival[live] = 1.0
        self.live = live[(rate > 0) & (self.missed[live] <= max_missed)]


def link_settings(tracks: dict) -> dict:
    """link_chunk's and track_shard's keywords from a config's `tracks` section."""
    keys = ("score_threshold", "min_length", "link_floor", "snap_iou", "max_missed", "points", "fb_error")
    return {key: tracks[key] for key in keys} | {"max_tracks": tracks["max_tracks_per_chunk"]}


def link_chunk(frames: list[np.ndarray], proposals: list[np.ndarray], *, keyframes=None, score_threshold: float,
               min_length: int, link_floor: float, snap_iou: float, max_missed: int, points: int, fb_error: float,
               max_tracks: int) -> pd.DataFrame:
    """Tracks through one chunk (see the module docstring): columns track, frame, x1, y1, x2, y2, score, keyframe.

    `keyframes` (default: every frame) are the frames whose proposals are matched; frame 0 must be one. Tracking stops
    at the last keyframe before len(frames); the proposals of other frames are not read.
    """
    if len(frames) != len(proposals):
        raise ValueError(f"{len(frames)} frames but {len(proposals)} proposal arrays")
    if not frames:
        return TRACKS.empty()[TRACK_COLUMNS]
    is_key = np.zeros(len(frames), bool)
    is_key[[k for k in (range(len(frames)) if keyframes is None else keyframes) if 0 <= k < len(frames)]] = True
    if not is_key[0]:
        raise ValueError("keyframes must include frame 0")
    horizon = int(np.nonzero(is_key)[0][-1])
    seeds = np.asarray(proposals[0], np.float32).reshape(-1, 4)[:max_tracks]
    chains = _Chains.seeded(seeds, horizon + 1)
    grays = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if f.ndim == 3 else f for f in frames[:horizon + 1]]
    previous_key = 0
    for t in range(horizon):
        if len(chains.live) == 0:
            break
        live = chains.live
        carried, kept = propagate(grays[t], grays[t + 1], chains.boxes[live, t], points=points, fb_error=fb_error)
        chains.boxes[live, t + 1] = carried
        chains.survival[live] *= kept
        if not is_key[t + 1]:
            chains.live = live[kept > 0]  # no point left to follow: the track ends on its last made link
            continue
        candidates = np.asarray(proposals[t + 1], np.float32).reshape(-1, 4)
        chains.link(t + 1, t + 1 - previous_key, candidates, link_floor=link_floor, snap_iou=snap_iou,
                    max_missed=max_missed)
        previous_key = t + 1
    return _kept_tracks(chains, score_threshold=score_threshold, min_length=min_length)


def _kept_tracks(chains: _Chains, *, score_threshold: float, min_length: int) -> pd.DataFrame:
    """One row per frame of each track with score >= `score_threshold` and at least `min_length` frames."""
    length = chains.length
    score = np.where(length > 1, chains.link_sum / np.maximum(length - 1, 1), 0.0)
    keep = np.nonzero((score >= score_threshold) & (length >= min_length))[0]
    track_ids = np.repeat(np.arange(len(keep), dtype=np.int32), length[keep])
    frame_ids = np.concatenate([np.arange(length[i], dtype=np.int32) for i in keep]) if len(keep) else np.zeros(0, np.int32)
    result = pd.DataFrame({"track": track_ids, "frame": frame_ids})
    result[BOX] = chains.boxes[keep[track_ids], frame_ids] if len(keep) else np.zeros((0, 4), np.float32)
    result["score"] = score[keep][track_ids].astype(np.float32)
    result["keyframe"] = chains.from_proposal[keep[track_ids], frame_ids] if len(keep) else np.zeros(0, bool)
    return result


def _proposal_groups(proposals_path: str) -> tuple[pq.ParquetFile, dict[tuple[str, int], int]]:
    """The proposals file and the row group of each (video, chunk), from the row-group statistics (no data read)."""
    handle = PROPOSALS.open(proposals_path)
    names = handle.schema_arrow.names
    video_col, chunk_col = (names.index(name) for name in CHUNK_KEY)
    groups = {}
    for i in range(handle.num_row_groups):
        meta = handle.metadata.row_group(i)
        if meta.num_rows == 0:
            continue
        video, chunk = meta.column(video_col).statistics, meta.column(chunk_col).statistics
        if video is None or chunk is None or video.min != video.max or chunk.min != chunk.max:
            raise UserError(f"{proposals_path}: row group {i} does not hold exactly one chunk; rerun the proposals rule")
        groups[(video.min, int(chunk.min))] = i
    return handle, groups


def _chunk_proposals(handle: pq.ParquetFile, groups: dict, video: str, chunk: int, n_frames: int) -> list[np.ndarray]:
    """Each frame's proposals in rank order (empty for a frame without any, such as a frame that is no keyframe)."""
    proposals = [np.zeros((0, 4), np.float32)] * n_frames
    if (video, chunk) in groups:
        table = handle.read_row_group(groups[(video, chunk)], columns=["frame", "rank", *BOX])
        table = table.to_pandas().sort_values(["frame", "rank"], kind="stable")
        for frame, group in table.groupby("frame", sort=True):
            if 0 <= frame < n_frames:
                proposals[frame] = group[BOX].to_numpy(np.float32)
    return proposals


def track_shard(chunks_path: str, proposals_path: str, out_path: str, *, score_threshold: float, min_length: int,
                link_floor: float, snap_iou: float, max_missed: int, points: int, fb_error: float, max_tracks: int,
                log=None) -> dict:
    """Tracks for every chunk of a shard: video, chunk, track, frame, x1, y1, x2, y2, score, keyframe, one row group per
    chunk, on the keyframes the proposals were searched on (recorded in their metadata).

    Chunks that yield no track are listed, with the reason, in the metadata's "no_tracks"; chunks cut short by a frame
    that does not decode (tracks stop before it) in "truncated".
    """
    store = ChunkStore(chunks_path)
    handle, groups = _proposal_groups(proposals_path)
    searched = parquet_metadata(proposals_path).get("params", {})
    every, pairs = int(searched.get("keyframe_every", 1)), searched.get("pairs", {})
    params = dict(score_threshold=score_threshold, min_length=int(min_length), link_floor=link_floor,
                  snap_iou=snap_iou, max_missed=int(max_missed), points=int(points), fb_error=fb_error,
                  max_tracks=int(max_tracks))
    parts, no_tracks, truncated = [], [], []
    chunks = store.chunks()
    for row in tqdm(list(chunks.itertuples()), desc=f"tracks {chunks_path}", unit="chunk"):
        where = dict(video=row.video, chunk=int(row.chunk))
        keys = keyframes(int(row.n_frames), every, **pairs)
        proposals = _chunk_proposals(handle, groups, row.video, int(row.chunk), int(row.n_frames))
        empty = sum(len(proposals[k]) == 0 for k in keys)
        searched_frames = "frames" if every == 1 else "keyframes"  # dense runs keep the dense tracker's wording
        if len(proposals[0]) == 0:
            no_tracks.append({**where, "reason": f"first frame has no proposals ({empty} of {len(keys)} {searched_frames} have none)"})
            continue
        frames = store.read_rows(store.chunk_rows(row.video, row.chunk)[:keys[-1] + 1])  # none after the last keyframe
        unreadable = next((i for i, frame in enumerate(frames) if frame is None), None)
        if unreadable is not None:
            truncated.append({**where, "frame": unreadable, "reason": "stored JPEG does not decode; tracks stop before it"})
            frames = frames[:unreadable]
        tracks = link_chunk(frames, proposals[:len(frames)], keyframes=keys, **params)
        if tracks.empty:
            no_tracks.append({**where, "reason": f"no track reached {min_length} frames with score >= {score_threshold}"
                                                 f" ({empty} of {len(keys)} {searched_frames} have no proposals)"})
            continue
        tracks.insert(0, "video", row.video)
        tracks.insert(1, "chunk", np.int32(row.chunk))
        parts.append(tracks)
    result = pd.concat(parts, ignore_index=True) if parts else TRACKS.empty()
    n_tracks = int(result.groupby(TRACK_KEY).ngroups)
    summary = dict(chunks=len(chunks), chunks_with_tracks=len(parts), tracks=n_tracks, no_tracks=no_tracks,
                   truncated=truncated, params={**params, "keyframe_every": every, "pairs": pairs})
    for item in no_tracks + truncated:
        if log:
            log.info("tracks: %s", item)
    TRACKS.write(result, out_path, metadata=summary)
    if log:
        log.info("tracks: %d tracks in %d of %d chunks", n_tracks, len(parts), len(chunks))
    return summary
