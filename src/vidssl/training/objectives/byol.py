"""BYOL (Grill et al. 2020): an online network (trunk, projector, predictor) learns to predict, from one view, a target
network's projection of the other; the target is an EMA of the online trunk and projector whose momentum rises from
`momentum` to 1 by a cosine over the run. Loss per view pair 2 - 2 cos(prediction, target projection), symmetrised
over the two views; no negatives, so no false negatives from the query's own video. Given boxes (the tracked-patch
view), the patch pair takes the same loss and the total is 0.5 frame + 0.5 patch, as the Region Tracker's.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.training.objective import Objective, cosine_momentum, ema_update, mlp, trunk_of

LABELS = False
SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["projector_hidden", "dim", "momentum"],
    "properties": {
        "projector_hidden": {"type": "integer", "minimum": 1},  # the paper: 4096
        "dim": {"type": "integer", "minimum": 1},  # the paper: 256
        "momentum": {"type": "number", "minimum": 0, "maximum": 1},  # tau_base; the paper: 0.996
    },
}


def regression_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(prediction, target) per row, averaged: the normalised MSE."""
    return (2 - 2 * F.cosine_similarity(prediction.float(), target.float(), dim=1)).mean()


class BYOL(Objective):
    def __init__(self, model_cfg: dict, *, projector_hidden: int, dim: int, momentum: float, steps: int):
        super().__init__()
        self.online = trunk_of(model_cfg)
        width = self.online.feature_dim
        self.projector = mlp([width, projector_hidden, dim])
        self.predictor = mlp([dim, projector_hidden, dim])
        self.target, self.target_projector = copy.deepcopy(self.online), copy.deepcopy(self.projector)
        self.target.requires_grad_(False)
        self.target_projector.requires_grad_(False)
        self.box_size = self.online.box_size(model_cfg["image_size"])
        self.base_momentum, self.steps = momentum, steps

    def trunk(self) -> nn.Module:
        return self.online

    def projections(self, net: nn.Module, projector: nn.Module, x: torch.Tensor, boxes: torch.Tensor | None):
        frame, patch = net.features(x, boxes, self.box_size)
        return projector(frame), None if patch is None else projector(patch)

    def pair_loss(self, online: tuple, target: tuple) -> torch.Tensor:
        """The symmetrised loss of two views' (online projection, target projection)."""
        (online_a, online_b), (target_a, target_b) = online, target
        return regression_loss(self.predictor(online_a), target_b) + regression_loss(self.predictor(online_b), target_a)

    def forward(self, batch: dict, step: int) -> torch.Tensor:
        views = [(batch["x_q"], batch.get("boxes_q")), (batch["x_k"], batch.get("boxes_k"))]
        online = [self.projections(self.online, self.projector, x, boxes) for x, boxes in views]
        with torch.no_grad():
            target = [self.projections(self.target, self.target_projector, x, boxes) for x, boxes in views]
        loss = self.pair_loss((online[0][0], online[1][0]), (target[0][0], target[1][0]))
        if online[0][1] is None:
            return loss
        patch = self.pair_loss((online[0][1], online[1][1]), (target[0][1], target[1][1]))
        return 0.5 * loss + 0.5 * patch

    def momentum(self, step: int) -> float:
        return cosine_momentum(self.base_momentum, step, self.steps)

    def after_step(self, step: int) -> None:
        tau = self.momentum(step)
        ema_update(self.target, self.online, tau)
        ema_update(self.target_projector, self.projector, tau)


def build(cfg: dict, *, section: dict, classes: int) -> BYOL:
    return BYOL(cfg["model"], steps=int(cfg["train"]["steps"]), **section)
