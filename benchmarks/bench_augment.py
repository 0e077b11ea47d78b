"""Where the MoCo v2 augmentations run (train.augment_on): a data worker's CPU time per Frame Temporal Invariance
sample (two JPEG frames stored at 256 px, two views at 224 px) on the worker path (decode and OpenCV augmentations) and
on the device path (the parameter draws and the decode into the batch: to YCbCr planes for a GPU, to RGB for a CPU;
or only the draws where the device decodes the JPEGs), and the device path's rendering time per batch on this
machine beside the worker path's CPU time for the same batch.

A worker's CPU time is measured in a real DataLoader worker process (its rusage once it has exited, less that of a
worker making empty batches), so that it includes handing each batch to the trainer through shared memory.

    python benchmarks/bench_augment.py [--samples N] [--batch B] [--repeats R]
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import resource
import statistics
import time

import cv2
import numpy as np
import torch

from vidssl.core.images import decode_jpeg, planes_decoder_here
from vidssl.training.augment import MocoV2Augment
from vidssl.training.batch_frames import JPEG, PLANES, planar
from vidssl.training.device_augment import CPU_CHOICE, DeferredAugment, SourceImage, collate, render_views

FRAME, VIEW = 256, 224
FTI = f"FTI, {FRAME} px frames, {VIEW} px views, 1 core"


def frames(count: int) -> list[np.ndarray]:
    """JPEG bytes (quality 90) of 256 px frames with the structure of video: smooth colour fields, edges and noise."""
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(count):
        field = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (FRAME, FRAME), interpolation=cv2.INTER_CUBIC)
        x, y = rng.integers(0, FRAME - 64, 2)
        cv2.rectangle(field, (int(x), int(y)), (int(x) + 64, int(y) + 48), [int(c) for c in rng.integers(0, 256, 3)], -1)
        noisy = np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8)
        blobs.append(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 90])[1])
    return blobs


def read_decoded(blob: np.ndarray) -> np.ndarray:
    """A worker-path frame: BGR pixels (vidssl.video.chunk_store's read)."""
    return decode_jpeg(blob)


def read_opencv(blob: np.ndarray) -> np.ndarray:
    """The same pixels from OpenCV's decoder."""
    return cv2.imdecode(blob, cv2.IMREAD_COLOR)


class Samples(torch.utils.data.Dataset):
    """What a worker does for one FTI sample: read both frames (decoded, or on the device path their sizes from the
    JPEG headers), then one view of each."""

    def __init__(self, augment, blobs: list[np.ndarray], count: int, read):
        self.augment, self.blobs, self.count, self.read = augment, blobs, count, read

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        if self.augment is None:  # the empty sample: what a worker costs doing nothing (not even reading)
            return {"x": torch.zeros(1)}
        rng = np.random.default_rng([0, index])
        images = [self.read(blob) for blob in self.blobs[2 * index % len(self.blobs):][:2]]
        return {"x_q": self.augment(images[0], None, rng)[0], "x_k": self.augment(images[1], None, rng)[0]}


def worker_seconds(samples: Samples, batch: int, collate_fn) -> float:
    """CPU seconds of one DataLoader worker process making every batch of `samples`, from its rusage once it exits."""
    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    before = children()
    loader = torch.utils.data.DataLoader(samples, batch_size=batch, num_workers=1, collate_fn=collate_fn,
                                         multiprocessing_context="fork")
    for _ in loader:
        pass
    del loader  # the worker exits and is reaped: its time is in RUSAGE_CHILDREN
    return children() - before


def decode_seconds(blobs: list[np.ndarray], read) -> float:
    """CPU seconds of one sample's two decodes."""
    start = time.process_time()
    for blob in blobs * 4:
        read(blob)
    return (time.process_time() - start) / len(blobs) / 2


def planes_seconds(blobs: list[np.ndarray]) -> float:
    """CPU seconds of one sample's two decodes to YCbCr planes, into a batch as the device path decodes them."""
    sources = [torch.from_numpy(blob.ravel()) for blob in blobs]
    start = time.process_time()
    for _ in range(4):
        planar(sources, [(FRAME, FRAME)] * len(sources))
    return (time.process_time() - start) / len(blobs) * 2 / 4


def render_seconds(batches: list[dict]) -> float:
    """Seconds per batch to render deferred batches on this machine's CPU."""
    render_views(batches[0])  # first call: allocations
    start = time.perf_counter()
    for batch in batches[1:]:
        render_views(batch)
    return (time.perf_counter() - start) / max(1, len(batches) - 1)


def run(samples: int = 512, batch: int = 32, repeats: int = 3) -> list[dict]:
    torch.set_num_threads(1)  # one core: what one data worker, or one core of the trainer, does
    cv2.setNumThreads(1)
    blobs = frames(64)
    assert all(SourceImage.of_jpeg(b).shape[:2] == (FRAME, FRAME) for b in blobs[:2])
    augment, deferred = MocoV2Augment(VIEW), DeferredAugment(MocoV2Augment(VIEW))
    views = Samples(deferred, blobs, samples, SourceImage.of_jpeg)
    paths = {"empty": (Samples(None, blobs, samples, None), collate),
             "worker": (Samples(augment, blobs, samples, read_decoded), collate),
             "rgb": (views, collate), "planes": (views, functools.partial(collate, form=PLANES)),
             "nvjpeg": (views, functools.partial(collate, form=JPEG))}
    missing = "" if planes_decoder_here() else " (not measured: libturbojpeg0 is not installed)"
    if missing:  # the planes path would send RGB under the planes' name
        del paths["planes"]
    times = {name: [] for name in paths}
    for _ in range(repeats):  # interleaved, each path's median: the machine's noise falls on all of them alike
        for name, (data, collate_fn) in paths.items():
            times[name].append(worker_seconds(data, batch, collate_fn))
    empty = statistics.median(times["empty"])
    worker, rgb, planes, encoded = ((statistics.median(times.get(name, [math.nan])) - empty) / samples
                                    for name in ("worker", "rgb", "planes", "nvjpeg"))
    per_batch = render_seconds([collate([views[i] for i in range(first, first + batch)])
                                for first in range(0, min(samples, 8 * batch), batch)])
    decode, opencv = decode_seconds(blobs, read_decoded), decode_seconds(blobs, read_opencv)
    faster = "device" if per_batch < worker * batch else "workers"
    ms = f"worker CPU ms per sample ({FTI})"
    return [
        row(f"worker path: {ms}", round(worker * 1000, 3), "ms"),
        row(f"device path for a GPU, the workers decoding to YCbCr planes: {ms}{missing}", round(planes * 1000, 3),
            "ms"),
        row(f"device path for a GPU, the workers decoding / worker path: worker CPU per sample{missing}",
            round(planes / worker, 3), "ratio", "<= 0.15", planes / worker <= 0.15),
        row(f"device path for a CPU, the workers decoding to RGB: {ms}, ratio",
            f"{rgb * 1000:.3f}, {rgb / worker:.3f}", "ms, ratio"),
        row("of which the two JPEG decodes: to YCbCr planes, to RGB (OpenCV's decoder to RGB)",
            f"{(math.nan if missing else planes_seconds(blobs)) * 1000:.3f}, {decode * 1000:.3f} "
            f"({opencv * 1000:.3f})", "ms"),
        row(f"device path, JPEGs decoded on the device (CUDA's nvJPEG): {ms}", round(encoded * 1000, 3), "ms"),
        row("device path, decoded on the device / worker path: worker CPU per sample", round(encoded / worker, 3),
            "ratio", "<= 0.15", encoded / worker <= 0.15),
        row(f"samples/s one worker core feeds: worker path, device path with planes, with nvJPEG ({FTI})",
            f"{1 / worker:.0f}, {1 / planes:.0f}, {1 / encoded:.0f}", "samples/s"),
        row(f"device path: rendering ms per batch of {batch} on this CPU (1 thread, RGB frames)",
            round(per_batch * 1000, 1), "ms"),
        row(f"worker path: CPU ms per batch of {batch}", round(worker * batch * 1000, 1), "ms"),
        row(f"faster on a CPU (auto there is `{CPU_CHOICE}`)", faster, "", CPU_CHOICE, faster == CPU_CHOICE),
    ]


def row(name: str, value, unit: str, target: str | None = None, ok: bool = True) -> dict:
    return dict(name=name, value=value, unit=unit, target=target, ok=bool(ok))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for result in run(args.samples, args.batch, args.repeats):
        print(json.dumps(result))
