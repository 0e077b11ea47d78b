"""Snakemake adapter: link one shard's proposals into tracks."""
from vidssl.core.cli import run_stage
from vidssl.tracking import tracks

t = snakemake.params.tracks
run_stage(snakemake, lambda log: tracks.track_shard(
    snakemake.input.chunks, snakemake.input.proposals, snakemake.output[0],
    score_threshold=t["score_threshold"], min_length=t["min_length"], link_floor=t["link_floor"],
    snap_iou=t["snap_iou"], max_missed=t["max_missed"], points=t["points"], fb_error=t["fb_error"],
    max_tracks=t["max_tracks_per_chunk"], log=log))
