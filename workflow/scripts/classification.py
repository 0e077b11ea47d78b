"""Snakemake adapter: the downstream classification scores of one method on every classification set."""
from vidssl.core.cli import paths, run_stage
from vidssl.core.io import write_csv
from vidssl.evaluation import classification

run_stage(snakemake, lambda log: write_csv(
    classification.score_method(paths(snakemake.input.features), paths(snakemake.input.images),
                                seed=snakemake.params.seed, resamples=snakemake.params.resamples, log=log),
    snakemake.output[0]))
