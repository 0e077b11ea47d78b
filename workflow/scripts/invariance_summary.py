"""Snakemake adapter: all methods' invariance scores in one long table, the paper's wide table and one chart."""
from pathlib import Path

import pandas as pd

from vidssl.core.cli import run_stage
from vidssl.core.io import write_csv
from vidssl.datasets.sources import INVARIANCE_TITLES
from vidssl.evaluation import summary


def stage(log):
    tables = {Path(path).stem: pd.read_csv(path) for path in snakemake.input}
    combined = summary.combine(tables, snakemake.params.display_names)
    write_csv(combined, snakemake.output.table)
    summary.write_invariance_table(summary.invariance_table(combined, INVARIANCE_TITLES), snakemake.output.paper_table)
    summary.plot_invariance(combined, snakemake.output.chart)


run_stage(snakemake, stage)
