"""Where the MoCo v2 augmentations run (train.augment_on): a data worker's CPU time per Frame Temporal Invariance
sample (two JPEG frames stored at 256 px, two views at 224 px) on the worker path (decode and OpenCV augmentations) and
on the device path (decode and the parameter draws; the pixels are made on the training device), and the device path's
rendering time per batch on this machine beside the worker path's CPU time for the same batch.

    python benchmarks/bench_augment.py [--samples N] [--batch B]
"""
from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
import torch

from vidssl.training.augment import MocoV2Augment
from vidssl.training.device_augment import CPU_CHOICE, DeferredAugment, SourceImage, collate, render_views

FRAME, VIEW = 256, 224


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


def worker_sample(augment, blobs, index: int, decode: bool = True) -> dict:
    """What a worker does for one FTI sample: decode both frames (or, when the device decodes them, read their sizes
    from the JPEG headers), then one view of each."""
    rng = np.random.default_rng([0, index])
    images = [cv2.imdecode(blob, cv2.IMREAD_COLOR) if decode else SourceImage.of_jpeg(blob) for blob in blobs]
    return {"x_q": augment(images[0], None, rng)[0], "x_k": augment(images[1], None, rng)[0]}


def cpu_seconds(augment, blobs: list[np.ndarray], samples: int, batch: int, decode: bool = True) -> tuple[float, list]:
    """CPU seconds per sample of `samples` FTI samples made and collated a batch at a time, and the collated batches."""
    batches, start = [], time.process_time()
    for first in range(0, samples, batch):
        items = [worker_sample(augment, blobs[2 * i % len(blobs):][:2], i, decode) for i in range(first, first + batch)]
        batches.append(collate(items))
    return (time.process_time() - start) / samples, batches


def render_seconds(batches: list[dict]) -> float:
    """Seconds per batch to render deferred batches on this machine's CPU."""
    render_views(batches[0])  # first call: allocations
    start = time.perf_counter()
    for batch in batches[1:]:
        render_views(batch)
    return (time.perf_counter() - start) / max(1, len(batches) - 1)


def run(samples: int = 256, batch: int = 32) -> list[dict]:
    torch.set_num_threads(1)  # one core: what one data worker, or one core of the trainer, does
    cv2.setNumThreads(1)
    blobs = frames(64)
    assert all(SourceImage.of_jpeg(b).shape[:2] == (FRAME, FRAME) for b in blobs[:2])
    augment = MocoV2Augment(VIEW)
    worker, _ = cpu_seconds(augment, blobs, samples, batch)
    device, deferred = cpu_seconds(DeferredAugment(augment), blobs, samples, batch)
    per_batch = render_seconds(deferred)
    encoded, _ = cpu_seconds(DeferredAugment(augment), blobs, samples, batch, decode=False)
    start = time.process_time()
    for blob in blobs * 4:
        cv2.imdecode(blob, cv2.IMREAD_COLOR)
    decode = (time.process_time() - start) / len(blobs) / 2  # two frames a sample
    faster = "device" if per_batch < worker * batch else "workers"
    where = f"FTI, {FRAME} px frames, {VIEW} px views, 1 core"
    return [
        dict(name=f"worker path: worker CPU ms per sample ({where})", value=round(worker * 1000, 3), unit="ms",
             target=None, ok=True),
        dict(name=f"device path: worker CPU ms per sample ({where})", value=round(device * 1000, 3), unit="ms",
             target=None, ok=True),
        dict(name="of which the two JPEG decodes (both paths)", value=round(decode * 1000, 3), unit="ms", target=None,
             ok=True),
        dict(name="device / worker path: worker CPU per sample, the workers decoding", value=round(device / worker, 3),
             unit="ratio", target="<= 0.15", ok=bool(device / worker <= 0.15)),
        dict(name=f"device path, JPEGs decoded on the device (CUDA's nvJPEG): worker CPU ms per sample ({where})",
             value=round(encoded * 1000, 3), unit="ms", target=None, ok=True),
        dict(name="device path, decoded on the device / worker path: worker CPU per sample",
             value=round(encoded / worker, 3), unit="ratio", target="<= 0.15", ok=bool(encoded / worker <= 0.15)),
        dict(name=f"samples/s one worker core feeds: worker path, device path ({where})",
             value=f"{1 / worker:.0f}, {1 / device:.0f}", unit="samples/s", target=None, ok=True),
        dict(name=f"device path: rendering ms per batch of {batch} on this CPU (1 thread)",
             value=round(per_batch * 1000, 1), unit="ms", target=None, ok=True),
        dict(name=f"worker path: CPU ms per batch of {batch}", value=round(worker * batch * 1000, 1), unit="ms",
             target=None, ok=True),
        dict(name=f"faster on a CPU (auto there is `{CPU_CHOICE}`)", value=faster, unit="", target=CPU_CHOICE,
             ok=faster == CPU_CHOICE),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    for row in run(args.samples, args.batch):
        print(json.dumps(row))
