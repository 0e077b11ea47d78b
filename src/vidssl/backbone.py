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

from vidssl.io import UserError, atomic_path

FEATURE_DIMS = {"resnet18": 512, "resnet50": 2048}


def _check_arch(arch: str) -> None:
    if arch not in FEATURE_DIMS:
        raise UserError(f"model.arch {arch!r} is not one of {', '.join(FEATURE_DIMS)}")


def feature_dim(arch: str) -> int:
    _check_arch(arch)
    return FEATURE_DIMS[arch]


def build_resnet(arch: str, **kwargs) -> nn.Module:
    """A randomly initialised torchvision ResNet whose forward returns the pooled post-ReLU trunk vector."""
    _check_arch(arch)
    net = getattr(torchvision.models, arch)(weights=None, **kwargs)
    net.fc = nn.Identity()
    return net


def pooled_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Global-average-pooled layer4 output of a torchvision ResNet, whatever its head."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    return torch.flatten(net.avgpool(x), 1)


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
    """A `arch` trunk holding `state_dict`; every trunk key must match exactly (the head is ignored)."""
    net = build_resnet(arch)
    state = trunk_state_dict(state_dict)
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


def random_backbone(arch: str, seed: int, out_path: str | Path) -> None:
    """The "Random init" method: a seeded, untrained ResNet exported like the trained ones."""
    torch.manual_seed(seed)
    export_backbone(build_resnet(arch).state_dict(), out_path)


def import_pretrained(path: str | Path, layout: str, arch: str, out_path: str | Path) -> None:
    """Turn an ImageNet checkpoint (torchvision or MoCo layout) into a method's backbone file."""
    if layout not in ("torchvision", "moco"):
        raise UserError(f"pretrained layout {layout!r} for {path} is not one of torchvision, moco")
    state = _read_state_dict(path)
    if layout == "moco" and not any(k.removeprefix("module.").startswith("encoder_q.") for k in state):
        raise UserError(f"{path}: layout moco expects keys module.encoder_q.*; found e.g. {list(state)[:3]}")
    _fitted_trunk(state, arch, path)  # fail now, naming the source file, rather than in feature extraction
    export_backbone(state, out_path)
