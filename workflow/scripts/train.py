"""Snakemake adapter: train one method on the file sets its view source reads (under torchrun when train.gpus > 1).
The settings that cannot change the weights (vidssl.training.fingerprint.RUN_SETTINGS) come from the config, not from
params, so that changing them never reruns training."""
from pathlib import Path

from vidssl.core.cli import paths, run_stage
from vidssl.training import methods, train
from vidssl.training.fingerprint import RUN_SETTINGS

p, inputs, method = snakemake.params, snakemake.input, snakemake.wildcards.method
job = dict(
    method=method,
    **{key: paths(getattr(inputs, key)) for key in methods.get(method).inputs},
    # the synthetic labelled set is a rule output; a user's ImageFolder is a checked config path
    labelled=next(iter(paths(inputs.labelled)), None) or p.labelled,
    out_dir=str(Path(snakemake.output.checkpoint).parent),
    # a method trained on the synthetic labelled set sees only the train split that classification does not test on
    cfg={"seed": p.seed, "model": p.model, "objective": p.objective, "labelled_split": p.labelled_split,
         "train": p.train | {key: snakemake.config["train"][key] for key in RUN_SETTINGS}},
)

run_stage(snakemake, lambda log: train.launch(job, log=log), job=f"train {method}")
