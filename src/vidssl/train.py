"""Training of one method: MoCo v2 (`moco`), Frame Temporal Invariance (`fti`), FTI with tracks (`region_tracker`) and
a supervised baseline (`supervised`), on one device or under torchrun (DistributedDataParallel).

Sample j of step s is the global index s * batch + j; its content (which frame/pair, which track, the augmentation) is a
pure function of (seed, index). Runs therefore repeat exactly whatever the number of workers or GPUs, and a resumed
run sees the same data as an uninterrupted one. Region Tracker: one track is drawn per frame pair among the pair's
tracks; a pair without tracks, or whose box leaves a crop (see vidssl.augment), uses the whole crops as its patch pair.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from vidssl.augment import MocoV2Augment, eval_transform
from vidssl.backbone import export_backbone, pooled_features
from vidssl.io import UserError, atomic_path, read_parquet, save_figure, write_csv
from vidssl.moco import MoCo
from vidssl.chunk_store import ChunkStore

METHODS = ("moco", "fti", "region_tracker", "supervised")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
CSV_FIELDS = ["step", "epoch", "loss", "lr", "images_per_s", "knn_top1"]


def list_labelled(root: str | Path) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, label) of every image of an ImageFolder root `<class>/<image>`, and the class names."""
    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
    items = [(str(p), label) for label, name in enumerate(classes)
             for p in sorted((root / name).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise UserError(f"labelled set {root}: no <class>/<image>.jpg files")
    return items, classes


def read_image(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path}: unreadable image")
    return image


class TrainingSamples(torch.utils.data.Dataset):
    """Index i -> one training sample; an epoch is a seeded permutation of the method's units (frames, pairs, images)."""

    def __init__(self, method: str, *, stores: list[ChunkStore], frame_pairs: pd.DataFrame | None,
                 tracks: dict | None, labelled: list[tuple[str, int]] | None, image_size: int, seed: int):
        self.method, self.stores, self.tracks, self.labelled, self.seed = method, stores, tracks, labelled, seed
        self.augment = MocoV2Augment(image_size)
        if method == "moco":
            self.units = np.concatenate([np.stack([np.full(len(s), i), np.arange(len(s))], 1) for i, s in enumerate(stores)])
        elif method in ("fti", "region_tracker"):
            self.units = frame_pairs[["video", "chunk", "frame_a", "frame_b"]].to_numpy()
            self.store_of = {key: i for i, s in enumerate(stores) for key in zip(s.chunks().video, s.chunks().chunk)}
            missing = {(v, int(c)) for v, c, _, _ in self.units} - set(self.store_of)
            if missing:
                raise UserError(f"frame pairs name {len(missing)} chunks absent from the chunk containers, "
                                f"e.g. {sorted(missing)[:3]}")
        else:
            self.units = np.arange(len(labelled))
        if len(self.units) == 0:
            raise UserError(f"{method}: no training samples (empty chunks/pairs/labelled set)")
        self._epoch, self._order = None, None

    def __len__(self) -> int:
        return len(self.units)

    def order(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(len(self.units), generator=generator)
        return self._order

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """The samples at `indices` (the DataLoader asks for a whole batch): the frames they need are read with one
        HDF5 call per shard, since a call per frame cost about a quarter of a sample."""
        units = []
        for index in indices:
            epoch, position = divmod(index, len(self.units))
            units.append(self.units[int(self.order(epoch)[position])])
        keys = [self.frame_keys(unit) for unit in units]
        frames = self.read_frames({key for unit_keys in keys for key in unit_keys})
        return [self.sample(unit, [frames[key] for key in unit_keys], np.random.default_rng([self.seed, index]))
                for index, unit, unit_keys in zip(indices, units, keys)]

    def frame_keys(self, unit) -> list[tuple[int, int]]:
        """(store, row) of each frame a unit needs."""
        if self.method == "moco":
            return [(int(unit[0]), int(unit[1]))]
        if self.method in ("fti", "region_tracker"):
            video, chunk, frame_a, frame_b = unit
            store = self.store_of[(video, int(chunk))]
            return [(store, self.stores[store].row(video, chunk, frame)) for frame in (frame_a, frame_b)]
        return []

    def read_frames(self, keys: set[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
        """The images at (store, row) keys, one HDF5 call per store (rows in increasing order, as HDF5 wants them)."""
        frames = {}
        for store in {store for store, _ in keys}:
            rows = sorted(row for s, row in keys if s == store)
            frames.update(zip(((store, row) for row in rows), self.stores[store].read_rows(rows)))
        return frames

    def sample(self, unit, images: list[np.ndarray], rng: np.random.Generator) -> dict:
        if self.method == "moco":
            return {"x_q": self.augment(images[0], None, rng)[0], "x_k": self.augment(images[0], None, rng)[0]}
        if self.method == "fti":
            return {"x_q": self.augment(images[0], None, rng)[0], "x_k": self.augment(images[1], None, rng)[0]}
        if self.method == "region_tracker":
            image_a, image_b = images
            candidates = self.tracks.get((unit[0], int(unit[1]), int(unit[2]), int(unit[3])))
            box_a = box_b = None
            if candidates is not None:
                box_a, box_b = np.split(candidates[rng.integers(len(candidates))], 2)
            x_q, boxes_q, kept_q = self.augment(image_a, box_a, rng)
            x_k, boxes_k, kept_k = self.augment(image_b, box_b, rng)
            tracked = candidates is not None and kept_q and kept_k
            if not tracked:  # whole crops: the patch pair is the frame pair seen through layer3 ROI pooling
                boxes_q = boxes_k = torch.tensor([0.0, 0.0, x_q.shape[-1], x_q.shape[-2]])
            return {"x_q": x_q, "x_k": x_k, "boxes_q": boxes_q, "boxes_k": boxes_k, "tracked": tracked}
        path, label = self.labelled[int(unit)]
        return {"x": self.augment(read_image(path), None, rng)[0], "y": label}


def step_batches(start: int, steps: int, batch: int, rank: int, world: int):
    """Each step's sample indices for this rank: its contiguous slice of the global batch."""
    per_rank = batch // world
    return [list(range(s * batch + rank * per_rank, s * batch + (rank + 1) * per_rank)) for s in range(start, steps)]


def read_tracks(paths: list[str]) -> dict:
    """(video, chunk, frame_a, frame_b) -> array of [ax1, ay1, ax2, ay2, bx1, by1, bx2, by2] rows."""
    frame = pd.concat([read_parquet(p) for p in paths], ignore_index=True)
    columns = ["ax1", "ay1", "ax2", "ay2", "bx1", "by1", "bx2", "by2"]
    return {(v, int(c), int(a), int(b)): group[columns].to_numpy(np.float32)
            for (v, c, a, b), group in frame.groupby(["video", "chunk", "frame_a", "frame_b"], sort=False)}


class KnnMonitor:
    """Weighted cosine kNN (MoCo demo: k 200, weights exp(sim / 0.1)) on a fixed seeded half/half split of a labelled set."""

    def __init__(self, items: list[tuple[str, int]], image_size: int, seed: int, k: int = 200):
        images = torch.stack([eval_transform(read_image(path), image_size) for path, _ in items])
        labels = torch.tensor([label for _, label in items])
        order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))
        bank, query = order[: len(items) // 2], order[len(items) // 2:]
        self.bank, self.query = (images[bank], labels[bank]), (images[query], labels[query])
        # k 200 suits ImageNet-sized banks; in a bank of a few hundred it would outvote every neighbourhood
        self.k, self.classes = max(1, min(k, len(bank) // 10)), int(labels.max()) + 1

    @torch.no_grad()
    def features(self, net, images: torch.Tensor, device) -> torch.Tensor:
        out = [pooled_features(net, batch.to(device)).float() for batch in images.split(256)]
        return F.normalize(torch.cat(out), dim=1)

    def __call__(self, net, device) -> float:
        was_training = net.training
        net.eval()
        bank, query = self.features(net, self.bank[0], device), self.features(net, self.query[0], device)
        net.train(was_training)
        similarity, neighbours = (query @ bank.T).topk(self.k, dim=1)
        votes = torch.zeros(len(query), self.classes, device=bank.device)
        votes.scatter_add_(1, self.bank[1].to(bank.device)[neighbours], (similarity / 0.1).exp())
        return float((votes.argmax(1).cpu() == self.query[1]).float().mean())


def build_model(method: str, cfg: dict, classes: int) -> torch.nn.Module:
    arch = cfg["model"]["arch"]
    if method == "supervised":
        return getattr(torchvision.models, arch)(weights=None, num_classes=classes)
    m = cfg["moco"]
    return MoCo(arch, dim=m["dim"], queue=m["queue"], momentum=m["momentum"], temperature=m["temperature"],
                bn_splits=m["bn_splits"], image_size=cfg["model"]["image_size"])


def cosine_lr(base_lr: float, step: int, steps: int) -> float:
    """The schedule is a function of the step alone, so a checkpoint needs no scheduler object to resume it."""
    return base_lr * 0.5 * (1 + math.cos(math.pi * step / steps))


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


def save_checkpoint(state: dict, paths: list[Path]) -> None:
    for path in paths:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)


def load_resume(path: Path, identity: str, log) -> dict | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a resume copy is a convenience: a bad one means starting over, not failing
        log.warning("ignoring unreadable resume copy %s (%s)", path, error)
        return None
    if state.get("identity") != identity:
        log.warning("resume copy %s was made with another method/config: starting from step 0", path)
        return None
    return state


def distributed_env(cfg: dict) -> tuple[int, int, int]:
    """(rank, world, local_rank) from torchrun's environment; initialises the process group when world > 1."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if cfg["train"].get("gpus", 1) > 1 and world == 1:
        raise UserError(f"train.gpus = {cfg['train']['gpus']} needs the job started by torchrun --nproc_per_node=N")
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return rank, world, local_rank


def train(method: str, *, chunks: list[str], frame_pairs: list[str] | None, track_pairs: list[str] | None,
          labelled: str | None, out_dir: str, cfg: dict, log: logging.Logger | None = None,
          stop_at: int | None = None) -> dict:
    """Train `method`, writing checkpoint.pt, backbone.pth, train.csv and run.json into out_dir; return a summary.

    `stop_at` ends this process after that step with a resumable checkpoint (time-sliced jobs); rerunning resumes.
    """
    log = log or logging.getLogger("vidssl.train")
    if method not in METHODS:
        raise UserError(f"training method {method!r} is not one of {', '.join(METHODS)}")
    t, seed = cfg["train"], int(cfg["seed"])
    steps, batch, workers = int(t["steps"]), int(t["batch_size"]), int(t["workers"])
    rank, world, local_rank = distributed_env(cfg)
    if batch % world:
        raise UserError(f"train.batch_size {batch} is not divisible by the {world} GPUs")
    if method != "supervised" and cfg["moco"]["queue"] % batch:
        raise UserError(f"moco.queue {cfg['moco']['queue']} is not a multiple of train.batch_size {batch}")
    if method in ("fti", "region_tracker") and not frame_pairs:
        raise UserError(f"{method} needs frame pairs")
    if method == "region_tracker" and not track_pairs:
        raise UserError("region_tracker needs track pairs")
    if method == "supervised" and not labelled:
        raise UserError("supervised needs a labelled ImageFolder set")
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    items, classes = list_labelled(labelled) if labelled else (None, [])
    data = TrainingSamples(
        method, stores=[ChunkStore(p) for p in chunks] if method != "supervised" else [],
        frame_pairs=pd.concat([read_parquet(p) for p in frame_pairs], ignore_index=True)
        if method in ("fti", "region_tracker") else None,
        tracks=read_tracks(track_pairs) if method == "region_tracker" else None,
        labelled=items, image_size=cfg["model"]["image_size"], seed=seed)

    torch.manual_seed(seed)
    model = build_model(method, cfg, len(classes)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    trained = model if method == "supervised" else model.encoder_q
    base_lr = t["lr"] * batch / 256
    optimizer = torch.optim.SGD(trained.parameters(), lr=base_lr, momentum=0.9, weight_decay=t["weight_decay"])
    out = Path(out_dir)
    resume_path = out.parent / ".resume" / f"{method}.pt"
    identity = json.dumps({"method": method, "cfg": cfg}, sort_keys=True)
    state = load_resume(resume_path, identity, log)
    start, history = 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"]["cuda"] is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        start, history = int(state["step"]), list(state["history"])
        log.info("%s: resuming from %s at step %d of %d", method, resume_path, start, steps)
    stepper = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world > 1 else model

    loader = torch.utils.data.DataLoader(
        data, batch_sampler=step_batches(start, steps, batch, rank, world), num_workers=workers,
        persistent_workers=workers > 0, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed))  # else creating the iterator draws from the global RNG
    knn = KnnMonitor(items, cfg["model"]["image_size"], seed) if items and t["knn_every"] and rank == 0 else None
    views = 1 if method == "supervised" else 2
    last = min(steps, stop_at) if stop_at is not None else steps

    def settle() -> None:
        """Turn the step losses kept on the device into numbers; doing it every step would stall the GPU queue."""
        for row in history:
            row["loss"] = float(row["loss"])

    def checkpoint(step: int) -> None:
        settle()
        if rank != 0:
            return
        rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
        save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                         "epoch": step * batch / len(data), "scheduler": {"cosine_base_lr": base_lr, "steps": steps},
                         "identity": identity, "config": cfg, "rng": rng, "history": history},
                        [out / "checkpoint.pt", resume_path])
        write_csv(pd.DataFrame(history, columns=CSV_FIELDS), out / "train.csv")

    stepper.train()
    progress = tqdm(total=last - start, desc=f"train {method}", disable=rank != 0, file=sys.stderr)
    clock = time.perf_counter()
    for step, inputs in zip(range(start, last), loader):
        lr = cosine_lr(base_lr, step, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
        for key in ("x", "x_q", "x_k"):
            if key in inputs and device.type == "cuda":
                inputs[key] = inputs[key].contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if method == "supervised":
                loss = F.cross_entropy(stepper(inputs["x"]).float(), inputs["y"])
            else:
                loss, _ = stepper(inputs["x_q"], inputs["x_k"], inputs.get("boxes_q"), inputs.get("boxes_k"))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        reported = loss.detach()
        if world > 1:
            dist.all_reduce(reported, op=dist.ReduceOp.AVG)
        now = time.perf_counter()
        done = step + 1
        row = {"step": done, "epoch": done * batch / len(data), "loss": reported, "lr": lr,
               "images_per_s": batch * views / (now - clock), "knn_top1": float("nan")}
        if knn is not None and (done % t["knn_every"] == 0 or done == steps):
            row["knn_top1"] = knn(trained, device)
        history.append(row)
        progress.update()
        if done % 20 == 0 or done == last:
            progress.set_postfix(loss=f"{float(reported):.3f}")
        if done % t["checkpoint_every"] == 0 and done < last:
            checkpoint(done)
        clock = time.perf_counter()
    progress.close()
    final = max(start, last)
    checkpoint(final)
    if rank == 0:
        export_backbone(trained.state_dict(), out / "backbone.pth")
        with atomic_path(out / "run.json") as tmp:
            tmp.write_text(json.dumps(run_info(cfg, device), indent=2))
        log.info("%s: %d steps done, final loss %.4f", method, final, history[-1]["loss"] if history else float("nan"))
    if world > 1:
        dist.barrier()
    return {"method": method, "steps": final, "resumed_from": start, "loss": [r["loss"] for r in history],
            "knn_top1": next((r["knn_top1"] for r in reversed(history) if not math.isnan(r["knn_top1"])), float("nan")),
            "device": str(device), "world": world}


def plot_training(csv_path: str | Path, out_png: str | Path) -> None:
    """Loss and kNN top-1 against the step, side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.read_csv(csv_path)
    figure, (loss_axis, knn_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_axis.plot(frame.step, frame.loss)
    loss_axis.set(xlabel="step", ylabel="training loss")
    measured = frame.dropna(subset=["knn_top1"])
    knn_axis.plot(measured.step, measured.knn_top1, marker="o")
    knn_axis.set(xlabel="step", ylabel="kNN top-1", ylim=(0, 1))
    figure.tight_layout()
    save_figure(figure, out_png)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train one vidssl method (run under torchrun for several GPUs).")
    parser.add_argument("--config-json", required=True, help="JSON file with the seed, model, moco and train sections")
    parser.add_argument("--method", required=True, choices=METHODS)
    parser.add_argument("--chunks", nargs="*", default=[])
    parser.add_argument("--frame-pairs", nargs="*", default=None)
    parser.add_argument("--track-pairs", nargs="*", default=None)
    parser.add_argument("--labelled", default=None)
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        cfg = json.loads(Path(args.config_json).read_text())
        train(args.method, chunks=args.chunks, frame_pairs=args.frame_pairs, track_pairs=args.track_pairs,
              labelled=args.labelled, out_dir=args.out_dir, cfg=cfg)
    except UserError as error:
        sys.exit(f"error: {error}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
