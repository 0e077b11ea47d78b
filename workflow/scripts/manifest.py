"""Snakemake adapter: list the input videos and assign them to shards."""
from vidssl import video
from vidssl.cli import run_stage


def stage(log):
    p = snakemake.params
    entries = video.list_videos(p.source, p.path, splits=p.splits)
    manifest = video.build_manifest(entries, shards=p.shards, chunk_len=p.chunk_len)
    for row in manifest[manifest.skip_reason != ""].itertuples():
        log.warning("skipped %s: %s", row.video, row.skip_reason)
    video.write_manifest(manifest, snakemake.output[0])
    log.info("%d videos, %d skipped, %d shards", len(manifest), (manifest.skip_reason != "").sum(), p.shards)


run_stage(snakemake, stage)
