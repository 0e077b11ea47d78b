import math

import pytest
import torch
from torch import nn

from vidssl.training.optim import LARS, build_optimizer, scheduled_lr

TRAIN = {"lr": 0.1, "batch_size": 256, "weight_decay": 0.01, "momentum": 0.9}


def test_schedule_warms_up_linearly_then_decays_by_a_cosine():
    assert [scheduled_lr(1.0, s, 10, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert scheduled_lr(1.0, 4, 10, 4) == 1.0 and scheduled_lr(1.0, 7, 10, 4) == pytest.approx(0.5)
    assert [scheduled_lr(2.0, s, 8, 0) for s in (0, 4)] == [2.0, pytest.approx(1.0)]  # no warm-up: the plain cosine


def test_lars_scales_each_weight_update_by_its_trust_ratio_and_spares_biases():
    net = nn.Linear(4, 3)
    with torch.no_grad():
        net.weight.fill_(2.0)
        net.bias.fill_(1.0)
    net.weight.grad, net.bias.grad = torch.full((3, 4), 0.5), torch.full((3,), 0.5)
    optimizer = build_optimizer(net.named_parameters(), TRAIN | {"optimizer": "lars"})
    assert isinstance(optimizer, LARS)
    w, g = torch.full((3, 4), 2.0), torch.full((3, 4), 0.5)
    update = g + 0.01 * w
    trust = 0.001 * w.norm() / update.norm()
    optimizer.step()
    assert torch.allclose(net.weight, w - 0.1 * trust * update)
    assert torch.allclose(net.bias, torch.full((3,), 1.0 - 0.1 * 0.5))  # no decay, no adaptation


def test_adamw_decays_weights_only_and_sgd_decays_everything():
    net = nn.Linear(2, 2)
    adamw = build_optimizer(net.named_parameters(), TRAIN | {"optimizer": "adamw"})
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.01, 0.0] and isinstance(adamw, torch.optim.AdamW)
    sgd = build_optimizer(net.named_parameters(), TRAIN | {"optimizer": "sgd"})
    assert len(sgd.param_groups) == 1 and sgd.param_groups[0]["weight_decay"] == 0.01
    assert math.isclose(sgd.param_groups[0]["lr"], 0.1)
