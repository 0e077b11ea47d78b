"""Checks of a validated config that a JSON schema cannot express, and the names the DAG is built from."""
from __future__ import annotations

import re
from pathlib import Path

from vidssl.core import registry
from vidssl.core.errors import UserError, check_multiple
from vidssl.datasets import sources
from vidssl.models import check_arch, min_side
from vidssl.training import methods as training_methods

SYNTHETIC_ROOT = "resources/synthetic"
# The `train` keys an objective's section may set for its own methods (`<objective>.train`): the optimiser's, never the
# budget (steps, batch) that every row of a comparison shares.
OPTIMISER_KEYS = ("optimizer", "lr", "weight_decay", "momentum", "warmup_steps", "clip_grad")


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
    check_arch(config["model"]["arch"])
    trained = [training_methods.get(m) for m in train["methods"]]
    for name, entry in config["pretrained"].items():
        if name == "random" or training_methods.is_method_name(name):
            raise UserError(f"config pretrained.{name}: the name is taken by a built-in method")
        entry["path"] = _existing(entry["path"], f"pretrained.{name}.path", kind="file")
    known = {"random", *train["methods"], *config["pretrained"]}
    unknown = [m for m in config["table5"]["methods"] if m not in known]
    if unknown:
        raise UserError(f"config table5.methods: {unknown} are neither trained (train.methods), 'random', nor pretrained")
    _check_table5_reference(config)
    _check_display_names(config)
    on_labelled = [m.name for m in trained if m.trains_on_labelled]
    if on_labelled and train["labelled"] is None and videos["source"] != "synthetic":
        raise UserError(f"config train.methods: {on_labelled[0]!r} needs train.labelled (an ImageFolder) outside the "
                        "synthetic world")
    check_objectives(config, trained)
    if not eval_plan(config).invariance:
        raise UserError("config evaluation: no invariance dataset (synthetic_sets empty and none of aloi, got10k, "
                        "pascal3d given)")
    return config


def table5_reference(config: dict) -> str:
    """The row every other row of Table 5 is compared with: table5.reference, or the first of table5.methods."""
    return config["table5"]["reference"] or config["table5"]["methods"][0]


def _check_table5_reference(config: dict) -> None:
    reference, rows = table5_reference(config), config["table5"]["methods"]
    if reference not in rows:
        raise UserError(f"config table5.reference: {reference!r} is not one of table5.methods {rows}")


def check_gpu_requests(gpus: int, requests: dict[str, int]) -> None:
    """Each rule's GPU request (rule name -> the `gpu` resource a profile or --set-resources gives it) against what it
    uses: the train rule starts exactly train.gpus processes, feature extraction uses one device."""
    for rule, gpu in requests.items():
        allowed = gpus if rule == "train" else 1
        if gpu != allowed:
            raise UserError(f"rule {rule} asks for {gpu} GPUs but uses {allowed} (train.gpus = {gpus}); "
                            "set train.gpus in the config, not gpu in the profile")


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
        "labelled": config["train"]["labelled"] is None and bool(any(training_methods.get(m).trains_on_labelled for m in config["train"]["methods"]) or config["train"]["knn_every"]),
        "partseg": config["partseg"]["images"] is None,
        "trajectories": bool(config["evaluation"]["synthetic_sets"]),
    }


def labelled_split(config: dict, method: str) -> dict | None:
    """The split of the labelled set `method` trains on: the synthetic set's (so that it never trains on the images
    classification tests on) when the method trains on that set, else None (every image)."""
    if training_methods.get(method).trains_on_labelled and config["train"]["labelled"] is None:
        return sources.synthetic_labelled_split(config)
    return None


def check_objectives(config: dict, trained: list) -> None:
    """Every top-level section the main schema does not know is an objective's (named after its module), valid by
    the schema fragment the objective declares, and every objective a trained method uses has its section. A
    `MULTIPLE_OF_BATCH` declaration lists the section's keys that must be multiples of the global batch (MoCo's
    queue)."""
    import jsonschema

    schema = _main_schema()
    train_keys = schema["properties"]["train"]["properties"]
    overrides = {"type": "object", "additionalProperties": False,
                 "properties": {key: train_keys[key] for key in OPTIMISER_KEYS}}
    for name in set(config) - set(schema["properties"]):
        if name not in training_methods.objectives() or _fragment(name) is None:
            raise UserError(f"config {name}: not a known section nor an objective's "
                            f"({', '.join(o for o in training_methods.objectives() if _fragment(o) is not None)})")
        section, own = training_methods.own_optimiser(config[name])
        for where, value, against in ((f"{name}.train", own, overrides), (name, section, _fragment(name))):
            try:
                jsonschema.validate(value, against)
            except jsonschema.ValidationError as error:
                at = ".".join(map(str, [where, *error.absolute_path]))
                hint = f" (an objective sets only {', '.join(OPTIMISER_KEYS)})" if against is overrides else ""
                raise UserError(f"invalid config at {at}: {error.message}{hint}") from None
    for method in trained:
        if method.config_section and method.config_section not in config:
            raise UserError(f"config train.methods: {method.name!r} needs a `{method.config_section}` section")
        declared = registry.declarations(training_methods.OBJECTIVES, method.objective)
        for key in declared.get("MULTIPLE_OF_BATCH", ()):
            check_multiple(f"{method.objective}.{key}", config[method.objective][key], config["train"]["batch_size"])
        _check_crop_sides(config, method)


def _check_crop_sides(config: dict, method) -> None:
    """Every crop a method's objective asks for is at least the smallest input its backbone takes (a ViT's patch)."""
    section, model = method.config_section, method.model_config(config["model"])
    smallest = min_side(model["arch"])
    sides = {"model.image_size": model["image_size"]}
    if section and config[section].get("local_crops"):
        sides[f"{section}.local_size"] = max(8, round(config[section]["local_size"] * model["image_size"]))
    for key, side in sides.items():
        if side < smallest:
            raise UserError(f"config {key}: crops of {side} px are smaller than {model['arch']}'s smallest input "
                            f"({smallest} px)")


def _fragment(objective: str) -> dict | None:
    return registry.declarations(training_methods.OBJECTIVES, objective)["SCHEMA"]


def _main_schema() -> dict:
    import yaml

    return yaml.safe_load((Path(__file__).parents[2] / "workflow" / "schemas" / "config.schema.yaml").read_text())


def eval_plan(config: dict) -> sources.EvalPlan:
    """The invariance and classification datasets of a checked config, each with its source and input size."""
    return sources.eval_plan(config, SYNTHETIC_ROOT)


def methods(config: dict) -> list[str]:
    """Every method whose backbone is evaluated: Table 5's rows first, then any other trained method."""
    rows = config["table5"]["methods"]
    return rows + [m for m in config["train"]["methods"] if m not in rows]


def arch_of(config: dict, method: str) -> str:
    """The backbone architecture of a method's backbone file: a trained method's own, else model.arch (random init,
    pretrained checkpoints)."""
    if method in config["train"]["methods"]:
        return training_methods.get(method).model_config(config["model"])["arch"]
    return config["model"]["arch"]


def display_name(config: dict, method: str) -> str:
    return config["table5"]["names"].get(method, method)


def wildcard_choice(names: list[str]) -> str:
    """A wildcard constraint that matches exactly one of `names`, taken literally (no name: nothing)."""
    return "|".join(map(re.escape, names)) or "(?!)"
