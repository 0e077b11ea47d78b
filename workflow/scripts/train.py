"""Snakemake adapter: train one method on the file sets its spec in vidssl.training.methods reads (under torchrun when
train.gpus > 1)."""
from pathlib import Path

from vidssl.core.cli import paths, run_stage
from vidssl.training import methods, train

p, inputs = snakemake.params, snakemake.input
job = dict(
    method=p.method,
    **{key: paths(getattr(inputs, key)) for key in methods.get(p.method).inputs},
    # the synthetic labelled set is a rule output; a user's ImageFolder is a checked config path
    labelled=next(iter(paths(inputs.labelled)), None) or p.labelled,
    out_dir=str(Path(snakemake.output.checkpoint).parent),
    # a method trained on the synthetic labelled set sees only the train split that classification does not test on
    cfg={"seed": p.seed, "model": p.model, "moco": p.moco, "train": p.train, "labelled_split": p.labelled_split},
)

run_stage(snakemake, lambda log: train.launch(job, log=log))
