"""MoCo v2 (He et al. 2020, Chen et al. 2020) with the frame and tracked-patch losses of the paper's Algorithm 1.

Follows facebookresearch/moco builder.py; on one device, shuffle BN is emulated with SplitBatchNorm as in the MoCo
CIFAR-10 demo. BN groups are contiguous slices of the batch, so `bn_splits` groups on one device see exactly the
samples that `bn_splits` DDP ranks with plain BN would see: `norm_layer(bn_splits // world)` keeps the number of BN
groups over the global batch the same for any number of GPUs. Given boxes (the tracked-patch view), the loss is
0.5 frame + 0.5 patch, each patch pooled on the backbone's box map of its own augmented frame.
"""
from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vidssl.core.errors import check_multiple
from vidssl.models import backbone, options
from vidssl.models.norm import norm_layer
from vidssl.training.distributed import average, concat_all_gather, distributed, rank, world_size
from vidssl.training.objective import Objective, ema_update

LABELS = False
MULTIPLE_OF_BATCH = ("queue",)
SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["dim", "queue", "momentum", "temperature", "bn_splits"],
    "properties": {
        "dim": {"type": "integer", "minimum": 1},
        "queue": {"type": "integer", "minimum": 1},
        "momentum": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "temperature": {"type": "number", "exclusiveMinimum": 0},
        "bn_splits": {"type": "integer", "minimum": 1},
    },
}


def moco_logits(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """[positive | negatives] / T for L2-normalised q, k (N x C) and queue (C x K): N x (1 + K)."""
    l_pos = (q * k).sum(dim=1, keepdim=True)
    l_neg = q @ queue
    return torch.cat([l_pos, l_neg], dim=1) / temperature


def moco_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = moco_logits(q, k, queue, temperature)
    return F.cross_entropy(logits.float(), torch.zeros(len(q), dtype=torch.long, device=q.device))


@contextlib.contextmanager
def statistics_kept(net: nn.Module):
    """Within the block `net` may run in training mode: its buffers (BN running statistics) and the torch RNG are
    restored after it."""
    buffers = {name: buffer.clone() for name, buffer in net.named_buffers()}
    gpus = sorted({buffer.device.index for buffer in buffers.values() if buffer.device.type == "cuda"})
    with torch.random.fork_rng(devices=gpus):
        try:
            yield
        finally:
            for name, buffer in net.named_buffers():
                buffer.copy_(buffers[name])


def build_encoder(model_cfg: dict, dim: int, bn_splits: int) -> nn.Module:
    """The configured trunk with the MoCo v2 MLP head Linear(d, d)-ReLU-Linear(d, dim) as its `fc`."""
    arch = model_cfg["arch"]
    net = backbone.build(arch, num_classes=dim, norm_layer=norm_layer(bn_splits), **options(arch, model_cfg))
    net.fc = nn.Sequential(nn.Linear(net.fc.in_features, net.fc.in_features), nn.ReLU(inplace=True), net.fc)
    return net


def embed(net: nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    """The head's L2-normalised embedding of pooled features."""
    return F.normalize(net.fc(pooled).float(), dim=1)


class MoCo(Objective):
    """Query/key encoders, the queue, and one training step's loss (frames, plus tracked patches when boxes are given).

    `roi_size` is the box map side of a whole training frame (backbone.box_size), so a patch passes the rest of the
    trunk at the same resolution as a whole frame and a whole-frame box reproduces the frame's features.
    """
    monitor_columns = ("loss_fresh_queue",)

    def __init__(self, model_cfg: dict, *, dim: int, queue: int, momentum: float, temperature: float,
                 bn_splits: int, batch_size: int):
        super().__init__()
        splits = max(1, bn_splits // world_size())
        self.momentum, self.temperature, self.batch_size = momentum, temperature, batch_size
        self.encoder_q = build_encoder(model_cfg, dim, splits)
        self.encoder_k = build_encoder(model_cfg, dim, splits)
        self.roi_size = self.encoder_q.box_size(model_cfg["image_size"])
        self.encoder_k.load_state_dict(self.encoder_q.state_dict())
        self.encoder_k.requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def trunk(self) -> nn.Module:
        return self.encoder_q

    @torch.no_grad()
    def momentum_update(self) -> None:
        ema_update(self.encoder_k, self.encoder_q, self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        keys = concat_all_gather(keys) if distributed() else keys
        ptr, n = int(self.queue_ptr), len(keys)
        assert self.queue.shape[1] % n == 0, f"queue {self.queue.shape[1]} is not a multiple of the global batch {n}"
        self.queue[:, ptr:ptr + n] = keys.T.to(self.queue.dtype)
        self.queue_ptr[0] = (ptr + n) % self.queue.shape[1]

    @torch.no_grad()
    def shuffle(self, x: torch.Tensor, boxes: torch.Tensor | None):
        """Shuffle the key batch across the global batch; return its local part and the index that undoes it."""
        if not distributed():
            perm = torch.randperm(len(x), device=x.device)
            return x[perm], None if boxes is None else boxes[perm], torch.argsort(perm)
        x_all = concat_all_gather(x)
        perm = torch.randperm(len(x_all), device=x.device)
        dist.broadcast(perm, src=0)
        local = perm.view(world_size(), -1)[rank()]
        boxes = None if boxes is None else concat_all_gather(boxes)[local]
        return x_all[local], boxes, torch.argsort(perm)

    @torch.no_grad()
    def unshuffle(self, y: torch.Tensor, unperm: torch.Tensor) -> torch.Tensor:
        if not distributed():
            return y[unperm]
        local = unperm.view(world_size(), -1)[rank()]
        return concat_all_gather(y)[local]

    def encode(self, net: nn.Module, x: torch.Tensor, boxes: torch.Tensor | None):
        """Frame embedding and, given boxes, patch embedding (the trunk's box features: vidssl.models.backbone)."""
        frame, patch = net.features(x, boxes, self.roi_size)
        if patch is None:
            return embed(net, frame), None
        return embed(net, torch.cat([frame, patch])).chunk(2)

    @torch.no_grad()
    def keys(self, x_k: torch.Tensor, boxes_k: torch.Tensor | None):
        x_k, boxes_k, unperm = self.shuffle(x_k, boxes_k)
        frame, patch = self.encode(self.encoder_k, x_k, boxes_k)
        return self.unshuffle(frame, unperm), None if patch is None else self.unshuffle(patch, unperm)

    @torch.no_grad()
    def fresh_queue_loss(self, x_q: torch.Tensor, x_k: torch.Tensor, fill: list[torch.Tensor]) -> torch.Tensor:
        """The frame loss of one batch against keys that the current key encoder computes now on the `fill` batches
        (enough to fill the queue) instead of the queue training holds, whose keys come from older key encoders. A
        drop of the training loss that this does not share is the queue's staleness, not learning. Neither the queue,
        the BN statistics nor the RNG stream of training change."""
        with statistics_kept(self):
            q, _ = self.encode(self.encoder_q, x_q, None)
            k, _ = self.keys(x_k, None)
            keys = torch.cat([self.keys(x, None)[0] for x in fill])
            keys = concat_all_gather(keys) if distributed() else keys
            return moco_loss(q, k, keys[:self.queue.shape[1]].T.contiguous(), self.temperature)

    def monitor(self, draw, step: int) -> dict[str, float]:
        """The fresh-queue loss of a held batch, averaged over the ranks (every rank takes part: the key encoder's
        shuffle gathers across them)."""
        held = draw()
        fill = [draw()["x_k"] for _ in range(-(-self.queue.shape[1] // self.batch_size))]
        return {"loss_fresh_queue": float(average(self.fresh_queue_loss(held["x_q"], held["x_k"], fill)))}

    def step_loss(self, x_q: torch.Tensor, x_k: torch.Tensor, boxes_q: torch.Tensor | None = None,
                  boxes_k: torch.Tensor | None = None):
        """One step: loss (0.5 frame + 0.5 patch when boxes are given) and stats; the queue takes every key set."""
        q, q_patch = self.encode(self.encoder_q, x_q, boxes_q)
        self.momentum_update()  # before the keys, as in builder.py
        k, k_patch = self.keys(x_k, boxes_k)
        loss = frame_loss = moco_loss(q, k, self.queue.clone().detach(), self.temperature)
        stats = {"loss_frame": frame_loss.detach()}
        if q_patch is not None:
            patch_loss = moco_loss(q_patch, k_patch, self.queue.clone().detach(), self.temperature)
            loss = 0.5 * frame_loss + 0.5 * patch_loss
            stats["loss_patch"] = patch_loss.detach()
        self.enqueue(k)
        if k_patch is not None:
            self.enqueue(k_patch)
        return loss, stats

    def forward(self, batch: dict, step: int) -> torch.Tensor:
        return self.step_loss(batch["x_q"], batch["x_k"], batch.get("boxes_q"), batch.get("boxes_k"))[0]


def build(cfg: dict, *, section: dict, classes: int) -> MoCo:
    batch = int(cfg["train"]["batch_size"])
    check_multiple("moco.queue", section["queue"], batch)
    return MoCo(cfg["model"], batch_size=batch, **section)
