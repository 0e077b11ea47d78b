"""Snakemake adapter: every invariance measure of one method on every evaluation dataset."""
from pathlib import Path

import h5py
import pandas as pd

from vidssl import invariance
from vidssl.cli import run_stage
from vidssl.io import UserError, write_csv

p = snakemake.params.invariance


def stage(log):
    rows = []
    for path in snakemake.input:
        try:
            with h5py.File(path, "r") as h5:
                features, labels, sets = h5["features"][:], h5["label"][:], h5["set"][:]
        except (OSError, KeyError) as error:
            raise UserError(f"{path}: not a readable feature file ({error}); delete it and rerun") from error
        try:
            scores = invariance.score_all(features, labels, sets, top_ks=p["top_k"], firing_rate=p["firing_rate"],
                                          min_set_size=p["min_set_size"])
        except UserError as error:  # NaN features, a set mixing classes: say which file
            raise UserError(f"{path}: {error}") from error
        for row in scores:
            rows.append({"dataset": Path(path).stem, **row})
            log.info("%s", rows[-1])
    write_csv(pd.DataFrame(rows), snakemake.output[0])


run_stage(snakemake, stage)
