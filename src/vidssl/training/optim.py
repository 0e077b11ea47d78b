"""The optimiser and the learning-rate schedule of a run, from its `train` section: SGD (MoCo), LARS (BYOL) or AdamW
(DINO, ViTs), a linear warm-up, then a cosine decay to zero. The schedule is a function of the step alone, so a
checkpoint needs no scheduler object to resume it."""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn


def base_lr(train: dict) -> float:
    """train.lr is for a batch of 256 (the linear scaling rule)."""
    return train["lr"] * int(train["batch_size"]) / 256


def scheduled_lr(base: float, step: int, steps: int, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay from `base` to 0 at `steps`."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose update of each parameter in an `adapt` group is scaled by the trust ratio
    eta * |w| / |g + wd w| (You et al. 2017, as BYOL and SimCLR use it); other groups step as plain SGD."""

    def __init__(self, params, lr: float, momentum: float, weight_decay: float, eta: float = 0.001):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, adapt=True))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad.clone()
                if group["adapt"]:
                    w_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
                    trust = torch.where((w_norm > 0) & (u_norm > 0), group["eta"] * w_norm / u_norm,
                                        torch.ones_like(w_norm))
                    update = update.mul(trust)
                state = self.state[p]
                buffer = state.get("momentum_buffer")
                if buffer is None:
                    buffer = state["momentum_buffer"] = update.clone()
                else:
                    buffer.mul_(group["momentum"]).add_(update)
                p.add_(buffer, alpha=-group["lr"])


def _groups(named: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """Weights, then biases and norm scales (1-d: no weight decay and, for LARS, no adaptation)."""
    named = list(named)
    return [{"params": [p for _, p in named if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for _, p in named if p.ndim <= 1], "weight_decay": 0.0, "adapt": False}]


def build_optimizer(named: Iterable[tuple[str, nn.Parameter]], train: dict) -> torch.optim.Optimizer:
    """train.optimizer over the named parameters: sgd decays every parameter (as MoCo); lars and adamw spare biases
    and norm scales (as BYOL and DINO)."""
    name, lr, wd = train["optimizer"], base_lr(train), train["weight_decay"]
    if name == "sgd":
        return torch.optim.SGD([p for _, p in named], lr=lr, momentum=train["momentum"], weight_decay=wd)
    if name == "lars":
        return LARS(_groups(named, wd), lr=lr, momentum=train["momentum"], weight_decay=wd)
    groups = [{k: v for k, v in g.items() if k != "adapt"} for g in _groups(named, wd)]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=wd)
