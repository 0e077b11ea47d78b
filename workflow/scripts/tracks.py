"""Snakemake adapter: link one shard's proposals into tracks."""
from vidssl.core.cli import run_stage
from vidssl.tracking import tracks

run_stage(snakemake, lambda log: tracks.track_shard(
    snakemake.input.chunks, snakemake.input.proposals, snakemake.output[0],
    **tracks.link_settings(snakemake.params.tracks), log=log))
