"""Snakemake adapter: frame pairs of a shard (rule frame_pairs) or the tracks visible in both frames (track_pairs)."""
from vidssl.core.cli import run_stage
from vidssl.tracking import pairs

if snakemake.rule == "frame_pairs":
    p = snakemake.params.pairs
    run_stage(snakemake, lambda log: pairs.write_frame_pairs(snakemake.input[0], snakemake.output[0], k=p["k"], mode=p["mode"]))
else:
    run_stage(snakemake, lambda log: pairs.write_track_pairs(
        snakemake.input.frame_pairs, snakemake.input.tracks, snakemake.output[0]))
