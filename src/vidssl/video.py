"""Video sources, the manifest, and chunk extraction into one JPEG container per shard.

A shard's container is an HDF5 file with one row per stored frame: `video`, `chunk`, `frame` (index within the chunk),
`source_frame` (index in the video) and `jpeg` (the encoded bytes), sorted by (video, chunk, frame). Nothing is written
as a file per frame: TrackingNet would need 7.2M of them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from vidssl.errors import UserError
from vidssl.images import IMAGE_SUFFIXES, read_image
from vidssl.io import atomic_path, write_parquet
from vidssl.names import frame_number, not_utf8, shown

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv"}
ASPECT_TOLERANCE = 0.02  # a frame this close to the video's shape (e.g. 1920x1088 in a 1920x1080 video) is rescaled


def chunk_starts(n_frames: int, n_chunks: int = 4, chunk_len: int = 60) -> list[int]:
    """Starts of `min(n_chunks, n_frames // chunk_len)` non-overlapping chunks, maximally spaced in time."""
    m = min(n_chunks, n_frames // chunk_len)
    if m <= 0:
        return []
    if m == 1:
        return [0]
    return [math.floor(j * (n_frames - chunk_len) / (m - 1)) for j in range(m)]


def shard_of(video: str, shards: int) -> int:
    """Stable shard of a video id: the same on every machine and Python run (unlike hash())."""
    return int.from_bytes(hashlib.sha1(video.encode()).digest()[:8], "big") % shards


def _numbered_frames(folder: Path) -> list[tuple[int, Path]]:
    """(number, path) of the image files named by a frame number, by number, then name."""
    numbered = ((frame_number(p), p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted((number, p) for number, p in numbered if number is not None)


@dataclass
class VideoEntry:
    video: str
    path: str
    kind: str  # "file" or "frames"
    frames: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    skip_reason: str = ""
    note: str = ""


def _probe_file(entry: VideoEntry) -> VideoEntry:
    """The container's frame count (0 when it reports none), fps, and the size of the first frame as decoded."""
    capture = cv2.VideoCapture(entry.path)
    if not capture.isOpened():
        entry.skip_reason = "cannot be opened as a video"
        return entry
    reported = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    entry.frames = int(reported) if math.isfinite(reported) and reported > 0 else 0
    entry.fps = float(capture.get(cv2.CAP_PROP_FPS))
    ok, first = capture.read()
    capture.release()
    if not ok:
        entry.skip_reason = "no decodable frames"
        return entry
    entry.height, entry.width = first.shape[:2]
    return entry


def _frames_left(capture: cv2.VideoCapture) -> int:
    """How many more frames `capture` decodes, read to the real end (a container's count may be wrong or missing)."""
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


def decoded_count(path: str) -> int:
    """The number of frames of a video file that decode."""
    return _frames_left(cv2.VideoCapture(path))


def _probe_frames(entry: VideoEntry, fps: float = 30.0) -> VideoEntry:
    frames = _numbered_frames(Path(entry.path))
    entry.fps = fps
    if not frames:
        entry.skip_reason = "no numbered JPEG frames"
        return entry
    numbers = [number for number, _ in frames]
    # A gap would make "consecutive" frames jump in time, and of two frames with one number neither is surely next:
    # keep the run before either.
    end = next((i + 1 for i, (a, b) in enumerate(zip(numbers, numbers[1:])) if b != a + 1), len(frames))
    image = read_image(frames[0][1])
    if image is None:
        entry.skip_reason = f"first frame {frames[0][1].name} is unreadable"
        return entry
    entry.height, entry.width = image.shape[:2]
    entry.frames = end
    if end < len(frames) and numbers[end] == numbers[end - 1]:
        entry.frames = end - 1
        entry.note = (f"two frames numbered {numbers[end]} ({frames[end - 1][1].name}, {frames[end][1].name}): only the "
                      "frames before them are used")
    elif end < len(frames):
        entry.note = f"numbering gap after frame {numbers[end - 1]}: only the frames before it are used"
    return entry


def _folder_entries(root: Path) -> list[VideoEntry]:
    """Video files and frame folders directly in `root`, each id its stem (a folder: its name); inputs that would
    share an id (`clip.mp4`, `clip.avi`, a folder `clip/`) are each named by their whole name instead."""
    inputs = [p for p in sorted(root.iterdir())
              if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or (p.is_dir() and not p.name.startswith("."))]
    ids = {p: p.stem if p.is_file() else p.name for p in inputs}
    while True:  # a whole name may be another input's stem (clip.avi.mkv): repeat until no id is shared
        counts = Counter(ids.values())
        shared = [p for p in inputs if counts[ids[p]] > 1 and ids[p] != p.name]
        if not shared:
            break
        ids.update((p, p.name) for p in shared)
    return [VideoEntry(ids[p], str(p.resolve()), "file" if p.is_file() else "frames") for p in inputs]


def _unstorable_recorded(entry: VideoEntry) -> VideoEntry:
    """An entry whose path is not valid UTF-8 is skipped under its shown name; every other entry as it is."""
    reason = not_utf8(entry.path)
    if reason:
        entry.video, entry.path, entry.skip_reason = shown(entry.video), shown(entry.path), reason
    return entry


def list_videos(source: str, path: str | None, *, splits: list[str] | None = None, fast: bool = False) -> list[VideoEntry]:
    """Every input video of a source. `fast` lists names only (no decoding), as TrackingNet-scale DAG checks need."""
    if source == "synthetic" or source == "folder":
        root = Path(path)
        if not root.is_dir():
            raise UserError(f"videos.path {root} is not a folder")
        entries = _folder_entries(root)
    elif source == "trackingnet":
        root = Path(path)
        if not root.is_dir():
            raise UserError(f"videos.path {root} is not a folder (expected the TrackingNet root with TRAIN_0 ... TRAIN_11)")
        entries = []
        for split in splits or []:
            frames_root = root / split / "frames"
            if not frames_root.is_dir():
                raise UserError(f"TrackingNet split {split}: {frames_root} does not exist")
            entries += [
                VideoEntry(f"{split}/{d.name}", str(d.resolve()), "frames")
                for d in sorted(frames_root.iterdir()) if d.is_dir()
            ]
    else:
        raise UserError(f"videos.source {source!r} is not one of synthetic, folder, trackingnet")
    if not entries:
        raise UserError(f"videos.path {path} holds no videos (*.mp4|*.avi|*.mov|*.mkv or folders of numbered frames)")
    entries = [_unstorable_recorded(e) for e in entries]
    if fast:
        return entries
    return [e if e.skip_reason else _probe_file(e) if e.kind == "file" else _probe_frames(e)
            for e in tqdm(entries, desc="probe videos")]


def build_manifest(entries: list[VideoEntry], *, shards: int, chunk_len: int) -> pd.DataFrame:
    """One row per video with its shard; too-short and unreadable videos keep a row with `skip_reason` set.

    A video file whose container reports fewer frames than one chunk (0 when it reports none) is counted by decoding.
    """
    rows = []
    for e in entries:
        frames = decoded_count(e.path) if e.kind == "file" and not e.skip_reason and e.frames < chunk_len else e.frames
        reason = e.skip_reason or (f"{frames} frames, fewer than one chunk of {chunk_len}" if frames < chunk_len else "")
        rows.append(dict(video=e.video, path=e.path, kind=e.kind, frames=frames, fps=e.fps, width=e.width,
                         height=e.height, shard=shard_of(e.video, shards), skip_reason=reason, note=e.note))
    return pd.DataFrame(rows)


def write_manifest(manifest: pd.DataFrame, path: str) -> None:
    skipped = manifest.loc[manifest.skip_reason != "", ["video", "skip_reason"]]
    write_parquet(manifest, path, sort_by=["shard", "video"],
                  metadata={"skipped": skipped.rename(columns={"skip_reason": "reason"}).to_dict("records")})


def stored_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) of a frame stored with its longer side at most `max_side` (never upscaled)."""
    scale = max_side / max(height, width)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    size = stored_size(width, height, max_side)
    return image if size == (width, height) else cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class _Storer:
    """Brings each decoded frame of one video to the video's stored size as soon as it is decoded, so that no more
    than one frame at source size is ever held. A frame of another shape than the video's first (rotated, cropped)
    cannot join its neighbours and is kept as the reason its chunk is skipped."""

    def __init__(self, row, max_side: int):
        self.video_size = (int(row.width), int(row.height))
        self.size = stored_size(*self.video_size, max_side)

    def __call__(self, index: int, image: np.ndarray | None) -> np.ndarray | str | None:
        if image is None:
            return None
        height, width = image.shape[:2]
        if (width, height) != self.video_size:
            video_width, video_height = self.video_size
            if abs(width * video_height / (height * video_width) - 1) > ASPECT_TOLERANCE:
                return f"frame {index} is {width}x{height}, a shape other than the video's {video_width}x{video_height}"
        if (width, height) == self.size:
            return image
        return cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)


def _decode_file(path: str, wanted: set[int], store: _Storer) -> tuple[dict, int]:
    """The wanted frames of a video file, stored as they decode; and the number of frames that really decode, which
    the container's count may miss both ways: the read goes on past the last wanted frame to the real end."""
    capture = cv2.VideoCapture(path)
    stored, last_decoded = {}, -1
    # Sequential decoding: seeking in mp4 is keyframe-approximate, so frame indices would drift.
    for index in range(max(wanted) + 1):
        ok, image = capture.read()
        last_decoded = index if ok else last_decoded
        if index in wanted:
            stored[index] = store(index, image if ok else None)
    beyond = _frames_left(capture)
    # Frames after the last wanted one: every index up to it exists, decoded or not. None: the stream ended there.
    return stored, max(wanted) + 1 + beyond if beyond else last_decoded + 1


def _stored_frames(row, per_video: int, length: int, max_side: int) -> tuple[list[int], dict, str]:
    """Chunk starts of one video, its wanted frames at stored size (None: unreadable, str: why it cannot be stored),
    and a note when the container's frame count was wrong (the chunks are then placed within the frames that decode)."""
    store = _Storer(row, max_side)
    starts = chunk_starts(row.frames, per_video, length)
    if row.kind == "frames":
        frames = _numbered_frames(Path(row.path))
        wanted = sorted({s + i for s in starts for i in range(length)})
        return starts, {i: store(i, read_image(frames[i][1]) if i < len(frames) else None) for i in wanted}, ""
    stored, decodable = _decode_file(row.path, {s + i for s in starts for i in range(length)}, store)
    if decodable == row.frames or chunk_starts(decodable, per_video, length) == starts:
        return starts, stored, ""
    starts = chunk_starts(decodable, per_video, length)
    if starts:
        stored, _ = _decode_file(row.path, {s + i for s in starts for i in range(length)}, store)
    return starts, stored, f"the container reports {row.frames} frames, {decodable} decode"


def _chunk_problem(stored: dict, start: int, length: int) -> str:
    """Why the chunk at `start` cannot be kept ("" when it can)."""
    unreadable = [start + i for i in range(length) if stored.get(start + i) is None]
    if unreadable:
        return f"unreadable frame {unreadable[0]} (of {len(unreadable)})"
    return next((stored[start + i] for i in range(length) if isinstance(stored[start + i], str)), "")


def extract_chunks(manifest: pd.DataFrame, out_path: str, *, shard: int, per_video: int, length: int,
                   max_side: int, jpeg_quality: int, log: logging.Logger | None = None) -> dict:
    """Decode, resize and JPEG-encode the chunks of one shard into its container; return the skips and notes."""
    log = log or logging.getLogger(__name__)
    videos = manifest[(manifest.shard == shard)].sort_values("video")
    skipped = [dict(video=r.video, reason=r.skip_reason) for r in videos.itertuples() if r.skip_reason]
    records, notes = [], []
    for row in tqdm(list(videos[videos.skip_reason == ""].itertuples()), desc=f"chunks shard {shard}"):
        try:
            starts, stored, note = _stored_frames(row, per_video, length, max_side)
        except cv2.error as error:
            skipped.append(dict(video=row.video, reason=f"decoder error: {error}"))
            continue
        if note and not starts:
            skipped.append(dict(video=row.video, reason=f"{note}, fewer than one chunk of {length}"))
        elif note:
            notes.append(dict(video=row.video, note=note))
        kept = 0
        for chunk, start in enumerate(starts):
            problem = _chunk_problem(stored, start, length)
            if problem:
                skipped.append(dict(video=row.video, chunk=chunk, reason=problem))
                continue
            for i in range(length):
                ok, jpeg = cv2.imencode(".jpg", stored[start + i], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                records.append((row.video, chunk, i, start + i, np.frombuffer(jpeg.tobytes(), np.uint8)))
            kept += 1
        if kept < len(starts):
            log.warning("%s: kept %d of %d chunks", row.video, kept, len(starts))
    for item in skipped + notes:
        log.warning("%s %s", "note" if "note" in item else "skipped", item)
    _write_container(out_path, records, shard=shard, length=length, max_side=max_side, skipped=skipped, notes=notes)
    return dict(frames=len(records), chunks=len(records) // length if length else 0, skipped=skipped, notes=notes)


def _write_container(out_path: str, records: list[tuple], *, shard: int, length: int, max_side: int, skipped: list,
                     notes: list) -> None:
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("video", data=np.array([r[0] for r in records], dtype=object), dtype=h5py.string_dtype())
        h5.create_dataset("chunk", data=np.array([r[1] for r in records], np.int32))
        h5.create_dataset("frame", data=np.array([r[2] for r in records], np.int32))
        h5.create_dataset("source_frame", data=np.array([r[3] for r in records], np.int32))
        jpegs = h5.create_dataset("jpeg", (len(records),), dtype=h5py.vlen_dtype(np.uint8))
        for i, record in enumerate(records):
            jpegs[i] = record[4]
        h5.attrs.update(shard=shard, length=length, max_side=max_side, skipped=json.dumps(skipped),
                        notes=json.dumps(notes))
