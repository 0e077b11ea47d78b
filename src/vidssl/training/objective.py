"""The objective interface: what a training objective owns, so that the trainer names none of them.

An objective module of `vidssl.training.objectives` declares `SCHEMA`, the JSON schema of its config section (the
section is named after the module; None: it takes none), and `LABELS` (True: it needs labelled samples), and provides
`build(cfg, *, section, classes) -> Objective`. The objective is an nn.Module that owns its networks and heads:

- `forward(batch, step)` is its loss on a batch (a dict of tensors a view source made) at optimiser step `step`;
- `trainable()`: the parameters the optimiser updates, by name (default: every one that requires a gradient);
- `before_step(step)` and `after_step(step)`: what it does between the backward pass and the optimiser step, and
  after it (its momentum or teacher updates and schedules);
- `monitor(draw, step)`: extra columns of train.csv at monitored steps (`monitor_columns` names them), from seeded
  batches `draw()` returns;
- `trunk()`: the backbone it exports (models.backbone.Backbone), whose pooled feature every evaluation reads.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import nn


class Objective(nn.Module):
    monitor_columns: tuple[str, ...] = ()

    def forward(self, batch: dict, step: int) -> torch.Tensor:
        raise NotImplementedError

    def trainable(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((name, p) for name, p in self.named_parameters() if p.requires_grad)

    def before_step(self, step: int) -> None:
        """Between the backward pass and the optimiser step (e.g. drop a frozen layer's gradients); nothing by
        default."""

    def after_step(self, step: int) -> None:
        """After the optimiser step (momentum or teacher updates); nothing by default."""

    def monitor(self, draw: Callable[[], dict], step: int) -> dict[str, float]:
        return {}

    def trunk(self) -> nn.Module:
        raise NotImplementedError


def cosine_momentum(base: float, step: int, steps: int) -> float:
    """The EMA momentum at `step` of `steps`, rising from `base` to 1 by a cosine (BYOL's tau, DINO's teacher)."""
    return 1 - (1 - base) * (math.cos(math.pi * step / steps) + 1) / 2


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target = momentum * target + (1 - momentum) * online, parameter by parameter."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)


def trunk_of(model_cfg: dict) -> nn.Module:
    """The configured backbone without its head (pooled features out), with split batch norm, so that its box
    features pass the trunk batched with the frames (vidssl.models.backbone.Backbone.features)."""
    from vidssl.models import backbone, options
    from vidssl.models.norm import norm_layer

    arch = model_cfg["arch"]
    return backbone.build_trunk(arch, norm_layer=norm_layer(1), **options(arch, model_cfg))


def mlp(dims: list[int], *, batch_norm: bool = True, activation=nn.ReLU) -> nn.Sequential:
    """Linear layers between `dims`, each but the last followed by (BatchNorm1d and) the activation."""
    layers = []
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers += [nn.BatchNorm1d(b)] if batch_norm else []
            layers.append(activation())
    return nn.Sequential(*layers)
