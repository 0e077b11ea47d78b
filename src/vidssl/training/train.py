"""Training of one method (an objective on a view source: vidssl.training.methods) on one device or under torchrun
(DistributedDataParallel), in the phases of DINO's train_dino: set-up, resume, the steps (one `train_step` each),
checkpoint and export. Nothing here names an objective, a view source or a backbone.

`launch` starts a run in this process or, for several GPUs, under torchrun, whose processes each enter through `main`,
the command line below it. Samples are a function of (seed, index) (see vidssl.training.samples), so a run repeats exactly.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torchvision
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from vidssl.core.devices import claim_gpus
from vidssl.core.errors import UserError
from vidssl.core.io import atomic_path, write_csv
from vidssl.datasets.labelled import list_labelled
from vidssl.models.backbone import export_backbone
from vidssl.training import distributed
from vidssl.training.augment import Crops
from vidssl.training.batch_frames import JPEG, RGB
from vidssl.training.device_augment import collate, frames_for, render_views, resolve
from vidssl.training.fingerprint import describe, differences, run_identity, weight_settings
from vidssl.training.knn_monitor import KnnMonitor
from vidssl.training.methods import INPUTS, Method, build_objective, check_inputs, get, with_objective_optimiser
from vidssl.training.objective import Objective
from vidssl.training.optim import base_lr, build_optimizer, scheduled_lr
from vidssl.training.samples import TrainingSamples, step_batches

CSV_FIELDS = ["step", "epoch", "loss", "lr", "images_per_s", "knn_top1"]  # then the objective's monitor columns


def run_info(cfg: dict, device: torch.device) -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True,
                                  check=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    status = git("status", "--porcelain")
    return {"config": cfg, "git_commit": git("rev-parse", "HEAD"), "git_dirty": None if status is None else bool(status),
            "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__},
            "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
            "python": platform.python_version()}


class LossWatch:
    """Each step's loss read off the device one step late, so that the GPU always has the next step queued; a NaN or
    inf stops the run at the step that made it, before a checkpoint or the backbone holds its weights."""

    def __init__(self):
        self.pending = []  # (history row, the loss on the host or on its way there, the copy's CUDA event)

    def add(self, row: dict) -> None:
        loss, event = row["loss"], None
        if loss.device.type == "cuda":
            host = torch.empty((), dtype=loss.dtype, pin_memory=True)
            host.copy_(loss, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            loss = host
        self.pending.append((row, loss, event))

    def settle(self, keep: int = 0) -> None:
        """Read all but the newest `keep` losses, in step order; raise UserError at the first that is not finite."""
        while len(self.pending) > keep:
            row, loss, event = self.pending.pop(0)
            if event is not None:
                event.synchronize()
            row["loss"] = float(loss)
            if not math.isfinite(row["loss"]):
                raise UserError(f"loss became {row['loss']} at step {row['step']} (lr {row['lr']:.3g}); no backbone "
                                "is written: lower train.lr, or look for broken inputs")


@dataclass
class Run:
    """What the phases of one training run share."""
    method: Method
    cfg: dict
    data: TrainingSamples
    labelled: list[tuple[str, int]] | None
    device: torch.device
    model: Objective
    optimizer: torch.optim.Optimizer
    out: Path
    identity: dict  # what the run is made from (vidssl.training.fingerprint): a resume copy must match it
    frames: str = RGB  # the form of the device path's frames: what the device renders cheapest (frames_for)
    stepper: torch.nn.Module | None = None  # the model, wrapped by DistributedDataParallel under torchrun
    start: int = 0
    history: list[dict] = field(default_factory=list)
    losses: LossWatch = field(default_factory=LossWatch)

    @property
    def steps(self) -> int:
        return int(self.cfg["train"]["steps"])

    @property
    def batch(self) -> int:
        return int(self.cfg["train"]["batch_size"])

    @property
    def base_lr(self) -> float:
        return base_lr(self.cfg["train"])

    @property
    def trunk(self) -> torch.nn.Module:
        return self.model.trunk()

    @property
    def columns(self) -> list[str]:
        return CSV_FIELDS + list(self.model.monitor_columns)

    @property
    def collate(self) -> Callable[[list[dict]], dict]:
        """The loader's collate_fn: the device path's frames in this run's form."""
        return functools.partial(collate, form=self.frames)

    @property
    def resume_path(self) -> Path:
        """Beside the outputs, which Snakemake removes before a job and after a failed one, and not one of them: it
        survives a killed job, and deleting the output folder deletes it too."""
        return self.out / "resume.pt"


def check_settings(method: Method, cfg: dict, files: dict, labelled: str | None) -> None:
    """The user mistakes that would otherwise surface mid-run, checked before anything is read."""
    unknown = set(files) - set(INPUTS)
    if unknown:
        raise TypeError(f"train() got file sets {sorted(unknown)}, not among {', '.join(INPUTS)}")
    batch, world = int(cfg["train"]["batch_size"]), distributed.world_size()
    if batch % world:
        raise UserError(f"train.batch_size {batch} is not divisible by the {world} GPUs")
    check_inputs(method, files, labelled)


def set_up(method: Method, files: dict, labelled: str | None, out_dir: str, cfg: dict, local_rank: int) -> Run:
    """The device, the samples, and the seeded model with its optimiser."""
    cfg = with_objective_optimiser(cfg)
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    items, classes = list_labelled(labelled, cfg.get("labelled_split")) if labelled else (None, [])
    seed = int(cfg["seed"])
    size = cfg["model"]["image_size"]
    where = resolve(cfg["train"]["augment_on"], device)  # where the views' pixels are made
    frames = frames_for(device) if where == "device" else RGB
    data = TrainingSamples.from_files(method, files, items, image_size=size, seed=seed,
                                      crops=Crops.of(size, cfg.get("objective") if method.config_section else None),
                                      augment_on=where)
    torch.manual_seed(seed)
    model = build_objective(method, cfg, len(classes)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model.trainable(), cfg["train"])
    settings = weight_settings(cfg)
    # as `auto` resolved on this device; planes and RGB give the same pixels, the device's JPEG decoder its own
    settings["train"]["augment_on"] = where + " (JPEGs decoded there)" * (frames == JPEG)
    identity = run_identity(method.name, settings, {key: files[key] for key in method.inputs}, labelled,
                            items)
    return Run(method, cfg, data, items, device, model, optimizer, out=Path(out_dir), identity=identity,
               frames=frames)


def resume(run: Run, log: logging.Logger) -> None:
    """Continue from the resume copy when it is readable and was made from the same method, config and inputs."""
    path = run.resume_path
    if not path.is_file():
        return
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a resume copy is a convenience: a bad one means starting over, not failing
        log.warning("ignoring unreadable resume copy %s (%s)", path, error)
        return
    changed = differences(state.get("identity"), run.identity)
    if changed:
        log.warning("ignoring resume copy %s, made from other settings or inputs (%s): starting from step 0",
                    path, describe(changed))
        return
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    if run.device.type == "cuda" and state["rng"]["cuda"] is not None:
        torch.cuda.set_rng_state(state["rng"]["cuda"], run.device)
    run.start, run.history = int(state["step"]), list(state["history"])
    log.info("%s: resuming from %s at step %d of %d", run.method.name, path, run.start, run.steps)


def train_step(run: Run, step: int, batch: dict) -> tuple[torch.Tensor, float]:
    """One optimiser step on this rank's share of a global batch: the loss averaged over the ranks (still on the
    device), and the learning rate used."""
    lr = scheduled_lr(run.base_lr, step, run.steps, int(run.cfg["train"]["warmup_steps"]))
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    batch = render_views({k: v.to(run.device, non_blocking=True) for k, v in batch.items()})
    if run.device.type == "cuda":
        for key in run.data.view.IMAGE_KEYS:
            batch[key] = batch[key].contiguous(memory_format=torch.channels_last)
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.device.type == "cuda"):
        loss = run.stepper(batch, step)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.model.before_step(step)
    if run.cfg["train"]["clip_grad"]:
        torch.nn.utils.clip_grad_norm_([p for _, p in run.model.trainable()], run.cfg["train"]["clip_grad"])
    run.optimizer.step()
    run.model.after_step(step)
    return distributed.average(loss.detach()), lr


def monitor_draw(run: Run, step: int) -> Callable[[], dict]:
    """Seeded random batches for the objective's monitor at `step`, each this rank's share of a global batch, read
    as the DataLoader reads a batch (one HDF5 call per shard)."""
    rng = np.random.default_rng([int(run.cfg["seed"]), step])
    per_rank = run.batch // distributed.world_size()

    def draw() -> dict:
        ids = rng.integers(0, len(run.data), run.batch)[distributed.rank() * per_rank:][:per_rank]
        samples = run.collate(run.data.__getitems__(ids.tolist()))
        return render_views({k: v.to(run.device) for k, v in samples.items()})

    return draw


def train_steps(run: Run, last: int) -> None:
    """Steps run.start to `last`, as DINO's train_one_epoch: a history row each, the kNN monitor every
    train.knn_every steps and at the end, a checkpoint every train.checkpoint_every."""
    t, seed = run.cfg["train"], int(run.cfg["seed"])
    loader = torch.utils.data.DataLoader(
        run.data, batch_sampler=step_batches(run.start, run.steps, run.batch, distributed.rank(),
                                             distributed.world_size()),
        num_workers=int(t["workers"]), persistent_workers=int(t["workers"]) > 0, pin_memory=run.device.type == "cuda",
        collate_fn=run.collate,
        generator=torch.Generator().manual_seed(seed))  # else creating the iterator draws from the global RNG
    knn = KnnMonitor(run.labelled, run.cfg["model"]["image_size"], seed, int(t["knn_samples"])) \
        if run.labelled and t["knn_every"] and distributed.is_main() else None
    run.stepper.train()
    progress = tqdm(total=last - run.start, desc=f"train {run.method.name}", disable=not distributed.is_main(),
                    file=sys.stderr)
    clock = time.perf_counter()
    for step, batch in zip(range(run.start, last), loader):
        loss, lr = train_step(run, step, batch)
        done = step + 1
        row = {"step": done, "epoch": done * run.batch / len(run.data), "loss": loss, "lr": lr,
               "images_per_s": run.batch * len(run.data.view.IMAGE_KEYS) / (time.perf_counter() - clock),
               "knn_top1": float("nan"), **dict.fromkeys(run.model.monitor_columns, float("nan"))}
        monitored = bool(t["knn_every"]) and (done % t["knn_every"] == 0 or done == run.steps)
        if knn is not None and monitored:
            row["knn_top1"] = knn(run.trunk, run.device)
        if monitored:
            row.update(run.model.monitor(monitor_draw(run, done), done))
        run.history.append(row)
        run.losses.add(row)
        run.losses.settle(keep=1)
        progress.update()
        if done % 20 == 0 and len(run.history) > 1:
            progress.set_postfix(loss=f"{run.history[-2]['loss']:.3f}")  # the newest loss read off the device
        if done % t["checkpoint_every"] == 0 and done < last:
            run.losses.settle()
            checkpoint(run, done)
        clock = time.perf_counter()
    run.losses.settle()
    progress.close()


def checkpoint(run: Run, step: int) -> None:
    """checkpoint.pt and the resume copy (the same state), and train.csv so far (its losses settled); only rank 0
    writes."""
    if not distributed.is_main():
        return
    cuda = run.device.type == "cuda"
    rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(run.device) if cuda else None}
    state = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(), "step": step,
             "epoch": step * run.batch / len(run.data), "scheduler": {"base_lr": run.base_lr, "steps": run.steps, "warmup_steps": int(run.cfg["train"]["warmup_steps"])},
             "identity": run.identity, "config": run.cfg, "rng": rng, "history": run.history}
    for path in (run.out / "checkpoint.pt", run.resume_path):
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    write_csv(pd.DataFrame(run.history, columns=run.columns), run.out / "train.csv")


def export(run: Run, final: int, log: logging.Logger) -> None:
    """The trained backbone and the run's provenance (config, commit, versions, device); only rank 0 writes. A finished
    run removes its resume copy, which a later run (--forcerun, other inputs) could otherwise take for its own."""
    if not distributed.is_main():
        return
    export_backbone(run.trunk.state_dict(), run.out / "backbone.pth")
    with atomic_path(run.out / "run.json") as tmp:
        tmp.write_text(json.dumps(run_info(run.cfg, run.device), indent=2))
    if final == run.steps:
        run.resume_path.unlink(missing_ok=True)
    log.info("%s: %d steps done, final loss %.4f", run.method.name, final,
             run.history[-1]["loss"] if run.history else float("nan"))


def train(method: str, *, out_dir: str, cfg: dict, labelled: str | None = None, log: logging.Logger | None = None,
          stop_at: int | None = None, **files: list[str]) -> dict:
    """Train `method` on `files` (the file sets vidssl.training.methods.INPUTS names, e.g. chunks=[...]) and the labelled
    ImageFolder, writing checkpoint.pt, backbone.pth, train.csv and run.json into out_dir; return a summary.

    `stop_at` ends this process after that step with a resumable checkpoint (time-sliced jobs); rerunning resumes.
    """
    log = log or logging.getLogger(__name__)
    spec = get(method)
    local_rank = distributed.join(cfg["train"]["gpus"])
    check_settings(spec, cfg, files, labelled)
    run = set_up(spec, files, labelled, out_dir, cfg, local_rank)
    resume(run, log)
    run.stepper = DistributedDataParallel(run.model, device_ids=[run.device.index] if run.device.type == "cuda"
                                          else None) if distributed.distributed() else run.model
    last = min(run.steps, stop_at) if stop_at is not None else run.steps
    train_steps(run, last)
    final = max(run.start, last)
    checkpoint(run, final)
    export(run, final, log)
    distributed.barrier()
    history = run.history
    return {"method": method, "steps": final, "resumed_from": run.start, "loss": [r["loss"] for r in history],
            "knn_top1": next((r["knn_top1"] for r in reversed(history) if not math.isnan(r["knn_top1"])), float("nan")),
            "device": str(run.device), "world": distributed.world_size()}


def launch(job: dict, *, log: logging.Logger | None = None) -> None:
    """Run `job` (train()'s keywords) on train.gpus devices: in this process for one, else under torchrun with a
    process per GPU, each entering through main()."""
    gpus = job["cfg"]["train"]["gpus"]
    claim_gpus(gpus)
    if gpus == 1:
        train(**job, log=log)
        return
    with tempfile.TemporaryDirectory(prefix="vidssl-torchrun-") as scratch:
        config_json = Path(scratch) / "config.json"
        config_json.write_text(json.dumps(job["cfg"]))
        # An argv list, no shell: config values never reach a shell parser.
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
                   "-m", "vidssl.training.train", "--config-json", str(config_json), "--method", job["method"],
                   "--out-dir", job["out_dir"], "--error-dir", scratch]
        for key in (*INPUTS, "labelled"):
            if job.get(key):
                command += [option(key), *([job[key]] if isinstance(job[key], str) else job[key])]
        log.info("starting %s", command)
        finished = subprocess.run(command, stderr=sys.stderr, stdout=sys.stderr)
        if finished.returncode:
            raise child_error(Path(scratch), finished.returncode)


def child_error(scratch: Path, code: int) -> Exception:
    """The one line the lowest rank that stopped on a UserError left in `scratch`, else a pointer to the tracebacks."""
    stopped = sorted(scratch.glob("rank*.error"), key=lambda path: int(path.stem.removeprefix("rank")))
    if stopped:
        return UserError(stopped[0].read_text())
    return RuntimeError(f"torchrun's training processes failed (exit status {code}); their tracebacks are in the log")


def option(key: str) -> str:
    """The command-line option of one of train()'s keywords."""
    return "--" + key.replace("_", "-")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train one vidssl method (run under torchrun for several GPUs).")
    parser.add_argument("--config-json", required=True, help="JSON: the run's seed, model, objective and train sections")
    parser.add_argument("--method", required=True, help="a method name (vidssl.training.methods.get)")
    for key, files in INPUTS.items():
        parser.add_argument(option(key), nargs="*", default=None, help=f"the {files}")
    parser.add_argument(option("labelled"), default=None, help="a labelled ImageFolder set")
    parser.add_argument(option("out_dir"), required=True)
    parser.add_argument(option("error_dir"), default=None, help="where a rank that stops on a user mistake says why")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    files = {key: getattr(args, key) for key in INPUTS if getattr(args, key)}
    try:
        cfg = json.loads(Path(args.config_json).read_text())
        train(args.method, labelled=args.labelled, out_dir=args.out_dir, cfg=cfg, **files)
    except UserError as error:
        if args.error_dir:
            (Path(args.error_dir) / f"rank{os.environ.get('RANK', 0)}.error").write_text(str(error))
        sys.exit(f"error: {error}")
    finally:
        distributed.leave()


if __name__ == "__main__":
    main()
