"""Snakemake adapter: write the resolved configuration of the run."""
import yaml

from vidssl.core.cli import run_stage
from vidssl.core.io import atomic_path


def stage(log):
    with atomic_path(snakemake.output[0]) as tmp:
        tmp.write_text(yaml.safe_dump(dict(snakemake.params.config), sort_keys=False))


run_stage(snakemake, stage)
