"""Cross-entropy on labelled images: the supervised baseline. The whole classifier trains; its trunk is exported."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.models import backbone, options
from vidssl.training.objective import Objective

LABELS = True
SCHEMA = None


class CrossEntropy(Objective):
    def __init__(self, model_cfg: dict, classes: int):
        super().__init__()
        arch = model_cfg["arch"]
        self.net = backbone.build(arch, num_classes=classes, **options(arch, model_cfg))

    def trunk(self) -> nn.Module:
        return self.net

    def forward(self, batch: dict, step: int) -> torch.Tensor:
        return F.cross_entropy(self.net(batch["x"]).float(), batch["y"])


def build(cfg: dict, *, section: dict | None, classes: int) -> CrossEntropy:
    return CrossEntropy(cfg["model"], classes)
