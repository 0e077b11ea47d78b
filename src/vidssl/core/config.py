"""Checks of a validated config that a JSON schema cannot express, and the names the DAG is built from."""
from __future__ import annotations

import re
from pathlib import Path

from vidssl.core.errors import UserError
from vidssl.datasets import sources
from vidssl.training.methods import METHODS

SYNTHETIC_ROOT = "resources/synthetic"


def schema_error_line(message: str) -> str:
    """Reduce a jsonschema/Snakemake validation message to one line naming the key and the problem."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    problem = next((l for l in lines if not l.lower().startswith(("error validating", "failed validating"))), lines[0] if lines else "")
    where = next((l for l in lines if l.startswith("On instance")), "")
    key = _instance_key(where)
    problem = problem.removeprefix("ValidationError: ")
    return f"invalid config{f' at {key}' if key else ''}: {problem}"


def _instance_key(where: str) -> str:
    """jsonschema's "On instance['table5']['methods'][1]:" as "table5.methods[1]"."""
    steps = re.findall(r"\['([^']*)'\]|\[(\d+)\]", where)
    return "".join(f"[{index}]" if index else f".{name}" for name, index in steps).removeprefix(".")


def _existing(value: str | None, key: str, *, kind: str = "any") -> str | None:
    """Resolve a configured path and check it exists; None stays None."""
    if value is None:
        return None
    path = Path(value).expanduser().resolve()
    if not path.exists():
        raise UserError(f"config {key}: {path} does not exist")
    if kind == "dir" and not path.is_dir():
        raise UserError(f"config {key}: {path} is not a folder")
    if kind == "file" and not path.is_file():
        raise UserError(f"config {key}: {path} is not a file")
    return str(path)


def check_queue(queue: int, batch: int) -> None:
    """Each MoCo step enqueues a whole global batch of keys, so the queue must hold a whole number of batches."""
    if queue % batch:
        raise UserError(f"config moco.queue ({queue}) must be a multiple of train.batch_size ({batch}): "
                        f"moco.queue {queue} leaves {queue % batch} slots over")


def check(config: dict) -> dict:
    """Resolve and check paths and method names in place; return the config."""
    videos = config["videos"]
    if videos["source"] == "synthetic":
        videos["path"] = f"{SYNTHETIC_ROOT}/videos"
    elif videos["path"] is None:
        raise UserError(f"config videos.path: required when videos.source is {videos['source']}")
    else:
        videos["path"] = _existing(videos["path"], "videos.path", kind="dir")
    train, partseg, evaluation = config["train"], config["partseg"], config["evaluation"]
    train["labelled"] = _existing(train["labelled"], "train.labelled", kind="dir")
    for key in ("images", "annotations", "split_lists"):
        partseg[key] = _existing(partseg[key], f"partseg.{key}", kind="dir")
    if (partseg["images"] is None) != (partseg["annotations"] is None):
        raise UserError("config partseg.images and partseg.annotations: give both (real Pascal-Part) or neither (synthetic)")
    for key in ("aloi", "got10k", "pascal3d"):
        evaluation[key] = _existing(evaluation[key], f"evaluation.{key}", kind="dir")
    classification = config["classification"]
    classification["voc07"] = _existing(classification["voc07"], "classification.voc07", kind="dir")
    for split in ("train", "val") if classification["imagefolder"] else ():
        folders = classification["imagefolder"]
        folders[split] = _existing(folders[split], f"classification.imagefolder.{split}", kind="dir")
    for name, entry in config["pretrained"].items():
        if name in METHODS or name == "random":
            raise UserError(f"config pretrained.{name}: the name is taken by a built-in method")
        entry["path"] = _existing(entry["path"], f"pretrained.{name}.path", kind="file")
    known = {"random", *train["methods"], *config["pretrained"]}
    unknown = [m for m in config["table5"]["methods"] if m not in known]
    if unknown:
        raise UserError(f"config table5.methods: {unknown} are neither trained (train.methods), 'random', nor pretrained")
    _check_display_names(config)
    on_labelled = [m for m in train["methods"] if METHODS[m].trains_on_labelled]
    if on_labelled and train["labelled"] is None and videos["source"] != "synthetic":
        raise UserError(f"config train.methods: {on_labelled[0]!r} needs train.labelled (an ImageFolder) outside the "
                        "synthetic world")
    check_queue(config["moco"]["queue"], config["train"]["batch_size"])
    if not eval_plan(config).invariance:
        raise UserError("config evaluation: no invariance dataset (synthetic_sets empty and none of aloi, got10k, "
                        "pascal3d given)")
    return config


def _check_display_names(config: dict) -> None:
    """Two methods shown under one name would make two indistinguishable rows of every table and figure."""
    shown: dict[str, str] = {}
    for method in methods(config):
        name = display_name(config, method)
        if name in shown:
            raise UserError(f"config table5.names: {shown[name]} and {method} would both be shown as {name!r}")
        shown[name] = method


def uses_synthetic(config: dict) -> dict[str, bool]:
    """Which parts of the synthetic world this config reads."""
    return {
        "videos": config["videos"]["source"] == "synthetic",
        "labelled": config["train"]["labelled"] is None and bool(any(METHODS[m].trains_on_labelled for m in config["train"]["methods"]) or config["train"]["knn_every"]),
        "partseg": config["partseg"]["images"] is None,
        "trajectories": bool(config["evaluation"]["synthetic_sets"]),
    }


def labelled_split(config: dict, method: str) -> dict | None:
    """The split of the labelled set `method` trains on: the synthetic set's (so that it never trains on the images
    classification tests on) when the method trains on that set, else None (every image)."""
    if METHODS[method].trains_on_labelled and config["train"]["labelled"] is None:
        return sources.synthetic_labelled_split(config)
    return None


def eval_plan(config: dict) -> sources.EvalPlan:
    """The invariance and classification datasets of a checked config, each with its source and input size."""
    return sources.eval_plan(config, SYNTHETIC_ROOT)


def methods(config: dict) -> list[str]:
    """Every method whose backbone is evaluated: Table 5's rows first, then any other trained method."""
    rows = config["table5"]["methods"]
    return rows + [m for m in config["train"]["methods"] if m not in rows]


def display_name(config: dict, method: str) -> str:
    return config["table5"]["names"].get(method, method)


def wildcard_choice(names: list[str]) -> str:
    """A wildcard constraint that matches exactly one of `names`, taken literally (no name: nothing)."""
    return "|".join(map(re.escape, names)) or "(?!)"
