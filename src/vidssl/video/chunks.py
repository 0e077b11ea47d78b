"""Chunk extraction into one JPEG container per shard.

A shard's container is an HDF5 file with one row per stored frame: `video`, `chunk`, `frame` (index within the chunk),
`source_frame` (index in the video) and `jpeg` (the encoded bytes), sorted by (video, chunk, frame). Nothing is written
as a file per frame: TrackingNet would need 7.2M of them.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from vidssl.contracts import CHUNKS
from vidssl.core.images import read_image
from vidssl.video.manifest import ASPECT_TOLERANCE, chunk_starts, frames_left, numbered_frames


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
    beyond = frames_left(capture)
    # Frames after the last wanted one: every index up to it exists, decoded or not. None: the stream ended there.
    return stored, max(wanted) + 1 + beyond if beyond else last_decoded + 1


def _stored_frames(row, per_video: int, length: int, max_side: int) -> tuple[list[int], dict, str]:
    """Chunk starts of one video, its wanted frames at stored size (None: unreadable, str: why it cannot be stored),
    and a note when the container's frame count was wrong (the chunks are then placed within the frames that decode)."""
    store = _Storer(row, max_side)
    starts = chunk_starts(row.frames, per_video, length)
    if row.kind == "frames":
        frames = numbered_frames(Path(row.path))
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
    """`records` are rows (video, chunk, frame, source_frame, jpeg), the `vidssl.contracts.CHUNKS` datasets in order."""
    columns = dict(zip(CHUNKS.datasets, zip(*records))) if records else dict.fromkeys(CHUNKS.datasets, ())
    CHUNKS.write(out_path, columns, dict(shard=shard, length=length, max_side=max_side, skipped=skipped, notes=notes))
