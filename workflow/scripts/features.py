"""Snakemake adapter: features of every evaluation dataset (or of the part crops) under one method's backbone."""
from pathlib import Path

from vidssl.core.cli import paths, run_stage
from vidssl.core.devices import claim_gpus
from vidssl.evaluation import features

p = snakemake.params
jobs = [(Path(out).stem, path, out) for path, out in zip(paths(snakemake.input.images), snakemake.output)]
claim_gpus(snakemake.resources.gpu)
run_stage(snakemake, lambda log: features.extract(
    snakemake.input.backbone, jobs, arch=p.arch, image_size=p.image_size, batch_size=p.batch_size,
    method=snakemake.wildcards.method, log=log))
