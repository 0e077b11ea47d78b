"""Batch norm whose statistics are taken per contiguous group of the batch: shuffle BN on one device (MoCo), and
frames and boxes passed through a trunk as one batch yet normalised apart (the tracked-patch view)."""
from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F
from torch import nn


class SplitBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are computed per contiguous group of `num_splits` along the batch."""

    def __init__(self, num_features: int, num_splits: int, **kwargs):
        super().__init__(num_features, **kwargs)
        self.num_splits = num_splits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.num_splits == 1:
            return super().forward(x)
        n, c, h, w = x.shape
        s = self.num_splits
        # Group g = samples g*n/s ... (g+1)*n/s - 1 becomes channel block g of one "sample" row.
        grouped = x.view(s, n // s, c, h, w).transpose(0, 1).reshape(n // s, s * c, h, w)
        mean, var = self.running_mean.repeat(s), self.running_var.repeat(s)
        out = F.batch_norm(grouped, mean, var, self.weight.repeat(s), self.bias.repeat(s), True, self.momentum, self.eps)
        self.running_mean.copy_(mean.view(s, c).mean(0))
        self.running_var.copy_(var.view(s, c).mean(0))
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        return out.view(n // s, s, c, h, w).transpose(0, 1).reshape(n, c, h, w)


def norm_layer(num_splits: int):
    """The trunk's norm_layer: SplitBatchNorm with `num_splits` groups (1: plain batch norm)."""
    return functools.partial(SplitBatchNorm, num_splits=max(1, num_splits))


@contextlib.contextmanager
def batches_normalised_apart(net: nn.Module, batches: int):
    """Within the block, `net`'s BN layers take their input as `batches` equal batches stacked, each normalised by
    its own groups' statistics exactly as if it came alone (the running statistics take one update, their mean)."""
    layers = [m for m in net.modules() if isinstance(m, SplitBatchNorm)]
    for layer in layers:
        layer.num_splits *= batches
    try:
        yield
    finally:
        for layer in layers:
            layer.num_splits //= batches
