"""Video sources and the manifest: every input video (a file or a folder of numbered frames), probed for its frames,
fps and size, assigned to a shard by a stable hash, or recorded with the reason it is skipped."""
from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import pandas as pd
from tqdm import tqdm

from vidssl.contracts import MANIFEST
from vidssl.core.errors import UserError
from vidssl.core.images import IMAGE_SUFFIXES, read_image
from vidssl.core.names import frame_number, not_utf8, shown

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv"}
ASPECT_TOLERANCE = 0.02  # a frame this close to the video's shape (e.g. 1920x1088 in a 1920x1080 video) is rescaled


def chunk_starts(n_frames: int, n_chunks: int, chunk_len: int) -> list[int]:
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


def numbered_frames(folder: Path) -> list[tuple[int, Path]]:
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


def frames_left(capture: cv2.VideoCapture) -> int:
    """How many more frames `capture` decodes, read to the real end (a container's count may be wrong or missing)."""
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


def decoded_count(path: str) -> int:
    """The number of frames of a video file that decode."""
    return frames_left(cv2.VideoCapture(path))


def _probe_frames(entry: VideoEntry, fps: float = 30.0) -> VideoEntry:
    frames = numbered_frames(Path(entry.path))
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
    MANIFEST.write(manifest, path, metadata={"skipped": skipped.rename(columns={"skip_reason": "reason"}).to_dict("records")})
