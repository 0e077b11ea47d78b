"""The evaluation datasets a config asks for, named here once: each name with the source its image list is built from
(a JSON-able spec that `vidssl.datasets.readers.build_index` reads) and its input size. Nothing parses the names."""
from __future__ import annotations

import os
from dataclasses import dataclass

from vidssl.core.errors import UserError

# The invariance each dataset measures, in the order of the invariance table's columns.
INVARIANCE_TITLES = {
    "got10k_occlusion": "Occlusion",
    "aloi_viewpoint": "Viewpoint",
    "aloi_illumcolor": "Illumination colour",
    "aloi_illumdir": "Illumination direction",
    "pascal3d_instance": "Instance",
    "pascal3d_viewpoint_instance": "Viewpoint + instance",
    "viewpoint": "Viewpoint (synthetic)",
    "illumination": "Illumination (synthetic)",
    "occlusion": "Occlusion (synthetic)",
    "instance": "Instance (synthetic)",
}
ALOI_FOLDERS = {
    "aloi_viewpoint": "ALOI_viewpoint",
    "aloi_illumcolor": "ALOI_illumcolor",
    "aloi_illumdir": "ALOI_illumdir",
}
PASCAL3D_DATASETS = ("pascal3d_viewpoint_instance", "pascal3d_instance")
SYNTHETIC_READERS = ("synthetic", "split")  # the readers that only this module points at the synthetic world


@dataclass(frozen=True)
class EvalPlan:
    invariance: dict[str, dict]  # dataset -> source spec, scored for invariance
    classification: dict[str, dict]  # dataset -> source spec, scored by the classification protocols
    image_sizes: dict[str, int]  # dataset -> input side of its images
    synthetic_folders: dict[str, str]  # dataset -> the synthetic world's folder its list is read from
    skipped: list[dict]  # {"item", "reason"} of datasets the config names but whose data is absent

    @property
    def sources(self) -> dict[str, dict]:
        return {**self.invariance, **self.classification}

    @property
    def datasets(self) -> list[str]:
        return list(self.sources)


def _aloi_sources(root: str, skipped: list[dict]) -> dict[str, dict]:
    sources = {}
    for name, folder in ALOI_FOLDERS.items():
        path = os.path.join(root, folder)
        if os.path.isdir(path):
            sources[name] = {"reader": "aloi", "root": path, "dataset": name}
        else:
            skipped.append({"item": name, "reason": f"{path} is not a folder"})
    if not sources:
        folders = ", ".join(f"{folder}/" for folder in ALOI_FOLDERS.values())
        raise UserError(f"config evaluation.aloi: {root} holds none of {folders}")
    return sources


def _invariance_sources(config: dict, synthetic_root: str, skipped: list[dict]) -> dict[str, dict]:
    evaluation = config["evaluation"]
    sources = {name: {"reader": "synthetic", "root": f"{synthetic_root}/trajectories", "datasets": [name]}
               for name in evaluation["synthetic_sets"]}
    if evaluation["aloi"]:
        sources.update(_aloi_sources(evaluation["aloi"], skipped))
    if evaluation["got10k"]:
        sources["got10k_occlusion"] = {"reader": "got10k", "root": evaluation["got10k"], "seed": evaluation["seed"]}
    if evaluation["pascal3d"]:
        sources.update({name: {"reader": "pascal3d", "root": evaluation["pascal3d"], "dataset": name}
                        for name in PASCAL3D_DATASETS})
    return sources


def synthetic_labelled_split(config: dict) -> dict:
    """How the synthetic labelled set is split by image (vidssl.datasets.labelled.split_index): classification scores
    its test split, and a method that trains on the set sees only its train split."""
    return {"test_fraction": config["classification"]["test_fraction"], "seed": config["seed"]}


def _classification_sources(config: dict, synthetic_root: str) -> dict[str, dict]:
    classification = config["classification"]
    sources = {}
    if classification["synthetic"]:
        sources["synthetic_labelled"] = {"reader": "split", "root": f"{synthetic_root}/labelled",
                                         "dataset": "synthetic_labelled", **synthetic_labelled_split(config)}
    if classification["imagefolder"]:
        folders = classification["imagefolder"]
        sources["imagefolder"] = {"reader": "imagefolder", "train": folders["train"], "val": folders["val"],
                                  "dataset": "imagefolder"}
    if classification["voc07"]:
        sources["voc07"] = {"reader": "voc07", "root": classification["voc07"], "dataset": "voc07"}
    return sources


def eval_plan(config: dict, synthetic_root: str) -> EvalPlan:
    """Every evaluation dataset of a validated, path-resolved config; `synthetic_root` holds the synthetic world."""
    skipped: list[dict] = []
    invariance = _invariance_sources(config, synthetic_root, skipped)
    classification = _classification_sources(config, synthetic_root)
    evaluation = config["evaluation"]
    default_size = evaluation["image_size"] or config["model"]["image_size"]
    sources = {**invariance, **classification}
    sizes = {name: evaluation["image_size_by_dataset"].get(name, default_size) for name in sources}
    synthetic = {name: source["root"] for name, source in sources.items() if source["reader"] in SYNTHETIC_READERS}
    return EvalPlan(invariance, classification, sizes, synthetic, skipped)
