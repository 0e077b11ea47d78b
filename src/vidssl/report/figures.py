"""Figures for the report."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from vidssl.contracts import BOX, CHUNK_KEY, TRACKS
from vidssl.core.io import atomic_path, save_figure
from vidssl.video.chunk_store import ChunkStore

# matplotlib's tab10, as BGR: one colour per track, repeating after ten.
TRACK_COLOURS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
                 (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23)]
PROPOSAL_COLOUR = (170, 170, 170)
CELL_SIDE = 240  # frames are enlarged to about this many pixels on their longer side so boxes and labels read well
LABEL_HEIGHT = 18
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _draw_boxes(image: np.ndarray, boxes: np.ndarray, scale: float, colour, thickness: int) -> None:
    for x1, y1, x2, y2 in np.round(np.asarray(boxes, float) * scale).astype(int):
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness, lineType=cv2.LINE_AA)


def contact_sheet(chunks_path: str, proposals_path: str, tracks_path: str, out_png: str, *, n_chunks: int = 2,
                  frames_per_chunk: int = 6, top_proposals: int = 10,
                  top_tracks: int = 8) -> list[tuple[str, int]]:
    """A PNG grid: one row per chunk (those with the most tracks first), evenly spaced frames with their first
    `top_proposals` proposals (thin grey) and the chunk's `top_tracks` highest-scoring tracks (thick, one colour per
    track, labelled with its id; more would hide the frame).

    Returns the (video, chunk) rows drawn.
    """
    store = ChunkStore(chunks_path)
    tracks = TRACKS.read(tracks_path)
    chunks = store.chunks()
    track_counts = tracks.groupby(CHUNK_KEY).track.nunique().rename("tracks")
    chunks = chunks.join(track_counts, on=CHUNK_KEY).fillna({"tracks": 0})
    chunks = chunks.sort_values("tracks", ascending=False, kind="stable").head(n_chunks)
    chosen = list(zip(chunks.video, chunks.chunk.astype(int)))
    proposals = pq.read_table(proposals_path, filters=[("rank", "<", top_proposals),
                                                       ("video", "in", sorted({v for v, _ in chosen}) or [""])]).to_pandas()

    rows = []
    for (video, chunk), n_frames in zip(chosen, chunks.n_frames):
        frame_ids = sorted(set(np.linspace(0, n_frames - 1, frames_per_chunk).round().astype(int)))
        chunk_tracks = tracks[(tracks.video == video) & (tracks.chunk == chunk)]
        n_tracks = chunk_tracks.track.nunique()
        best = chunk_tracks.drop_duplicates("track").sort_values(["score", "track"], ascending=[False, True]).track
        chunk_tracks = chunk_tracks[chunk_tracks.track.isin(best.head(top_tracks))]
        chunk_proposals = proposals[(proposals.video == video) & (proposals.chunk == chunk)]
        cells = []
        for frame_id in frame_ids:
            image = store.frame(video, chunk, frame_id)
            scale = CELL_SIDE / max(image.shape[:2])
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            here = chunk_proposals[chunk_proposals.frame == frame_id]
            _draw_boxes(image, here[BOX].to_numpy(), scale, PROPOSAL_COLOUR, 1)
            for track in chunk_tracks[chunk_tracks.frame == frame_id].itertuples():
                colour = TRACK_COLOURS[track.track % len(TRACK_COLOURS)]
                _draw_boxes(image, [[track.x1, track.y1, track.x2, track.y2]], scale, colour, 2)
                cv2.putText(image, str(track.track), (int(track.x1 * scale) + 3, int(track.y1 * scale) + 12),
                            FONT, 0.4, colour, 1, cv2.LINE_AA)
            label = np.full((LABEL_HEIGHT, image.shape[1], 3), 255, np.uint8)
            cv2.putText(label, f"frame {frame_id}", (3, LABEL_HEIGHT - 5), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            cells.append(np.vstack([label, image]))
        shown = f", best {top_tracks} shown" if n_tracks > top_tracks else ""
        title = f"{video}  chunk {chunk}  ({n_tracks} tracks{shown}; grey: first {top_proposals} proposals)"
        rows.append((title, cells))

    sheet = _assemble(rows)
    with atomic_path(out_png) as tmp:
        _, encoded = cv2.imencode(".png", sheet)
        tmp.write_bytes(encoded.tobytes())
    return chosen


def _assemble(rows: list[tuple[str, list[np.ndarray]]], gap: int = 4) -> np.ndarray:
    """Stack titled rows of cells on a white canvas, cells padded to a common size."""
    if not rows or not any(cells for _, cells in rows):
        canvas = np.full((60, 400, 3), 255, np.uint8)
        cv2.putText(canvas, "no chunks to show", (10, 35), FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        return canvas
    cell_h = max(c.shape[0] for _, cells in rows for c in cells)
    cell_w = max(c.shape[1] for _, cells in rows for c in cells)
    columns = max(len(cells) for _, cells in rows)
    row_h = LABEL_HEIGHT + cell_h + gap
    canvas = np.full((len(rows) * row_h + gap, columns * (cell_w + gap) + gap, 3), 255, np.uint8)
    for r, (title, cells) in enumerate(rows):
        top = r * row_h + gap
        cv2.putText(canvas, title, (gap, top + LABEL_HEIGHT - 5), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for c, cell in enumerate(cells):
            left = gap + c * (cell_w + gap)
            canvas[top + LABEL_HEIGHT:top + LABEL_HEIGHT + cell.shape[0], left:left + cell.shape[1]] = cell
    return canvas


def plot_training(csv_path: str | Path, out_png: str | Path) -> None:
    """Loss and kNN top-1 of a training run's train.csv against the step, side by side; for MoCo-family runs the
    loss against a fresh queue as well (a training loss below it is the queue's staleness)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.read_csv(csv_path)
    figure, (loss_axis, knn_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_axis.plot(frame.step, frame.loss, label="training")
    fresh = frame.dropna(subset=["loss_fresh_queue"]) if "loss_fresh_queue" in frame else frame.iloc[:0]
    if len(fresh):
        loss_axis.plot(fresh.step, fresh.loss_fresh_queue, marker="o", label="against a fresh queue")
        loss_axis.legend()
    loss_axis.set(xlabel="step", ylabel="loss")
    measured = frame.dropna(subset=["knn_top1"])
    knn_axis.plot(measured.step, measured.knn_top1, marker="o")
    knn_axis.set(xlabel="step", ylabel="kNN top-1", ylim=(0, 1))
    figure.tight_layout()
    save_figure(figure, out_png)
