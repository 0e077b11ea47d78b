"""ResNet-18/50 trunks (torchvision's modules and initialisation), optionally narrower and with a small stem.

A backbone module: it declares the architectures it builds (ARCHS) and the `model` config keys they take (OPTIONS).
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from vidssl.core.errors import UserError
from vidssl.models.backbone import Backbone, MapSpec

ARCHS = ("resnet18", "resnet50")
OPTIONS = ("width", "stem")
BLOCKS = {"resnet18": (BasicBlock, (2, 2, 2, 2)), "resnet50": (Bottleneck, (3, 4, 6, 3))}
STEMS = ("imagenet", "small")
STAGES = ("layer1", "layer2", "layer3", "layer4")


class ResNet(torchvision.models.ResNet, Backbone):
    """torchvision's ResNet with every stage `width` times as wide (64, 128, 256, 512 at 1) and a choice of stem:
    `imagenet` (7x7 stride-2 conv, max-pool) or `small` (3x3 stride-1 conv, no max-pool, as MoCo's CIFAR-10 demo).

    Its modules, state dict keys and initialisation are torchvision's, built in the same order, so width 1 with the
    imagenet stem draws exactly torchvision's weights from the same seed. Its maps: `stem`, `layer1` ... `layer4`;
    boxes are pooled on `layer3` (the Region Tracker's split point) and pass layer4 like a whole frame.
    """
    box_level = "layer3"

    def __init__(self, arch: str, *, width: float, stem: str, num_classes: int = 1000, norm_layer=None):
        nn.Module.__init__(self)
        block, layers = BLOCKS[arch]
        base = stage_channels(width)
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = base, 1, 1, 64
        small = stem == "small"
        self.conv1 = nn.Conv2d(3, base, kernel_size=3 if small else 7, stride=1 if small else 2,
                               padding=1 if small else 3, bias=False)
        self.bn1 = self._norm_layer(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, 2 * base, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * base, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * base, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.width, self.stem, self.feature_dim = base / 64, stem, 8 * base * block.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes)
        first = 1 if small else 4
        self.maps = {"stem": MapSpec(base, first)} | {
            name: MapSpec(base * 2 ** i * block.expansion, first * 2 ** i) for i, name in enumerate(STAGES)}
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def output_shape(self) -> dict[str, MapSpec]:
        return self.maps

    def options(self) -> dict:
        return {"width": self.width, "stem": self.stem}

    def forward_to(self, x: torch.Tensor, level: str) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in STAGES[:self._after(level)]:
            x = getattr(self, name)(x)
        return x

    def forward_from(self, maps: torch.Tensor, level: str) -> torch.Tensor:
        for name in STAGES[self._after(level):]:
            maps = getattr(self, name)(maps)
        return torch.flatten(self.avgpool(maps), 1)

    def _after(self, level: str) -> int:
        """How many stages lie up to and including `level`."""
        if level not in self.maps:
            raise ValueError(f"{level!r} is not a map of this ResNet: {', '.join(self.maps)}")
        return 0 if level == "stem" else STAGES.index(level) + 1


def stage_channels(width: float) -> int:
    """Channels of the stem and the first stage at `width` (64 at 1); later stages double it."""
    base = round(64 * float(width))
    if base < 4:
        raise UserError(f"model.width {width} leaves {base} channels in the first stage; use at least {4 / 64:.4f}")
    return base


def build(arch: str, *, width: float, stem: str, **kwargs) -> ResNet:
    """A randomly initialised ResNet with its classifier head (num_classes, norm_layer as torchvision's)."""
    if stem not in STEMS:
        raise UserError(f"model.stem {stem!r} is not one of {', '.join(STEMS)}")
    stage_channels(width)
    return ResNet(arch, width=width, stem=stem, **kwargs)


def options_of(state_dict: dict) -> dict:
    """Width and stem of the trunk a state dict holds, read from its first convolution (torchvision's when it has
    none: the key check then names what is missing)."""
    conv1 = state_dict.get("conv1.weight")
    if conv1 is None or conv1.dim() != 4:
        return {"width": 1.0, "stem": "imagenet"}
    return {"width": conv1.shape[0] / 64, "stem": "small" if conv1.shape[-1] == 3 else "imagenet"}
