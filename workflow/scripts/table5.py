"""Snakemake adapter: Table 5 (CSV and Markdown) and its intervals from every method's probe results, one file pair
per method and probe seed."""
import pandas as pd

from vidssl.contracts import PROBE_IMAGES
from vidssl.core.cli import run_stage
from vidssl.core.io import write_csv
from vidssl.evaluation import table5, table5_intervals

p = snakemake.params


def by_method(paths, read):
    """expand() lists the seeds of one method together, the methods in table5.methods order."""
    seeds = len(p.seeds)
    return {method: [read(path) for path in paths[i * seeds:(i + 1) * seeds]] for i, method in enumerate(p.methods)}


def stage(log):
    classes = by_method(list(snakemake.input.classes), pd.read_csv)
    counts = table5_intervals.stack_counts(by_method(list(snakemake.input.images), PROBE_IMAGES.read), p.classes)
    ci = table5_intervals.intervals(counts, reference=p.reference, resamples=p.resamples, seed=p.seed)
    table = table5.build_table({m: table5_intervals.mean_over_seeds(f) for m, f in classes.items()}, p.display_names,
                               p.classes)
    annotated = table5_intervals.annotated_table(ci, p.display_names)
    table5.write_table(table, snakemake.output.csv, snakemake.output.markdown, annotated=annotated,
                       legend=table5_intervals.legend(len(p.seeds), p.resamples, p.display_names[p.reference]))
    write_csv(ci, snakemake.output.intervals, float_format="%.3f")
    log.info("\n%s", annotated.to_string(index=False))


run_stage(snakemake, stage)
