"""A training method is an objective (vidssl.training.objectives) on a view source (vidssl.training.views) with a
backbone (vidssl.models). Its name follows one rule, `<objective>-<view>[@<arch>]` (`byol-tracked_patch`,
`dino-frame@vit_s16`; without `@<arch>`, model.arch), and the paper's four names keep their meaning as aliases.

Snakemake builds the DAG from the methods, so this module reads the objective and view modules' declarations without
importing them (vidssl.core.registry): no torch here.
"""
from __future__ import annotations

from dataclasses import dataclass

from vidssl.core import registry
from vidssl.core.errors import UserError

OBJECTIVES, VIEWS = "vidssl.training.objectives", "vidssl.training.views"
# The file sets a view can read (the keyword of vidssl.training.train.train and of the Snakemake input), as errors
# name them.
INPUTS = {"chunks": "chunk containers", "frame_pairs": "frame pairs", "track_pairs": "track pairs"}
ALIASES = {"moco": "moco-frame", "fti": "moco-frame_pair", "region_tracker": "moco-tracked_patch",
           "supervised": "cross_entropy-labelled"}


@dataclass(frozen=True)
class Method:
    name: str  # as the config names it: results/models/{name}/
    objective: str
    view: str
    arch: str | None = None  # None: model.arch

    def model_config(self, model: dict) -> dict:
        """The `model` section this method trains and is evaluated with."""
        return model | {"arch": self.arch} if self.arch else model

    @property
    def view_declares(self) -> dict:
        return registry.declarations(VIEWS, self.view)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The file sets it reads (INPUTS keys); the labelled set, which any run's kNN monitor may read, is apart."""
        return tuple(self.view_declares["INPUTS"])

    @property
    def trains_on_labelled(self) -> bool:
        """The labelled set is its training data, not only the monitor's."""
        return bool(self.view_declares["LABELS"])

    @property
    def config_section(self) -> str | None:
        """The config section the objective reads (named after it), or None."""
        return None if registry.declarations(OBJECTIVES, self.objective)["SCHEMA"] is None else self.objective


def objectives() -> tuple[str, ...]:
    return registry.modules(OBJECTIVES)


def views() -> tuple[str, ...]:
    return registry.modules(VIEWS)


def _parts(name: str) -> tuple[str, str, str]:
    base, _, arch = name.partition("@")
    objective, _, view = ALIASES.get(base, base).partition("-")
    return objective, view, arch


def is_method_name(name: str) -> bool:
    from vidssl.models import archs

    objective, view, arch = _parts(name)
    return objective in objectives() and view in views() and (not arch or arch in archs())


def get(name: str) -> Method:
    """The method a config name stands for; one line naming what is wrong otherwise."""
    objective, view, arch = _parts(name)
    if not is_method_name(name):
        raise UserError(f"training method {name!r} is not one of {', '.join(ALIASES)} nor <objective>-<view>[@<arch>] "
                        f"with an objective of {', '.join(objectives())} and a view of {', '.join(views())}")
    needs, gives = registry.declarations(OBJECTIVES, objective)["LABELS"], registry.declarations(VIEWS, view)["LABELS"]
    if needs != gives:
        raise UserError(f"training method {name!r}: the {objective} objective "
                        f"{'needs labelled samples, which only the labelled view gives' if needs else 'learns without labels, and the labelled view is for labelled objectives'}")
    return Method(name, objective, view, arch or None)


def check_inputs(method: Method, files: dict[str, list[str] | None], labelled: str | None) -> None:
    """Stop with one line when a file set the method reads is not given."""
    for key in method.inputs:
        if not files.get(key):
            raise UserError(f"{method.name} needs {INPUTS[key]}")
    if method.trains_on_labelled and not labelled:
        raise UserError(f"{method.name} needs a labelled ImageFolder set")


def own_optimiser(section: dict) -> tuple[dict, dict]:
    """An objective's config section as the objective is built from it, and the optimiser settings it sets for its
    methods (its `train` keys; none when absent or empty)."""
    section = dict(section)
    return section, section.pop("train", None) or {}


def with_objective_optimiser(cfg: dict) -> dict:
    """A run's config with its objective's own optimiser settings over `train`'s, and the section without them."""
    if not cfg.get("objective") or "train" not in cfg["objective"]:
        return cfg
    section, own = own_optimiser(cfg["objective"])
    return {**cfg, "objective": section, "train": {**cfg["train"], **own}}


def build_objective(method: Method, cfg: dict, classes: int):
    """The method's objective (an nn.Module), from a run's config: seed, model, train and its own section."""
    section = cfg["objective"] if method.config_section else None
    return registry.load(OBJECTIVES, method.objective).build(cfg, section=section, classes=classes)


def view_module(method: Method):
    return registry.load(VIEWS, method.view)
