"""Snakemake adapter: contact sheet of frames with their proposals and tracks."""
from vidssl.core.cli import run_stage
from vidssl.report import figures

run_stage(snakemake, lambda log: figures.contact_sheet(
    snakemake.input.chunks, snakemake.input.proposals, snakemake.input.tracks, snakemake.output[0]))
