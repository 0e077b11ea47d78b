"""Tracking cost and keyframes.

Linking cost: `link_chunk` on a 60-frame chunk against selective search on the same chunk's frames; linking should
cost at most 5% of the proposals it links. Measured on a cluttered panning scene that gives the paper's 300 proposals a
frame (at 128 and 256 px), and on a default-config synthetic video (128 px, few proposals). Costs are CPU seconds of
this one-threaded process, so other jobs on the machine do not skew the ratio; linking is the median of three
runs, as a shard links chunk after chunk in one process. The per-frame search and link times at 256 px are the
figures docs/performance.md scales to TrackingNet.

Keyframes (`tracks.keyframe_every`, strided pairs with k = 40 as in the paper): the proposals and tracks stages run
for real (one process) on scenes stored at 128 px: the synthetic world (objects with ground-truth boxes, passing
occluders), a photographed object moving and scaling over a photograph, the same object half covered for 6 frames,
and a camera pan and zoom over a photograph with the object in it (its box follows the camera), plus two pans over
photographs without ground truth (sklearn's china.jpg and flower.jpg, real photographs rendered into video here).
Reported: the stages' time per chunk for N = 10 and N = 40 against N = 1; the best track's coverage of each object
(share of frames 0-40, those pairs use, with IoU >= 0.5) against dense; the share of the dense tracks' (0, 40) box
pairs that a keyframe track matches with IoU >= 0.5 at both ends; linking cost per tracked frame.

    python benchmarks/bench_tracks.py
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml
from sklearn.datasets import load_sample_image

from vidssl import synthetic
from vidssl.contracts import BOX, SYNTHETIC_BOXES, TRACKS
from vidssl.tracking.pairs import keyframes
from vidssl.tracking.proposals import propose_shard
from vidssl.tracking.selective_search import selective_search, single_opencv_thread
from vidssl.tracking.tracks import box_iou, link_chunk, link_settings, track_shard
from vidssl.video.chunk_store import ChunkStore
from vidssl.video.chunks import extract_chunks, resize_max_side
from vidssl.video.manifest import build_manifest, chunk_starts, list_videos

TARGET = 0.05
LENGTH = 60
PAIRS = dict(k=40, mode="strided")  # the paper's: one pair (0, 40) per 60-frame chunk
CONFIG = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
SEARCH = CONFIG["proposals"]
TRACK_PARAMS = link_settings(CONFIG["tracks"])
USED = PAIRS["k"] + 1  # frames 0-40, those the pairs use
TIME_TARGETS = {10: 0.15, 40: 0.06}  # stages' time with keyframe_every N over dense, per chunk
SOURCE = (320, 240)  # scenes are rendered at this size and stored at 128 px, as the chunks stage does


def clutter_chunk(max_side: int) -> list:
    """A mosaic of random colour cells (max_side / 16 px) panning 1 px a frame: hundreds of regions per frame."""
    height, cell = max_side * 3 // 4, max(4, max_side // 16)
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 256, (height // cell + 2, (max_side + LENGTH) // cell + 2, 3), dtype=np.uint8)
    mosaic = cv2.GaussianBlur(cv2.resize(cells, None, fx=cell, fy=cell, interpolation=cv2.INTER_NEAREST), (3, 3), 0)
    return [np.ascontiguousarray(mosaic[:height, t:t + max_side]) for t in range(LENGTH)]


def synthetic_chunk(max_side: int) -> list:
    """60 frames of a synthetic 4:3 video a little larger than `max_side`, resized to it as the chunks stage does."""
    width = max_side * 5 // 4
    with tempfile.TemporaryDirectory() as tmp:
        synthetic.generate_videos(tmp, classes=["car", "person", "bird"], n_videos=1, n_frames=LENGTH,
                                  size=(width, width * 3 // 4), seed=1)
        capture = cv2.VideoCapture(str(next(Path(tmp).glob("*.mp4"))))
        frames = [resize_max_side(capture.read()[1], max_side) for _ in range(LENGTH)]
        capture.release()
    return frames


SCENES = {"clutter": clutter_chunk, "synthetic": synthetic_chunk}


def photograph(name: str) -> np.ndarray:
    """A real photograph that scikit-learn ships (china.jpg, flower.jpg), as BGR."""
    return cv2.cvtColor(load_sample_image(name), cv2.COLOR_RGB2BGR)


def _object_patch() -> np.ndarray:
    return photograph("flower.jpg")[120:300, 200:380]  # the flower's head


def moving_object_video(n_frames: int, occluded: bool = False) -> tuple[list, dict]:
    """The flower moving across the china photograph while its side shrinks 70 -> 35 px and grows back (28 -> 14 px
    stored); `occluded`: its left half covered by a grey bar in frames 15-20 of every chunk."""
    width, height = SOURCE
    background, patch = cv2.resize(photograph("china.jpg"), SOURCE, interpolation=cv2.INTER_AREA), _object_patch()
    frames, boxes = [], []
    for t in range(n_frames):
        progress = t / max(n_frames - 1, 1)
        side = round(70 - 35 * np.sin(np.pi * progress))
        x1 = round(0.15 * width + 0.6 * width * progress)
        y1 = round(height * (0.45 + 0.15 * np.sin(2 * np.pi * progress)) - side / 2)
        frame = background.copy()
        frame[y1:y1 + side, x1:x1 + side] = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)
        if occluded and 15 <= t % LENGTH <= 20:
            frame[y1 - 4:y1 + side + 4, x1 - 4:x1 + side // 2] = 128
        frames.append(frame)
        boxes.append((x1, y1, x1 + side, y1 + side))
    return frames, {0: np.array(boxes, np.float32)}


def camera_pan_video(n_frames: int, photo: str = "china.jpg", with_object: bool = True) -> tuple[list, dict, np.ndarray]:
    """A camera panning across a photograph while zooming in by 1.3x and out again; `with_object`: the flower (60 px
    in the photograph) sits at a fixed place in it, its box moving with the camera. Also returns the camera: per frame
    the scale and the photograph's point at the view's top left."""
    scene = photograph(photo)
    object_box = np.array([330, 180, 390, 240], np.float32)
    if with_object:
        scene[180:240, 330:390] = cv2.resize(_object_patch(), (60, 60), interpolation=cv2.INTER_AREA)
    progress = np.linspace(0, 1, n_frames)
    view_width = 420 / (1 + 0.3 * np.sin(np.pi * progress))  # the part of the photograph in view
    camera = np.stack([SOURCE[0] / view_width, 20 + (scene.shape[1] - view_width - 40) * progress,
                       (scene.shape[0] - view_width * 0.75) / 2], axis=1)
    frames = [cv2.warpAffine(scene, np.float32([[scale, 0, -left * scale], [0, scale, -top * scale]]), SOURCE,
                             flags=cv2.INTER_AREA) for scale, left, top in camera]
    boxes = (object_box[None] - camera[:, [1, 2, 1, 2]]) * camera[:, :1]
    return frames, ({0: boxes.astype(np.float32)} if with_object else {}), camera


def synthetic_world_videos(n_frames: int, folder: Path, n_videos: int = 8) -> list[tuple[list, dict, None]]:
    """Default-world synthetic videos (160 x 120, one to three objects each, passing occluders) with their boxes."""
    synthetic.generate_videos(folder, classes=["car", "person", "bird"], n_videos=n_videos, n_frames=n_frames,
                              size=(160, 120), seed=2)
    boxes = SYNTHETIC_BOXES.read(folder / "boxes.parquet")
    videos = []
    for path in sorted(folder.glob("*.mp4")):
        capture = cv2.VideoCapture(str(path))
        frames = [capture.read()[1] for _ in range(n_frames)]
        capture.release()
        truth = {}
        for obj, rows in boxes[boxes.video == path.stem].groupby("object"):
            truth[int(obj)] = np.full((n_frames, 4), np.nan, np.float32)
            truth[int(obj)][rows.frame.to_numpy()] = rows[BOX].to_numpy()
        videos.append((frames, truth, None))
    return videos


def keyframe_scenes(n_frames: int, folder: Path) -> dict:
    """Scene name -> a function giving its videos: frames, object boxes (object -> n x 4, NaN where unseen), camera."""
    return {"synthetic world": lambda: synthetic_world_videos(n_frames, folder / "world"),
            "moving and scaling": lambda: [(*moving_object_video(n_frames), None)],
            "partly occluded": lambda: [(*moving_object_video(n_frames, occluded=True), None)],
            "camera pan": lambda: [camera_pan_video(n_frames)],
            "real pan china.jpg": lambda: [camera_pan_video(n_frames, "china.jpg", with_object=False)],
            "real pan flower.jpg": lambda: [camera_pan_video(n_frames, "flower.jpg", with_object=False)]}


def store_videos(videos: dict[str, list], folder: Path, n_chunks: int) -> str:
    """The videos as one shard of `n_chunks` 60-frame chunks each at 128 px, through the real manifest and chunks
    stage (one shard: the stages' fixed costs spread over its chunks as over a real shard's)."""
    (folder / "videos").mkdir(parents=True)
    for name, frames in videos.items():
        writer = cv2.VideoWriter(str(folder / "videos" / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0,
                                 frames[0].shape[1::-1])
        for frame in frames:
            writer.write(frame)
        writer.release()
    manifest = build_manifest(list_videos("folder", str(folder / "videos")), shards=1, chunk_len=LENGTH)
    chunks = str(folder / "chunks.h5")
    extract_chunks(manifest, chunks, shard=0, per_video=n_chunks, length=LENGTH, max_side=128, jpeg_quality=90)
    return chunks


def run_stages(chunks: str, folder: Path, every: int) -> tuple[pd.DataFrame, float, float]:
    """Proposals and tracks with keyframe_every `every`, one OpenCV thread: the tracks, CPU and wall seconds."""
    with single_opencv_thread():
        wall, cpu = time.perf_counter(), time.process_time()
        propose_shard(chunks, folder / f"proposals{every}.parquet", **SEARCH, keyframe_every=every, pairs=PAIRS)
        track_shard(chunks, folder / f"proposals{every}.parquet", folder / f"tracks{every}.parquet", **TRACK_PARAMS)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return TRACKS.read(folder / f"tracks{every}.parquet"), cpu, wall


def median_link_time(frames: list, proposals: list, keys=None) -> float:
    """CPU seconds of link_chunk, the median of three: the first call in a process also pays one-time set-up."""
    times = []
    for _ in range(3):
        start = time.process_time()
        link_chunk(frames, proposals, keyframes=keys, **TRACK_PARAMS)
        times.append(time.process_time() - start)
    return float(np.median(times))


def measure(scene: str, max_side: int) -> dict:
    frames = SCENES[scene](max_side)
    with single_opencv_thread():
        start = time.process_time()
        proposals = [selective_search(f, **SEARCH) for f in frames]
        search = time.process_time() - start
        link = median_link_time(frames, proposals)
        keys = keyframes(LENGTH, 10, **PAIRS)
        keyed = median_link_time(frames, proposals, keys)
    tracks = link_chunk(frames, proposals, **TRACK_PARAMS)
    return dict(scene=scene, max_side=max_side, search=search, link=link, tracks=int(tracks.track.nunique()),
                proposals=sum(map(len, proposals)) / len(proposals), link_per_frame=link / (LENGTH - 1),
                keyed_per_frame=keyed / keys[-1])


def cost_rows(result: dict) -> list[dict]:
    ratio = result["link"] / result["search"]
    where = f"{result['scene']} {result['max_side']} px"
    detail = (f"{where}, {result['proposals']:.0f} proposals/frame, link {result['link']:.3f} s vs search "
              f"{result['search']:.2f} s, {result['tracks']} tracks")
    per_frame = result["keyed_per_frame"] / result["link_per_frame"]
    return [dict(name=f"link / selective search time, 60-frame chunk ({detail})", value=round(ratio, 4),
                 unit="ratio", target=f"<= {TARGET}", ok=bool(ratio <= TARGET)),
            dict(name=f"selective search CPU s per frame ({where})", value=round(result["search"] / LENGTH, 4),
                 unit="s", target=None, ok=True),
            dict(name=f"dense linking CPU s per tracked frame ({where})", value=round(result["link_per_frame"], 5),
                 unit="s", target=None, ok=True),
            dict(name=f"linking per tracked frame, keyframe_every 10 / dense ({where})", value=round(per_frame, 3),
                 unit="ratio", target="<= 1", ok=bool(per_frame <= 1))]


def coverages(tracks: pd.DataFrame, truth: dict, starts: list[int], scale: float) -> list[float]:
    """Per chunk and object seen in at least half of frames 0-40: the best track's share of the frames it is seen in
    with IoU >= 0.5 to its box."""
    result = []
    for chunk, start in enumerate(starts):
        chunk_tracks = tracks[(tracks.chunk == chunk) & (tracks.frame < USED)]
        for boxes in truth.values():
            seen = np.isfinite(boxes[start:start + USED, 0])
            if seen.sum() < USED / 2:
                continue
            best = 0
            for _, track in chunk_tracks.groupby("track"):
                target = boxes[start + track.frame.to_numpy()] * scale
                hits = (box_iou(track[BOX].to_numpy(), np.nan_to_num(target)).diagonal() >= 0.5)
                best = max(best, int((hits & np.isfinite(target[:, 0])).sum()))
            result.append(best / seen.sum())
    return result


def pair_ends(tracks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ids of the tracks present at frames 0 and k, and their boxes there."""
    first, last = (tracks[tracks.frame == f].set_index("track")[BOX] for f in (0, PAIRS["k"]))
    both = first.index.intersection(last.index)
    return both.to_numpy(), first.loc[both].to_numpy(), last.loc[both].to_numpy()


def pair_agreement(dense: pd.DataFrame, keyed: pd.DataFrame) -> tuple[int, int]:
    """Of the dense tracks' (0, k) box pairs, how many a keyframe track matches with IoU >= 0.5 at both ends."""
    dense, keyed = pair_ends(dense)[1:], pair_ends(keyed)[1:]
    if not len(dense[0]) or not len(keyed[0]):
        return 0, len(dense[0])
    at_first, at_last = (box_iou(dense[i], keyed[i]) >= 0.5 for i in (0, 1))
    return int((at_first & at_last).any(axis=1).sum()), len(dense[0])


def camera_followers(tracks: pd.DataFrame, camera: np.ndarray, start: int, scale: float) -> tuple[np.ndarray, int]:
    """The tracks of a pan whose (0, k) pair ends within IoU 0.5 of the first box carried by the camera itself, and
    how many (0, k) pairs there are."""
    ids, first, last = pair_ends(tracks)
    (s0, left0, top0), (s1, left1, top1) = camera[start], camera[start + PAIRS["k"]]
    carried = (first / (s0 * scale) + [left0, top0, left0, top0] - [left1, top1, left1, top1]) * s1 * scale
    return ids[box_iou(last, carried).diagonal() >= 0.5], len(first)


def object_followers(tracks: pd.DataFrame, truth: dict, start: int, scale: float) -> np.ndarray:
    """The tracks whose (0, k) pair sits on one object at both ends (IoU >= 0.5 with its true box there)."""
    ids, first, last = pair_ends(tracks)
    on_object = np.zeros(len(ids), bool)
    for boxes in truth.values():
        at_first, at_last = boxes[start] * scale, boxes[start + PAIRS["k"]] * scale
        if len(ids) and np.isfinite(at_first[0]) and np.isfinite(at_last[0]):
            on_object |= (box_iou(first, at_first[None])[:, 0] >= 0.5) & (box_iou(last, at_last[None])[:, 0] >= 0.5)
    return ids[on_object]


def scene_counts(videos: list, runs: dict, names: list[str], n_chunks: int) -> dict:
    """Per keyframe spacing: coverages, matched dense pairs and pairs following the camera over a scene's videos."""
    result = {}
    for every, tracks in runs.items():
        coverage, pairs, object_pairs, camera_counts, true_pairs = [], np.zeros(2, int), np.zeros(2, int), None, None
        for name, (frames, truth, camera) in zip(names, videos):
            starts, scale = chunk_starts(len(frames), n_chunks, LENGTH), 128 / max(frames[0].shape[:2])
            mine, dense = tracks[tracks.video == name], runs[1][runs[1].video == name]
            coverage += coverages(mine, truth, starts, scale)
            for chunk, start in enumerate(starts):
                keyed, reference = mine[mine.chunk == chunk], dense[dense.chunk == chunk]
                pairs += pair_agreement(reference, keyed)
                on_object = object_followers(reference, truth, start, scale)
                object_pairs += pair_agreement(reference[reference.track.isin(on_object)], keyed)
                if camera is not None:
                    followers, total = camera_followers(keyed, camera, start, scale)
                    camera_counts = (0 if camera_counts is None else camera_counts) + np.array([len(followers), total])
                    # the dense pairs that are right (they follow the camera): how many a keyframe track matches
                    right, _ = camera_followers(reference, camera, start, scale)
                    true_pairs = (0 if true_pairs is None else true_pairs) + np.array(
                        pair_agreement(reference[reference.track.isin(right)], keyed))
        result[every] = dict(coverage=coverage, pairs=pairs, object_pairs=object_pairs, camera=camera_counts,
                             true_pairs=true_pairs)
    return result


def measure_keyframes(scenes: dict, folder: Path, n_chunks: int) -> tuple[list[dict], dict]:
    """Every scene's videos in one shard, the stages run twice per keyframe spacing (interleaved; the faster run
    counts, as this machine's speed drifts); per scene its counts, and the stages' CPU and wall seconds."""
    made = {scene: make() for scene, make in scenes.items()}
    names = {scene: [f"scene{i}_{j}" for j in range(len(videos))] for i, (scene, videos) in enumerate(made.items())}
    chunks = store_videos({name: v[0] for scene, videos in made.items() for name, v in zip(names[scene], videos)},
                          folder / "store", n_chunks)
    runs, times = {}, {}
    for _ in range(2):
        for every in (1, *TIME_TARGETS):
            runs[every], cpu, wall = run_stages(chunks, folder, every)
            times[every] = np.minimum(times.get(every, (np.inf, np.inf)), (cpu, wall))
    results = [{"scene": scene, **scene_counts(videos, runs, names[scene], n_chunks)} for scene, videos in made.items()]
    return results, dict(times=times, chunks=len(ChunkStore(chunks).chunks()))


def _share(counts) -> tuple[float, str]:
    matched, total = map(int, counts)
    return (matched / total if total else float("nan")), f"{matched} of {total}"


def keyframe_rows(results: list[dict], stages: dict) -> list[dict]:
    rows, chunks = [], stages["chunks"]
    for every, target in TIME_TARGETS.items():
        for clock, index in (("CPU", 0), ("wall", 1)):
            dense, keyed = (stages["times"][n][index] for n in (1, every))
            rows.append(dict(name=f"proposals + tracks {clock} time per 60-frame chunk, keyframe_every {every} / dense "
                                  f"({keyed / chunks:.3f} s vs {dense / chunks:.3f} s, {chunks} chunks, strided k = 40)",
                             value=round(keyed / dense, 3), unit="ratio", target=f"<= {target}",
                             ok=bool(keyed / dense <= target)))
    for result in results:
        for every in TIME_TARGETS:
            checked = every == 10
            dense = result[1]["coverage"]
            if dense:
                gap = float(np.mean(result[every]["coverage"]) - np.mean(dense))
                rows.append(dict(name=f"best-track coverage, keyframe_every {every} minus dense ({result['scene']}, "
                                      f"{len(dense)} objects x chunks, dense {np.mean(dense):.2f})", value=round(gap, 3),
                                 unit="share", target=">= -0.05" if checked else None, ok=bool(gap >= -0.05 or not checked)))
            share, counts = _share(result[every]["pairs"])
            rows.append(dict(name=f"dense (0, 40) track pairs a keyframe_every {every} track matches at both ends "
                                  f"({result['scene']}, {counts})", value=round(share, 3), unit="share",
                             target=">= 0.8" if checked else None, ok=bool(share >= 0.8 or not checked)))
            if not result[every]["object_pairs"][1]:
                continue  # a pan over a photograph has no object
            share, counts = _share(result[every]["object_pairs"])
            rows.append(dict(name=f"dense (0, 40) pairs on an object at both ends, matched at both ends by a "
                                  f"keyframe_every {every} track ({result['scene']}, {counts})", value=round(share, 3),
                             unit="share", target=">= 0.8" if checked else None, ok=bool(share >= 0.8 or not checked)))
        if result[1]["camera"] is not None:
            for every in TIME_TARGETS:
                share, counts = _share(result[every]["true_pairs"])
                rows.append(dict(name=f"dense (0, 40) pairs that follow the camera, matched at both ends by a "
                                      f"keyframe_every {every} track ({result['scene']}, {counts})", value=round(share, 3),
                                 unit="share", target=">= 0.8" if every == 10 else None,
                                 ok=bool(share >= 0.8 or every != 10)))
            for every in (1, *TIME_TARGETS):
                share, counts = _share(result[every]["camera"])
                rows.append(dict(name=f"(0, 40) track pairs that follow the camera, keyframe_every {every} "
                                      f"({result['scene']}, {counts})", value=round(share, 3), unit="share",
                                 target=None, ok=True))
    return rows


def run(cases=(("clutter", 128), ("clutter", 256), ("synthetic", 128)), scenes=None, chunks_per_scene: int = 2
        ) -> list[dict]:
    rows = [row for case in cases for row in cost_rows(measure(*case))]
    with tempfile.TemporaryDirectory() as tmp:
        available = keyframe_scenes(chunks_per_scene * LENGTH, Path(tmp))
        chosen = {name: available[name] for name in (scenes or available)}
        return rows + keyframe_rows(*measure_keyframes(chosen, Path(tmp), chunks_per_scene))


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']}: {row['value']} {row['unit']}" + (f" (target {row['target']})" if row["target"] else "")
              + ("" if row["ok"] else "  MISSED"))
