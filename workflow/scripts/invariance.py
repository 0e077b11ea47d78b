"""Snakemake adapter: every invariance measure of one method on every evaluation dataset."""
from vidssl.cli import run_stage
from vidssl.invariance import score_feature_files
from vidssl.io import write_csv

run_stage(snakemake, lambda log: write_csv(
    score_feature_files(list(snakemake.input), **snakemake.params.invariance, seed=snakemake.params.seed),
    snakemake.output[0]))
