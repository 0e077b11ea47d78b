"""Snakemake adapter: features of one evaluation dataset under one method's frozen backbone."""
from vidssl import features
from vidssl.cli import run_stage
from vidssl.devices import claim_gpus

p = snakemake.params
claim_gpus(snakemake.resources.gpu)
run_stage(snakemake, lambda log: features.extract(
    snakemake.input.backbone, snakemake.input.images, snakemake.output[0], arch=p.arch, image_size=p.image_size,
    batch_size=p.batch_size, method=snakemake.wildcards.method, dataset=snakemake.wildcards.dataset,
    workers=max(snakemake.threads - 1, 0), log=log))
