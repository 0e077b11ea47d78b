"""Backbones (feature maps by name and stride, pooled and box features: vidssl.models.backbone), one module per family.

Which architectures exist is read from the backbone modules' declarations without importing them (torch-free, for the
config check at the start of a run).
"""
from __future__ import annotations

from vidssl.core import registry
from vidssl.core.errors import UserError

PACKAGE = "vidssl.models"


def archs() -> dict[str, str]:
    """Every architecture a backbone module of this package declares (ARCHS) -> that module."""
    return {arch: module for module in registry.modules(PACKAGE)
            for arch in registry.declarations(PACKAGE, module).get("ARCHS", ())}


def check_arch(arch: str) -> str:
    """The module that builds `arch`; one line naming the choices otherwise."""
    module = archs().get(arch)
    if module is None:
        raise UserError(f"model.arch {arch!r} is not one of {', '.join(archs())}")
    return module


def options(arch: str, model_cfg: dict) -> dict:
    """The keys of a config's `model` section that `arch`'s module takes (its OPTIONS declaration)."""
    wanted = registry.declarations(PACKAGE, check_arch(arch)).get("OPTIONS", ())
    return {key: model_cfg[key] for key in wanted}


def min_side(arch: str) -> int:
    """The smallest input side `arch` takes (its module's MIN_SIDE declaration; 1 if it declares none)."""
    return registry.declarations(PACKAGE, check_arch(arch)).get("MIN_SIDE", {}).get(arch, 1)
