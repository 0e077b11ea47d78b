"""ResNet trunks: build, export as a plain torchvision state dict, and load any of our checkpoint layouts.

Every method the pipeline compares (random init, supervised, MoCo, FTI, Region Tracker, imported ImageNet checkpoints)
ends as one file: a torchvision ResNet state dict without prefixes and without the head (no `fc.*`), so feature
extraction loads all of them the same way.
"""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from vidssl.core.errors import UserError
from vidssl.core.io import atomic_path

BLOCKS = {"resnet18": (BasicBlock, (2, 2, 2, 2)), "resnet50": (Bottleneck, (3, 4, 6, 3))}
STEMS = ("imagenet", "small")
DEFAULT_OPTIONS = {"width": 1.0, "stem": "imagenet"}


class ResNet(torchvision.models.ResNet):
    """torchvision's ResNet with every stage `width` times as wide (64, 128, 256, 512 at 1) and a choice of stem:
    `imagenet` (7x7 stride-2 conv, max-pool) or `small` (3x3 stride-1 conv, no max-pool, as MoCo's CIFAR-10 demo).

    Its modules, state dict keys and initialisation are torchvision's, built in the same order, so width 1 with the
    imagenet stem draws exactly torchvision's weights from the same seed.
    """

    def __init__(self, arch: str, *, width: float = 1.0, stem: str = "imagenet", num_classes: int = 1000,
                 norm_layer=None):
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
        self.layer3_stride = 4 if small else 16  # input pixels per layer3 cell, for ROI pooling
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, 2 * base, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * base, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * base, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.width, self.stem, self.feature_dim = base / 64, stem, 8 * base * block.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def stage_channels(width: float) -> int:
    """Channels of the stem and the first stage at `width` (64 at 1); later stages double it."""
    base = round(64 * float(width))
    if base < 4:
        raise UserError(f"model.width {width} leaves {base} channels in the first stage; use at least {4 / 64:.4f}")
    return base


def _check_options(arch: str, width: float, stem: str) -> None:
    if arch not in BLOCKS:
        raise UserError(f"model.arch {arch!r} is not one of {', '.join(BLOCKS)}")
    if stem not in STEMS:
        raise UserError(f"model.stem {stem!r} is not one of {', '.join(STEMS)}")
    stage_channels(width)


def model_options(model_cfg: dict) -> dict:
    """The network options (width, stem) of a config's `model` section; absent keys take the defaults."""
    return {key: model_cfg.get(key, default) for key, default in DEFAULT_OPTIONS.items()}


def feature_dim(arch: str, width: float = 1.0) -> int:
    _check_options(arch, width, "imagenet")
    return 8 * stage_channels(width) * BLOCKS[arch][0].expansion


def resnet(arch: str, *, width: float = 1.0, stem: str = "imagenet", **kwargs) -> ResNet:
    """A randomly initialised ResNet with its classifier head (num_classes, norm_layer as torchvision's)."""
    _check_options(arch, width, stem)
    return ResNet(arch, width=width, stem=stem, **kwargs)


def build_resnet(arch: str, **options) -> nn.Module:
    """A randomly initialised ResNet whose forward returns the pooled post-ReLU trunk vector."""
    net = resnet(arch, **options)
    net.fc = nn.Identity()
    return net


def stem(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The ResNet stem: conv1, BN, ReLU and max-pool (an identity in the small stem)."""
    return net.maxpool(net.relu(net.bn1(net.conv1(x))))


def pooled_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Global-average-pooled layer4 output of a ResNet, whatever its head."""
    x = net.layer4(net.layer3(net.layer2(net.layer1(stem(net, x)))))
    return torch.flatten(net.avgpool(x), 1)


def trunk_options(state_dict: dict) -> dict:
    """Width and stem of the trunk a state dict holds, read from its first convolution (defaults if it has none)."""
    conv1 = state_dict.get("conv1.weight")
    if conv1 is None or conv1.dim() != 4:
        return dict(DEFAULT_OPTIONS)
    return {"width": conv1.shape[0] / 64, "stem": "small" if conv1.shape[-1] == 3 else "imagenet"}


def trunk_state_dict(state_dict: dict) -> dict:
    """Strip DDP/MoCo prefixes, keep only the query encoder if there is one, and drop the head."""
    state = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if any(k.startswith("encoder_q.") for k in state):
        state = {k.removeprefix("encoder_q."): v for k, v in state.items() if k.startswith("encoder_q.")}
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def _read_state_dict(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower():
            raise UserError(f"{path}: refused by torch.load(weights_only=True): the file holds pickled code or "
                            f"objects, not just tensors; re-save it as a plain state dict") from error
        raise UserError(f"{path}: corrupt checkpoint ({str(error).splitlines()[0]})") from error
    except (RuntimeError, EOFError, ValueError, OSError, struct.error) as error:
        raise UserError(f"{path}: truncated or corrupt checkpoint ({str(error).splitlines()[0]})") from error
    for key in ("state_dict", "model"):  # MoCo's layout, then our own training checkpoint
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise UserError(f"{path}: not a state dict of tensors (nor a MoCo/vidssl checkpoint holding one)")
    return obj


def _fitted_trunk(state_dict: dict, arch: str, path: str | Path) -> nn.Module:
    """A `arch` trunk holding `state_dict`, of the width and stem the file holds; every trunk key must match exactly
    (the head is ignored)."""
    state = trunk_state_dict(state_dict)
    net = build_resnet(arch, **trunk_options(state))
    expected = set(net.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise UserError(f"{path}: does not match a {arch} trunk: {len(missing)} missing keys {missing[:4]}, "
                        f"{len(unexpected)} unexpected keys {unexpected[:4]}")
    try:
        net.load_state_dict(state)
    except RuntimeError as error:  # shape mismatches, e.g. a resnet50 file loaded as resnet18
        raise UserError(f"{path}: does not fit {arch}: {str(error).splitlines()[1].strip()}") from error
    return net


def load_backbone(path: str | Path, arch: str) -> nn.Module:
    """The trunk stored at `path` (plain, MoCo or vidssl checkpoint layout), in eval mode."""
    return _fitted_trunk(_read_state_dict(path), arch, path).eval()


def export_backbone(state_dict: dict, out_path: str | Path) -> None:
    """Save a trunk as a plain torchvision ResNet state dict (no prefixes, no fc), atomically."""
    state = {k: v.detach().cpu().clone() for k, v in trunk_state_dict(state_dict).items()}
    with atomic_path(out_path) as tmp:
        torch.save(state, tmp)


def random_backbone(arch: str, seed: int, out_path: str | Path, **options) -> None:
    """The "Random init" method: a seeded, untrained ResNet (width and stem as `options`) exported like the trained
    ones."""
    torch.manual_seed(seed)
    export_backbone(build_resnet(arch, **options).state_dict(), out_path)


def import_pretrained(path: str | Path, layout: str, arch: str, out_path: str | Path) -> None:
    """Turn an ImageNet checkpoint (torchvision or MoCo layout) into a method's backbone file."""
    if layout not in ("torchvision", "moco"):
        raise UserError(f"pretrained layout {layout!r} for {path} is not one of torchvision, moco")
    state = _read_state_dict(path)
    if layout == "moco" and not any(k.removeprefix("module.").startswith("encoder_q.") for k in state):
        raise UserError(f"{path}: layout moco expects keys module.encoder_q.*; found e.g. {list(state)[:3]}")
    _fitted_trunk(state, arch, path)  # fail now, naming the source file, rather than in feature extraction
    export_backbone(state, out_path)
