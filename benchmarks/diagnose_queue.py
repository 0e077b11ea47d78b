"""Is a MoCo run's loss learning, or the queue's staleness? `python benchmarks/diagnose_queue.py [--lr X] [--steps N]`

Trains MoCo v2 on the chunks of a finished run (default `results/chunks/*.h5`, the default world after `make run`) with
`config/config.yaml`'s settings as the `train` rule does for `moco`, and at more steps than the kNN monitor's scores the fresh-queue
scoring's held batch (`train.monitor_draw`) twice: against the queue that training holds (keys from the key encoders
of the last K / batch steps) and against K keys the current key encoder computes now (`train.csv` records the second at
the monitor's steps). Learning lowers both; a network that tells the positive key by its freshness lowers only the
first. Also prints q . k+ and the mean cosine between queries (1: every frame embedded alike). docs/results.md ("the
early dip is the queue's staleness") has the figures.
"""
from __future__ import annotations

import argparse
import glob
import tempfile
from pathlib import Path

import torch
import yaml

from vidssl.training import methods, train
from vidssl.training.objectives.moco import moco_loss, statistics_kept
from vidssl.training.optim import scheduled_lr
from vidssl.training.samples import step_batches

ROOT = Path(__file__).resolve().parents[1]
PROBE_STEPS = (10, 20, 40, 60, 80, 100, 140, 200)


def settings(lr: float | None, steps: int | None) -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    changes = {"workers": 0, "knn_every": 0, **({"lr": lr} if lr else {}), **({"steps": steps} if steps else {})}
    return {"seed": config["seed"], "model": config["model"], "objective": config["moco"],
            "train": {**config["train"], **changes}}


@torch.no_grad()
def scores(run: train.Run, step: int) -> dict[str, float]:
    """The monitor's held batch at `step`: its loss against training's queue and against a fresh one, q . k+, and
    the mean cosine between its queries."""
    model = run.model
    draw = train.monitor_draw(run, step)
    held = draw()
    fill = [draw()["x_k"] for _ in range(-(-model.queue.shape[1] // run.batch))]
    with statistics_kept(model):
        q, _ = model.encode(model.encoder_q, held["x_q"], None)
        k, _ = model.keys(held["x_k"], None)
    off_diagonal = ~torch.eye(len(q), dtype=torch.bool)
    return {"stale": moco_loss(q, k, model.queue.clone(), model.temperature).item(),
            "fresh": model.fresh_queue_loss(held["x_q"], held["x_k"], fill).item(),
            "positive_cosine": (q * k).sum(1).mean().item(), "query_cosine": (q @ q.T)[off_diagonal].mean().item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default=str(ROOT / "results" / "chunks" / "*.h5"), help="glob of chunk files")
    parser.add_argument("--lr", type=float, help="train.lr (default: config/config.yaml's)")
    parser.add_argument("--steps", type=int, help="train.steps (default: config/config.yaml's)")
    args = parser.parse_args()
    chunks = sorted(glob.glob(args.chunks))
    if not chunks:
        raise SystemExit(f"no chunk files match {args.chunks}: run `make run` first")
    with tempfile.TemporaryDirectory() as out:
        run = train.set_up(methods.get("moco"), {"chunks": chunks}, None, out, settings(args.lr, args.steps), 0)
        run.stepper = run.model.train()
        for step, ids in enumerate(step_batches(0, run.steps, run.batch, 0, 1)):
            train.train_step(run, step, torch.utils.data.default_collate(run.data.__getitems__(ids)))
            if step + 1 in PROBE_STEPS or step + 1 == run.steps:
                score = scores(run, step + 1)
                print(f"step {step + 1:5d}  lr {scheduled_lr(run.base_lr, step, run.steps, run.cfg['train']['warmup_steps']):.4f}  "
                      f"loss vs training's queue {score['stale']:.3f}  vs a fresh queue {score['fresh']:.3f}  "
                      f"q.k+ {score['positive_cosine']:.3f}  query cosine {score['query_cosine']:.3f}", flush=True)


if __name__ == "__main__":
    main()
