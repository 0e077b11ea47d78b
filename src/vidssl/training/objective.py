"""The objective interface: what a training objective owns, so that the trainer names none of them.

An objective module of `vidssl.training.objectives` declares `SCHEMA`, the JSON schema of its config section (the
section is named after the module; None: it takes none), and `LABELS` (True: it needs labelled samples), and provides
`build(cfg, *, section, classes) -> Objective`. The objective is an nn.Module that owns its networks and heads:

- `forward(batch, step)` is its loss on a batch (a dict of tensors a view source made) at optimiser step `step`;
- `trainable()`: the parameters the optimiser updates, by name (default: every one that requires a gradient);
- `after_step(step)`: its momentum or teacher updates and schedules, after each optimiser step;
- `monitor(draw, step)`: extra columns of train.csv at monitored steps (`monitor_columns` names them), from seeded
  batches `draw()` returns;
- `trunk()`: the backbone it exports (models.backbone.Backbone), whose pooled feature every evaluation reads.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import nn


class Objective(nn.Module):
    monitor_columns: tuple[str, ...] = ()

    def forward(self, batch: dict, step: int) -> torch.Tensor:
        raise NotImplementedError

    def trainable(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((name, p) for name, p in self.named_parameters() if p.requires_grad)

    def after_step(self, step: int) -> None:
        """Nothing by default."""

    def monitor(self, draw: Callable[[], dict], step: int) -> dict[str, float]:
        return {}

    def trunk(self) -> nn.Module:
        raise NotImplementedError


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target = momentum * target + (1 - momentum) * online, parameter by parameter."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
