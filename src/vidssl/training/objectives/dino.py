"""DINO (Caron et al. 2021): self-distillation with no labels. A student (trunk and projection head) learns to match,
on every crop of a sample, the sharpened and centred output of a teacher on the other global crops; the teacher is an
EMA of the student whose momentum rises from `momentum` to 1 by a cosine. The head is a 3-layer MLP, L2
normalisation and a weight-normalised last layer to `out_dim`; the teacher temperature warms up linearly from
`teacher_temperature_start` to `teacher_temperature` over `teacher_warmup_steps`; the centre follows the teacher's
mean output with `centre_momentum`. Multi-crop: the section's global_scale, local_crops, local_scale and local_size
(a fraction of model.image_size) are the crops the view sources draw (vidssl.training.augment.Crops).

On the tracked-patch view the local crops are drawn around the tracked box in each frame, and the box features of the
two global crops are a patch pair taking the same loss; the total is then 0.5 crops + 0.5 patch, as the Region
Tracker's.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.training import distributed
from vidssl.training.objective import Objective, cosine_momentum, ema_update, mlp, trunk_of

LABELS = False
SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["out_dim", "hidden", "bottleneck", "norm_last_layer", "student_temperature", "teacher_temperature",
                 "teacher_temperature_start", "teacher_warmup_steps", "centre_momentum", "momentum",
                 "freeze_last_layer_steps", "global_scale", "local_crops", "local_scale", "local_size"],
    "properties": {
        "out_dim": {"type": "integer", "minimum": 1}, "hidden": {"type": "integer", "minimum": 1},
        "bottleneck": {"type": "integer", "minimum": 1}, "norm_last_layer": {"type": "boolean"},
        "student_temperature": {"type": "number", "exclusiveMinimum": 0},
        "teacher_temperature": {"type": "number", "exclusiveMinimum": 0},
        "teacher_temperature_start": {"type": "number", "exclusiveMinimum": 0},
        "teacher_warmup_steps": {"type": "integer", "minimum": 0},
        "centre_momentum": {"type": "number", "minimum": 0, "maximum": 1},
        "momentum": {"type": "number", "minimum": 0, "maximum": 1},
        "freeze_last_layer_steps": {"type": "integer", "minimum": 0},
        "global_scale": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}, "minItems": 2, "maxItems": 2},
        "local_crops": {"type": "integer", "minimum": 0},
        "local_scale": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}, "minItems": 2, "maxItems": 2},
        "local_size": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    },
}


class DINOHead(nn.Module):
    """MLP (GELU, no batch norm), L2 normalisation, then a weight-normalised linear layer; with `norm_last_layer`
    its weight norms stay 1."""

    def __init__(self, in_dim: int, *, out_dim: int, hidden: int, bottleneck: int, norm_last_layer: bool):
        super().__init__()
        self.mlp = mlp([in_dim, hidden, hidden, bottleneck], batch_norm=False, activation=nn.GELU)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        self.last = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck, out_dim, bias=False))
        self.last.parametrizations.weight.original0.data.fill_(1.0)
        self.last.parametrizations.weight.original0.requires_grad_(not norm_last_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.mlp(x).float(), dim=-1))


def distillation_loss(teacher: torch.Tensor, student: torch.Tensor, centre: torch.Tensor, teacher_temperature: float,
                      student_temperature: float) -> torch.Tensor:
    """Cross-entropy from the teacher's centred, sharpened distribution to the student's, averaged over the rows."""
    target = F.softmax((teacher - centre) / teacher_temperature, dim=-1)
    return torch.sum(-target * F.log_softmax(student.float() / student_temperature, dim=-1), dim=-1).mean()


class DINO(Objective):
    def __init__(self, model_cfg: dict, *, steps: int, **section):
        super().__init__()
        self.settings, self.steps = section, steps
        self.student = trunk_of(model_cfg)
        self.student_head = DINOHead(self.student.feature_dim, out_dim=section["out_dim"], hidden=section["hidden"],
                                     bottleneck=section["bottleneck"], norm_last_layer=section["norm_last_layer"])
        self.teacher, self.teacher_head = copy.deepcopy(self.student), copy.deepcopy(self.student_head)
        self.teacher.requires_grad_(False)
        self.teacher_head.requires_grad_(False)
        self.box_size = self.student.box_size(model_cfg["image_size"])
        self.register_buffer("centre", torch.zeros(1, section["out_dim"]))

    def trunk(self) -> nn.Module:
        return self.student

    def teacher_temperature(self, step: int) -> float:
        start, end, warmup = (self.settings[k] for k in ("teacher_temperature_start", "teacher_temperature",
                                                         "teacher_warmup_steps"))
        return end if step >= warmup else start + (end - start) * step / warmup

    def outputs(self, net: nn.Module, head: nn.Module, x: torch.Tensor, boxes: torch.Tensor | None):
        frame, patch = net.features(x, boxes, self.box_size)
        return head(frame), None if patch is None else head(patch)

    def crop_loss(self, teacher: list[torch.Tensor], student: list[torch.Tensor], step: int) -> torch.Tensor:
        """Every teacher global crop against every student crop but itself, averaged over the pairs."""
        terms = [distillation_loss(t, s, self.centre, self.teacher_temperature(step),
                                   self.settings["student_temperature"])
                 for i, t in enumerate(teacher) for j, s in enumerate(student) if i != j]
        return sum(terms) / len(terms)

    def forward(self, batch: dict, step: int) -> torch.Tensor:
        views = [(batch["x_q"], batch.get("boxes_q")), (batch["x_k"], batch.get("boxes_k"))]
        student = [self.outputs(self.student, self.student_head, x, boxes) for x, boxes in views]
        with torch.no_grad():
            teacher = [self.outputs(self.teacher, self.teacher_head, x, boxes) for x, boxes in views]
        crops = [frame for frame, _ in student]
        if "x_local" in batch:
            local = batch["x_local"]
            out = self.student_head(self.student.pooled(local.flatten(0, 1)))
            crops += list(out.unflatten(0, local.shape[:2]).transpose(0, 1))
        loss = self.crop_loss([frame for frame, _ in teacher], crops, step)
        if student[0][1] is not None:
            patch = self.crop_loss([t[1] for t in teacher], [s[1] for s in student], step)
            loss = 0.5 * loss + 0.5 * patch
        self.update_centre(torch.cat([frame for frame, _ in teacher]))
        return loss

    @torch.no_grad()
    def update_centre(self, teacher: torch.Tensor) -> None:
        """centre = m centre + (1 - m) mean teacher output over the global batch."""
        mean = distributed.average(teacher.float().mean(dim=0, keepdim=True))
        m = self.settings["centre_momentum"]
        self.centre.mul_(m).add_(mean, alpha=1 - m)

    def before_step(self, step: int) -> None:
        """The last layer learns only after `freeze_last_layer_steps` (it is unstable while the rest is random)."""
        if step < self.settings["freeze_last_layer_steps"]:
            for p in self.student_head.last.parameters():
                p.grad = None

    def after_step(self, step: int) -> None:
        tau = cosine_momentum(self.settings["momentum"], step, self.steps)
        ema_update(self.teacher, self.student, tau)
        ema_update(self.teacher_head, self.student_head, tau)


def build(cfg: dict, *, section: dict, classes: int) -> DINO:
    return DINO(cfg["model"], steps=int(cfg["train"]["steps"]), **section)
