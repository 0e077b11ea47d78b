"""Snakemake adapter: loss and kNN curves of one training run."""
from vidssl import figures
from vidssl.cli import run_stage

run_stage(snakemake, lambda log: figures.plot_training(snakemake.input[0], snakemake.output[0]))
