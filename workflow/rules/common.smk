# Config validation (schema, then vidssl.config's checks), the names the DAG is built from, the input functions every
# stage shares and the default targets.
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from vidssl import config as vidssl_config
from vidssl import models as vidssl_models
from vidssl.training import methods as vidssl_methods
from vidssl.training.fingerprint import RUN_SETTINGS
from vidssl.core.integrity import find_broken, stale_temps
from vidssl.core.errors import UserError


def _fail(message):
    print(f"vidssl: {message}", file=sys.stderr)
    sys.exit(1)


try:
    validate(config, "../schemas/config.schema.yaml")  # types and ranges: every default is in config/config.yaml
    vidssl_config.check(config)
except WorkflowError as error:
    _fail(vidssl_config.schema_error_line(error))
except UserError as error:
    _fail(error)


def clean_start(rules):
    """Remove what would mislead this run, touching only files the pipeline itself writes: an output of `rules` cut
    short outside our atomic writes (a copy, disk corruption), which would look up to date, so that it is rebuilt;
    and the temp file of a job killed mid-write whose writer is certainly gone (vidssl.core.integrity.stale_temps). Only the
    main process cleans (cluster jobs re-read this file), and a dry run changes nothing. Called once every rule exists.
    """
    if not workflow.is_main_process:
        return
    outputs = [output for rule in rules for output in rule.output]

    def ours(path):
        return any(output.match(path) for output in outputs)

    found = [(path, "is truncated", " so that it is rebuilt") for path in find_broken("results", ours)]
    for root in ("results", "resources"):
        found += [(path, "is the temp file of a job that is gone", "") for path in stale_temps(root)]
    dry = workflow.output_settings.dryrun
    for path, what, why in found:
        if not dry:
            path.unlink(missing_ok=True)
        print(f"vidssl: {path} {what}; {'a real run removes it' if dry else 'removed'}{why}", file=sys.stderr)


SYNTH = vidssl_config.SYNTHETIC_ROOT
SYNTH_USED = vidssl_config.uses_synthetic(config)
SHARDS = [f"{i:04d}" for i in range(config["videos"]["shards"])]
TRAINED_METHODS = config["train"]["methods"]
METHODS = vidssl_config.methods(config)
EVAL_PLAN = vidssl_config.eval_plan(config)
EVAL_DATASETS = list(EVAL_PLAN.invariance)
CLASSIFICATION_DATASETS = list(EVAL_PLAN.classification)
if workflow.is_main_process:
    for missing in EVAL_PLAN.skipped:
        print(f"vidssl: dataset {missing['item']} skipped: {missing['reason']}", file=sys.stderr)
PRETRAINED = sorted(config["pretrained"])
# Relative to workflow/rules/, where every rule is defined.
CONDA_ENV = "../../envs/vidssl.yaml"

wildcard_constraints:
    shard=r"\d{4}",
    method=vidssl_config.wildcard_choice(METHODS),
    dataset=vidssl_config.wildcard_choice(EVAL_PLAN.datasets + ["partseg"]),


# Real Pascal-Part when the config names it, else the synthetic part set.
if config["partseg"]["images"]:
    PARTSEG_IMAGES, PARTSEG_ANNOTATIONS = config["partseg"]["images"], config["partseg"]["annotations"]
else:
    PARTSEG_IMAGES, PARTSEG_ANNOTATIONS = f"{SYNTH}/pascal_part/JPEGImages", f"{SYNTH}/pascal_part/Annotations_Part"


def synthetic_input(use, folder):
    """A synthetic folder is a rule output, so a stage reading it depends on it; user-given data is outside the DAG."""
    return [f"{SYNTH}/{folder}"] if SYNTH_USED[use] else []


def video_input(wildcards=None):
    return synthetic_input("videos", "videos")


def labelled_input(wildcards=None):
    return synthetic_input("labelled", "labelled")


def part_set_input(wildcards=None):
    return synthetic_input("partseg", "pascal_part")


def eval_index_input(wildcards):
    """The synthetic folder a dataset's image list is read from (a rule output); none for user-given data."""
    folder = EVAL_PLAN.synthetic_folders.get(wildcards.dataset)
    return [folder] if folder else []


def shard_files(pattern):
    return expand(pattern, shard=SHARDS)


# Where the workflow puts each file set a training method can read (the keys of vidssl.training.methods.INPUTS).
TRAIN_INPUT_FILES = {
    "chunks": "results/chunks/{shard}.h5",
    "frame_pairs": "results/pairs/{shard}.frames.parquet",
    "track_pairs": "results/pairs/{shard}.tracks.parquet",
}


def train_input(wildcards):
    """The files a training method's view source reads (vidssl.training.methods), and the labelled set."""
    reads = vidssl_methods.get(wildcards.method).inputs
    return {key: shard_files(TRAIN_INPUT_FILES[key]) for key in reads} | {"labelled": labelled_input()}


def objective_section(wildcards):
    """The config section of a training method's objective (named after it; its `train` keys are the objective's own
    optimiser settings, applied by the trainer), or none."""
    section = vidssl_methods.get(wildcards.method).config_section
    return config[section] if section else None


# The `train` settings that change what training computes (the others: vidssl.training.fingerprint.RUN_SETTINGS).
TRAIN_WEIGHT_SETTINGS = {key: value for key, value in config["train"].items() if key not in RUN_SETTINGS}


def all_targets():
    """What a bare `snakemake` builds: Table 5, the run's config, the invariance scores, the classification scores
    and the figures."""
    return [
        "results/table5.csv",
        "results/table5.md",
        "results/config.yaml",
        "results/invariance.csv",
        "results/invariance_table.md",
        "results/figures/invariance.png",
        "results/classification.csv",
        *expand("results/figures/tracks_{shard}.png", shard=SHARDS[:1]),
        *expand("results/figures/training_{method}.png", method=TRAINED_METHODS),
    ]


def check_gpu_requests(candidates):
    """Stop before any submission when a profile or --set-resources asks SLURM for GPUs a job would not use
    (vidssl.config.check_gpu_requests); called once every rule exists."""
    requests = {}
    for candidate in candidates:
        gpu = candidate.resources.get("gpu")
        gpu = getattr(gpu, "value", gpu)
        if isinstance(gpu, int) and gpu != 0:
            requests[candidate.name] = gpu
    try:
        vidssl_config.check_gpu_requests(config["train"]["gpus"], requests)
    except UserError as error:
        _fail(error)
