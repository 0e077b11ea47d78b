"""One bare optimiser step of every objective on every view source beside MoCo v2 on frame pairs (fti), at the same
size, batch and backbone: the step-time ratio next to its FLOP ratio (torch.utils.flop_counter), as the Region
Tracker's row in bench_train. Frames and frame pairs cost the same (two views); tracked patches add the box branch;
DINO adds its local crops and its head. The objectives' sections are config/objectives.yaml's over config.yaml's.

    python benchmarks/bench_objectives.py [--steps N] [--size PX]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from vidssl.training.augment import Crops
from vidssl.training.methods import build_objective, get
from vidssl.training.optim import build_optimizer

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = ("moco", "byol", "dino")
VIEWS = ("frame", "frame_pair", "tracked_patch")


def config(size: int, batch: int) -> dict:
    """config.yaml's sections with config/objectives.yaml over them, at `size` px, full-width resnet18."""
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    overlay = yaml.safe_load((ROOT / "config" / "objectives.yaml").read_text())
    sections = {name: base[name] | overlay.get(name, {}) for name in OBJECTIVES}
    model = base["model"] | {"arch": "resnet18", "width": 1.0, "image_size": size}
    return {"seed": 0, "model": model, "sections": sections,
            "train": base["train"] | {"batch_size": batch, "steps": 100, "workers": 0}}


def batch_for(method, cfg: dict) -> dict:
    """Random views of a batch as the method's view source makes them."""
    size, batch = cfg["model"]["image_size"], cfg["train"]["batch_size"]
    generator = torch.Generator().manual_seed(0)
    views = {key: torch.randn(batch, 3, size, size, generator=generator) for key in ("x_q", "x_k")}
    if method.view == "tracked_patch":
        box = torch.tensor([[0.1, 0.2, 0.7, 0.9]]) * size
        views |= {"boxes_q": box.repeat(batch, 1), "boxes_k": (box + 2).repeat(batch, 1)}
    crops = Crops.of(size, cfg["sections"][method.objective])
    if crops.local:
        views["x_local"] = torch.randn(batch, crops.local, 3, crops.local_size, crops.local_size, generator=generator)
    return views


def stepper(name: str, cfg: dict):
    """One optimiser step of `name`'s objective on a fixed batch, as a function returning its seconds."""
    method = get(name)
    torch.manual_seed(0)
    model = build_objective(method, cfg | {"objective": cfg["sections"][method.objective]}, 0)
    optimizer = build_optimizer(model.trainable(), cfg["train"])
    views = batch_for(method, cfg)

    def step(counted: int = 0) -> float:
        start = time.perf_counter()
        loss = model(views, counted)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        model.before_step(counted)
        optimizer.step()
        model.after_step(counted)
        return time.perf_counter() - start

    return step


def flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def run(steps: int = 6, size: int = 64, batch: int = 32) -> list[dict]:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = config(size, batch)
    names = [f"{o}-{v}" for o in OBJECTIVES for v in VIEWS]
    steppers = {name: stepper(name, cfg) for name in names}
    counted = {name: flops(step) for name, step in steppers.items()}
    times = {name: [] for name in names}
    for index in range(2 + steps):  # interleaved, so a shared machine's slow moments fall on every method alike
        for name, step in steppers.items():
            seconds = step()
            if index >= 2:
                times[name].append(seconds)
    base = "moco-frame_pair"
    rows = []
    for name in names:
        measured = float(np.median(times[name]) / np.median(times[base]))
        flop_ratio = counted[name] / counted[base]
        rows += [dict(name=f"{name} / fti step time (bare, resnet18 {size} px, batch {batch})", value=round(measured, 3),
                      unit="ratio", target=None, ok=True),
                 dict(name=f"{name} / fti FLOPs", value=round(flop_ratio, 3), unit="ratio", target=None, ok=True),
                 dict(name=f"{name}: step-time ratio / FLOP ratio", value=round(measured / flop_ratio, 3),
                      unit="ratio", target="0.9-1.1", ok=bool(0.9 <= measured / flop_ratio <= 1.1))]
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    for row in run(args.steps, args.size):
        print(json.dumps(row))
