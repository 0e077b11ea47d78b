"""Snakemake adapter: every method's classification scores in one table."""
from pathlib import Path

import pandas as pd

from vidssl.core.cli import run_stage
from vidssl.core.io import write_csv
from vidssl.evaluation.classification import stack_methods

run_stage(snakemake, lambda log: write_csv(
    stack_methods({Path(path).stem: pd.read_csv(path) for path in snakemake.input}), snakemake.output[0],
    float_format="%.2f"))
