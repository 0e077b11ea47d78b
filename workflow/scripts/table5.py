"""Snakemake adapter: Table 5 (CSV and Markdown) from every method's probe results."""
import pandas as pd

from vidssl import table5
from vidssl.cli import run_stage

p = snakemake.params


def stage(log):
    results = {method: pd.read_csv(path) for method, path in zip(p.methods, snakemake.input)}
    table = table5.build_table(results, p.display_names, p.classes)
    table5.write_table(table, snakemake.output.csv, snakemake.output.markdown)
    log.info("\n%s", table.to_string(index=False))


run_stage(snakemake, stage)
