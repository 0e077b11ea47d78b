"""What no CPU can show, in one run of a few minutes on one GPU (`make gpu-check`): MoCo v2 and Region Tracker steps of
resnet50 at 224 px in bf16 with channels_last, the real training loop, the training loop with the augmentations in
the workers and on the device (train.augment_on) and the share of step time it waits for its loader, JPEG decoding
on a core and with nvJPEG, feature extraction, roi_align on the GPU
against a float64 CPU reference, and with two GPUs one DDP step against one process with the same global batch and BN
splits. Without a GPU the same checks run at a tiny size (resnet18, 32 px), as the test suite runs them so that they
keep working; `--tiny` asks for that size anywhere.

    python benchmarks/gpu_check.py [--tiny] [--out results/gpu_check.csv]

Prints one row per measure and exits 1 when a row misses its target.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import bench_augment
import bench_features
import bench_train
import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from run import machine, print_table
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torchvision.io import decode_jpeg
from torchvision.ops import roi_align

from vidssl.core.images import planes_decoder_here
from vidssl.core.io import write_csv
from vidssl.evaluation.features import extract
from vidssl.models.backbone import random_backbone
from vidssl.training import distributed
from vidssl.training.batch_frames import JPEG, PLANES
from vidssl.training.device_augment import decodes_jpeg
from vidssl.training.methods import build_objective, get
from vidssl.training.optim import build_optimizer
from vidssl.training.samples import step_batches
from vidssl.training.train import set_up, train_step

FULL = dict(arch="resnet50", image_size=224, batch=128, queue=65536, bn_splits=8, layer3=1024, steps=20,
            real_steps=40, warmup=10, images=2048, feature_batch=256)
TINY = dict(arch="resnet18", image_size=32, batch=8, queue=32, bn_splits=2, layer3=256, steps=2, real_steps=3,
            warmup=1, images=32, feature_batch=16)
LAYER3_STRIDE = 16  # input pixels per layer3 cell with the imagenet stem
COLUMNS = ["check", "name", "value", "unit", "target", "ok", "machine"]


def row(check: str, name: str, value, unit: str, target: str | None = None, ok: bool = True) -> dict:
    return dict(check=check, name=name, value=value, unit=unit, target=target, ok=bool(ok))


def train_config(size: dict, steps: int, workers: int) -> dict:
    """MoCo v2's settings (queue 65536, momentum 0.999) at `size`; kNN and checkpoints off: they are not the step."""
    return {"seed": 0, "model": {"arch": size["arch"], "width": 1.0, "stem": "imagenet", "image_size": size["image_size"]},
            "objective": {"dim": 128, "queue": size["queue"], "momentum": 0.999, "temperature": 0.2,
                          "bn_splits": size["bn_splits"]},
            "train": {"steps": steps, "batch_size": size["batch"], "lr": 0.03, "weight_decay": 1e-4, "optimizer": "sgd",
                      "momentum": 0.9, "warmup_steps": 0, "clip_grad": 0, "augment_on": "workers", "workers": workers, "checkpoint_every": 10 ** 9,
                      "knn_every": 0, "knn_samples": 2, "gpus": 1}}


def step_rows(size: dict, device: torch.device, full: bool) -> list[dict]:
    """Bare optimiser steps (bf16 autocast and channels_last on CUDA): moco and fti share one model and step."""
    cfg = train_config(size, size["steps"], 0)
    seconds = bench_train.bare_step_seconds(cfg, device, size["steps"])
    images = 2 * size["batch"]
    ratio = float(np.median(seconds["region_tracker"]) / np.median(seconds["fti"]))
    where = f"{size['arch']} {size['image_size']} px, batch {size['batch']}"
    return [row("train step", f"moco v2 / fti step images/s ({where})", round(images / np.median(seconds["fti"]), 1),
                "images/s"),
            row("train step", f"region_tracker step images/s ({where})",
                round(images / np.median(seconds["region_tracker"]), 1), "images/s"),
            row("train step", "region_tracker / fti step time", round(ratio, 3), "ratio", "<= 1.3" if full else None,
                ratio <= 1.3 or not full)]


def real_loop_rows(size: dict, device: torch.device, root: Path) -> list[dict]:
    """vidssl.training.train.train over a chunk container with the loader workers this machine affords."""
    workers = max(1, min(14, (os.cpu_count() or 2) - 2)) if device.type == "cuda" else 0
    cfg = train_config(size, size["real_steps"], workers)
    world = bench_train.make_world(root / "world")
    images_per_s = bench_train.real_images_per_s("moco", world, cfg, root / "models", warmup=size["warmup"])
    return [row("train loop", f"moco real loop images/s ({size['arch']} {size['image_size']} px, {workers} workers)",
                round(images_per_s, 1), "images/s")]


def loop_with_waits(cfg: dict, world: dict, out: Path, warmup: int, frames: str | None = None) -> tuple[float, float]:
    """FTI's training loop (vidssl.training.train's set-up and steps, each step read back), the device path's frames
    in `frames` where given (else the form the run chose): images/s after `warmup` steps, and the share of that time
    spent waiting for the loader."""
    run = set_up(get("fti"), {k: world[k] for k in ("chunks", "frame_pairs")}, None, str(out), cfg, 0)
    run.frames = frames or run.frames
    run.stepper, t = run.model, cfg["train"]
    loader = DataLoader(run.data, batch_sampler=step_batches(0, t["steps"], t["batch_size"], 0, 1),
                        num_workers=t["workers"], pin_memory=run.device.type == "cuda", collate_fn=run.collate)
    waits, totals = [], []
    batches = iter(loader)
    for step in range(t["steps"]):
        start = time.perf_counter()
        batch = next(batches)
        waited = time.perf_counter() - start
        float(train_step(run, step, batch)[0])
        if step >= warmup:
            waits.append(waited), totals.append(time.perf_counter() - start)
    return len(totals) * 2 * t["batch_size"] / sum(totals), sum(waits) / sum(totals)


def augment_rows(size: dict, device: torch.device, root: Path) -> list[dict]:
    """train.augment_on: training images/s with the augmentations in the workers and on the device, the share of step
    time the loader keeps the step waiting; and JPEG decoding per image, OpenCV on one core against nvJPEG in a batch."""
    workers = max(1, min(14, (os.cpu_count() or 2) - 2)) if device.type == "cuda" else 0
    world, rows = bench_train.make_world(root / "augment_world"), []
    where = f"fti, {size['arch']} {size['image_size']} px from 128 px frames, batch {size['batch']}, {workers} workers"
    forms = {"workers": None, "device": None}  # the device path's frames as the run chooses them (frames_for)
    if device.type == "cuda":  # each form this GPU can be sent; one this machine lacks is left out, not mislabelled
        forms = {"workers": None}
        if planes_decoder_here():
            forms["device, workers decoding to YCbCr planes"] = PLANES
        if decodes_jpeg(device):
            forms["device, nvJPEG decoding"] = JPEG
    for name, frames in forms.items():
        cfg = train_config(size, size["real_steps"], workers)
        cfg["train"]["augment_on"] = name.split(",")[0]
        images_per_s, waiting = loop_with_waits(cfg, world, root / f"augment_{len(rows)}", size["warmup"], frames)
        rows += [row("augment", f"augment_on {name}: images/s ({where})", round(images_per_s, 1), "images/s"),
                 row("augment", f"augment_on {name}: share of step time waiting for the loader", round(waiting, 3),
                     "share")]
    blobs = bench_augment.frames(size["feature_batch"])
    start = time.perf_counter()
    for blob in blobs:
        bench_augment.read_decoded(blob)
    rows.append(row("augment", "JPEG decode ms per 256 px frame (libjpeg-turbo on one core, as the workers decode)",
                    round((time.perf_counter() - start) / len(blobs) * 1000, 3), "ms"))
    if decodes_jpeg(device):
        tensors = [torch.from_numpy(blob) for blob in blobs]
        decode_jpeg(tensors, device=device)
        torch.cuda.synchronize()
        start = time.perf_counter()
        decode_jpeg(tensors, device=device)
        torch.cuda.synchronize()
        rows.append(row("augment", f"JPEG decode ms per 256 px frame (nvJPEG, batch of {len(blobs)})",
                        round((time.perf_counter() - start) / len(blobs) * 1000, 3), "ms"))
    return rows


def feature_rows(size: dict, root: Path) -> list[dict]:
    """vidssl.evaluation.features.extract on an evaluation index, with the loader workers the features rule would use."""
    index = bench_features.write_index(root, size["images"])
    backbone = root / "backbone.pth"
    random_backbone(size["arch"], 0, backbone, width=1.0, stem="imagenet")
    start = time.perf_counter()
    extract(str(backbone), [("check", str(index), str(root / "features.h5"))], arch=size["arch"],
            image_size=size["image_size"], batch_size=size["feature_batch"], method="check")
    images_per_s = size["images"] / (time.perf_counter() - start)
    return [row("features", f"extract images/s ({size['arch']} {size['image_size']} px, {size['images']} images)",
                round(images_per_s, 1), "images/s")]


def roi_align_rows(size: dict, device: torch.device) -> list[dict]:
    """One box per image on a layer3-sized map in channels_last float32 (autocast runs roi_align in float32), against
    roi_align in float64 on the CPU; and its time on the device and on the CPU."""
    generator = torch.Generator().manual_seed(0)
    n, side, image = size["batch"], max(1, size["image_size"] // LAYER3_STRIDE), size["image_size"]
    layer3 = torch.randn(n, size["layer3"], side, side, generator=generator)
    corner = torch.rand(n, 2, generator=generator) * image / 2
    boxes = torch.cat([corner, corner + 1 + torch.rand(n, 2, generator=generator) * image / 2], dim=1)
    rois = torch.cat([torch.arange(n, dtype=boxes.dtype)[:, None], boxes], dim=1)

    def align(features, regions):
        return roi_align(features, regions, side, spatial_scale=1 / LAYER3_STRIDE, sampling_ratio=2, aligned=True)

    reference = align(layer3.double(), rois.double())
    on_device = layer3.to(device).contiguous(memory_format=torch.channels_last)
    error = float((align(on_device, rois.to(device)).double().cpu() - reference).abs().max())
    times = {}
    for where, features, regions in ((device.type, on_device, rois.to(device)), ("cpu", layer3, rois)):
        align(features, regions)
        if features.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            align(features, regions)
        if features.is_cuda:
            torch.cuda.synchronize()
        times[where] = (time.perf_counter() - start) / 10 * 1000
    return [row("roi_align", f"roi_align {device.type} float32 vs cpu float64, max abs difference", f"{error:.2e}", "",
                "<= 1e-4", error <= 1e-4),
            *(row("roi_align", f"roi_align ms per batch of {n} ({where})", round(ms, 3), "ms")
              for where, ms in times.items())]


def global_batch(size: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One seeded global batch of two views and a box in each (the same in every process)."""
    generator = torch.Generator().manual_seed(1)
    n, image = size["batch"], size["image_size"]
    x_q, x_k = (torch.randn(n, 3, image, image, generator=generator) for _ in range(2))
    boxes = torch.tensor([[image * 0.1, image * 0.2, image * 0.7, image * 0.9]]).repeat(n, 1)
    return x_q, x_k, boxes


def region_tracker_step(size: dict, device: torch.device) -> dict:
    """One float32 Region Tracker step on this rank's share of the global batch (DDP under a process group)."""
    cfg = train_config(size, 1, 0)
    torch.manual_seed(0)
    model = build_objective(get("region_tracker"), cfg, 0).to(device)  # BN splits per rank: bn_splits // world
    world, rank = distributed.world_size(), distributed.rank()
    stepper = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world > 1 else model
    share = slice(rank * size["batch"] // world, (rank + 1) * size["batch"] // world)
    x_q, x_k, boxes = (t[share].to(device) for t in global_batch(size))
    optimizer = build_optimizer(model.trainable(), cfg["train"])
    before = {k: v.detach().cpu().clone() for k, v in model.encoder_q.named_parameters()}
    loss = stepper({"x_q": x_q, "x_k": x_k, "boxes_q": boxes, "boxes_k": boxes}, 0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": float(distributed.average(loss.detach())), "before": before,
            "after": {k: v.detach().cpu().clone() for k, v in model.encoder_q.named_parameters()}}


def ddp_worker(rank: int, world: int, port: int, size: dict, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    device = torch.device(f"cuda:{rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        result = region_tracker_step(size, device)
        if rank == 0:
            torch.save(result, out)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ddp_rows(size: dict, device: torch.device, root: Path) -> list[dict]:
    """Two processes (two GPUs, or two CPU processes under gloo) against one, in float32 without TF32."""
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        return [row("ddp", "DDP step against one process: skipped, one GPU", None, "")]
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    single = region_tracker_step(size, device)
    mp.spawn(ddp_worker, args=(2, free_port(), size, str(root / "ddp.pt")), nprocs=2, join=True)
    ddp = torch.load(root / "ddp.pt", weights_only=True)
    loss_gap = abs(ddp["loss"] - single["loss"]) / abs(single["loss"])
    update = max(float((single["after"][k] - single["before"][k]).abs().max()) for k in single["after"])
    weight_gap = max(float((ddp["after"][k] - single["after"][k]).abs().max()) for k in single["after"]) / update
    where = f"region_tracker, global batch {size['batch']}, bn_splits {size['bn_splits']}, 2 processes vs 1"
    return [row("ddp", f"DDP loss vs one process, relative difference ({where})", f"{loss_gap:.2e}", "", "<= 1e-4",
                loss_gap <= 1e-4),
            row("ddp", "DDP weights after the step vs one process, max difference / max update", f"{weight_gap:.2e}", "",
                "<= 1e-3", weight_gap <= 1e-3)]


def run(tiny: bool = False) -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    full = device.type == "cuda" and not tiny
    size = FULL if full else TINY
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        return [*step_rows(size, device, full), *real_loop_rows(size, device, root),
                *augment_rows(size, device, root), *feature_rows(size, root),
                *roi_align_rows(size, device), *ddp_rows(size, device, root)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the CPU size (resnet18, 32 px) on any device")
    parser.add_argument("--out", default="results/gpu_check.csv")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    frame = pd.DataFrame(run(args.tiny), columns=COLUMNS[:-1]).assign(machine=machine())
    frame["target"] = frame.target.fillna("")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_csv(frame, args.out)
    print_table(frame.rename(columns={"check": "benchmark"}))
    print(f"{len(frame)} rows in {time.perf_counter() - started:.0f} s on {frame.machine[0]}; written to {args.out}")
    return 0 if frame.ok.all() else 1


if __name__ == "__main__":
    sys.exit(main())
