"""Snakemake adapter: every invariance measure of one method on every evaluation dataset."""
from vidssl.core.cli import run_stage
from vidssl.core.io import write_csv
from vidssl.evaluation.invariance import score_feature_files

run_stage(snakemake, lambda log: write_csv(
    score_feature_files(list(snakemake.input), **snakemake.params.invariance, seed=snakemake.params.seed),
    snakemake.output[0]))
