"""Snakemake adapter: the image list of one evaluation dataset, from the source its name was planned with."""
from vidssl.core.cli import run_stage
from vidssl.datasets.readers import write_index

run_stage(snakemake, lambda log: write_index(snakemake.params.source, snakemake.output[0], log=log))
