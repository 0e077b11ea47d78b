"""Snakemake adapter: loss and kNN curves of one training run."""
from vidssl.core.cli import run_stage
from vidssl.report import figures

run_stage(snakemake, lambda log: figures.plot_training(snakemake.input[0], snakemake.output[0]))
