"""Feature-extraction throughput: `vidssl.evaluation.features.extract` (JPEG decode, crop, resize, DataLoader, HDF5 writes)
against a bare forward over pre-made tensors with the same model, batch and resolution (target: >= 0.8 of bare).

resnet18 at 64 px (the default world uses 48), batch 128 as config/config.yaml, and the loader workers the
`features` rule would use on this machine (`vidssl.evaluation.features.loader_workers`: none on a CPU).

    python benchmarks/bench_features.py [--images N] [--workers W]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from vidssl.core.io import write_parquet
from vidssl.datasets.eval_sets import load_image
from vidssl.evaluation.features import extract, loader_workers, normalise
from vidssl.models.backbone import load_backbone, random_backbone

ARCH, IMAGE_SIZE, BATCH = "resnet18", 64, 128
TARGET = 0.8


def write_index(root: Path, images: int) -> Path:
    """`images` JPEGs of 160x120 (the synthetic sets' size), every other one with a box, as an evaluation index."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(images):
        path = root / f"{i:05d}.jpg"
        cv2.imwrite(str(path), cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (5, 5), 0))
        box = (10.0, 10.0, 130.0, 100.0) if i % 2 else (np.nan,) * 4
        rows.append(dict(dataset="bench", path=str(path), label=i % 4, class_name=f"c{i % 4}", set=i // 4,
                         x1=box[0], y1=box[1], x2=box[2], y2=box[3]))
    index = root / "index.parquet"
    write_parquet(pd.DataFrame(rows), index, sort_by=["set", "path"])
    return index


def bare_images_per_s(backbone: Path, batches: list[torch.Tensor], device: torch.device) -> float:
    """The floor: `extract` without its data path. The same model loaded from the same file runs on already-decoded
    uint8 batches in memory (normalised on the device, as extract does); loading and the first call's allocations are
    timed, as extract pays them too, so the ratio isolates reading, decoding and the DataLoader."""
    start = time.perf_counter()
    model = load_backbone(backbone, ARCH).to(device).eval()
    with torch.inference_mode():
        for batch in batches:
            model(normalise(batch, device)).float().cpu()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def run(images: int = 2048, workers: int | None = None) -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if workers is None:  # what the features rule uses on this machine
        workers = loader_workers(torch.get_num_threads(), device.type == "cuda")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        index = write_index(root, images)
        backbone = root / "backbone.pth"
        random_backbone(ARCH, 0, backbone, width=1.0, stem="imagenet")
        frame = pd.read_parquet(index)
        decoded = torch.from_numpy(np.stack([load_image(row, IMAGE_SIZE) for _, row in frame.iterrows()]))
        bare = bare_images_per_s(backbone, list(decoded.split(BATCH)), device)
        start = time.perf_counter()
        extract(str(backbone), [("bench", str(index), str(root / "features.h5"))], arch=ARCH, image_size=IMAGE_SIZE,
                batch_size=BATCH, method="bench", workers=workers)
        real = images / (time.perf_counter() - start)
    where = f"{device.type}, {ARCH} {IMAGE_SIZE} px, batch {BATCH}, {images} images, {workers} workers"
    return [
        dict(name=f"bare forward images/s ({where})", value=round(bare, 1), unit="images/s", target=None, ok=True),
        dict(name=f"extract images/s ({where})", value=round(real, 1), unit="images/s", target=None, ok=True),
        dict(name="extract / bare forward throughput", value=round(real / bare, 3), unit="ratio",
             target=f">= {TARGET}", ok=bool(real / bare >= TARGET)),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: as the features rule would)")
    args = parser.parse_args()
    for row in run(args.images, args.workers):
        print(f"{row['name']}: {row['value']} {row['unit']}" + (f" (target {row['target']})" if row["target"] else ""))
