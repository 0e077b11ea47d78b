"""The backbone interface, the registry of backbone modules, and backbone files.

A backbone gives its feature maps by name and stride (`output_shape`, as detectron2's `Backbone`), runs up to a map
(`forward_to`) and from a map to the pooled feature (`forward_from`), and pools boxes on a map (`pool_boxes`), so
objectives and poolers never know the trunk. Each backbone module of this package declares the architectures it
builds (`ARCHS`) and the `model` config keys they take (`OPTIONS`), and provides `build(arch, **options)` and
`options_of(state_dict)`.

Every method the pipeline compares ends as one file: the trunk's state dict without prefixes and without the head
(no `fc.*`; torchvision's layout for a ResNet), so feature extraction loads all of them the same way.
"""
from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.ops import roi_align

from vidssl.core import registry
from vidssl.core.errors import UserError
from vidssl.core.io import atomic_path
from vidssl.models import PACKAGE, check_arch
from vidssl.models.norm import SplitBatchNorm, batches_normalised_apart

HEAD_PREFIX = "fc."
MOCO_QUERY = "encoder_q."  # where MoCo's checkpoints keep the trunk


@dataclass(frozen=True)
class MapSpec:
    channels: int
    stride: int  # input pixels per cell


class Backbone:
    """What every trunk gives (a mixin of an nn.Module): `feature_dim`, the size of the pooled feature; `box_level`,
    the map boxes are pooled on; and the methods below."""
    feature_dim: int
    box_level: str

    def output_shape(self) -> dict[str, MapSpec]:
        raise NotImplementedError

    def options(self) -> dict:
        """The `model` options this trunk was built with (its module's OPTIONS), as its files record them."""
        raise NotImplementedError

    def forward_to(self, x: torch.Tensor, level: str) -> torch.Tensor:
        raise NotImplementedError

    def forward_from(self, maps: torch.Tensor, level: str) -> torch.Tensor:
        raise NotImplementedError

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature of a batch of images."""
        return self.forward_from(self.forward_to(x, self.box_level), self.box_level)

    def features(self, x: torch.Tensor, boxes: torch.Tensor | None = None, box_size: int = 1):
        """The pooled features of a batch of images and, given one box per image (x1, y1, x2, y2 in input pixels), of
        the boxes: pooled on `box_level` and passed through the rest of the trunk with the images as one batch (larger
        GEMMs), whose batch norm still sees them apart (SplitBatchNorm layers; other norms take two calls)."""
        level = self.box_level
        maps = self.forward_to(x, level)
        if boxes is None:
            return self.forward_from(maps, level), None
        if any(isinstance(m, nn.BatchNorm2d) and not isinstance(m, SplitBatchNorm) for m in self.modules()):
            return self.forward_from(maps, level), self.forward_from(self.pool_boxes(maps, boxes, box_size), level)
        with batches_normalised_apart(self, 2):
            rois = self.pool_boxes(maps, boxes, box_size)
            return self.forward_from(torch.cat([maps, rois]), level).chunk(2)

    def box_size(self, image_size: int) -> int:
        """The side of a pooled box on `box_level`: the map side of a whole `image_size` input, so a whole-image box
        reproduces the image's own features."""
        return max(1, image_size // self.output_shape()[self.box_level].stride)

    def pool_boxes(self, maps: torch.Tensor, boxes: torch.Tensor, output_size: int) -> torch.Tensor:
        """ROI-align one box (x1, y1, x2, y2 in input pixels) per image on its `box_level` map."""
        boxes = boxes.float()  # bf16 would round coordinates to whole pixels; autocast runs roi_align in float32
        rois = torch.cat([torch.arange(len(boxes), device=boxes.device, dtype=boxes.dtype)[:, None], boxes], dim=1)
        stride = self.output_shape()[self.box_level].stride
        return roi_align(maps, rois, output_size, spatial_scale=1 / stride, sampling_ratio=2, aligned=True)


def build(arch: str, **kwargs) -> nn.Module:
    """A randomly initialised `arch` network with its head (kwargs: the module's options, num_classes, norm_layer)."""
    return registry.load(PACKAGE, check_arch(arch)).build(arch, **kwargs)


def build_trunk(arch: str, **options) -> nn.Module:
    """A randomly initialised `arch` trunk whose forward returns the pooled feature (its head an identity)."""
    net = build(arch, **options)
    net.fc = nn.Identity()
    return net


def trunk_state_dict(state_dict: dict) -> dict:
    """A trunk's state dict without DDP prefixes and without its head; of a MoCo-layout file (its own or a vidssl
    MoCo checkpoint), the query encoder's."""
    state = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if any(k.startswith(MOCO_QUERY) for k in state):
        state = {k.removeprefix(MOCO_QUERY): v for k, v in state.items() if k.startswith(MOCO_QUERY)}
    return {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}


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
    """A `arch` trunk holding `state_dict`, of the options the file holds; every trunk key must match exactly (the
    head is ignored)."""
    state = trunk_state_dict(state_dict)
    net = build_trunk(arch, **registry.load(PACKAGE, check_arch(arch)).options_of(state))
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
    """The trunk stored at `path` (a backbone file, or a vidssl training checkpoint's exported trunk), in eval mode."""
    return _fitted_trunk(_read_state_dict(path), arch, path).eval()


def export_backbone(state_dict: dict, out_path: str | Path) -> None:
    """Save a trunk's state dict without prefixes and head, atomically."""
    state = {k: v.detach().cpu().clone() for k, v in trunk_state_dict(state_dict).items()}
    with atomic_path(out_path) as tmp:
        torch.save(state, tmp)


def random_backbone(arch: str, seed: int, out_path: str | Path, **options) -> None:
    """The "Random init" method: a seeded, untrained trunk exported like the trained ones."""
    torch.manual_seed(seed)
    export_backbone(build_trunk(arch, **options).state_dict(), out_path)


def import_pretrained(path: str | Path, layout: str, arch: str, out_path: str | Path) -> None:
    """Turn an ImageNet checkpoint (torchvision or MoCo layout) into a method's backbone file."""
    if layout not in ("torchvision", "moco"):
        raise UserError(f"pretrained layout {layout!r} for {path} is not one of torchvision, moco")
    state = _read_state_dict(path)
    if layout == "moco" and not any(k.removeprefix("module.").startswith(MOCO_QUERY) for k in state):
        raise UserError(f"{path}: layout moco expects keys module.encoder_q.*; found e.g. {list(state)[:3]}")
    _fitted_trunk(state, arch, path)  # fail now, naming the source file, rather than in feature extraction
    export_backbone(state, out_path)
