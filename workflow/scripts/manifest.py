"""Snakemake adapter: list the input videos and assign them to shards."""
from vidssl.core.cli import run_stage
from vidssl.video.manifest import build_manifest, list_videos, write_manifest


def stage(log):
    p = snakemake.params
    entries = list_videos(p.source, p.path, splits=p.splits)
    manifest = build_manifest(entries, shards=p.shards, chunk_len=p.chunk_len)
    for row in manifest[manifest.skip_reason != ""].itertuples():
        log.warning("skipped %s: %s", row.video, row.skip_reason)
    write_manifest(manifest, snakemake.output[0])
    log.info("%d videos, %d skipped, %d shards", len(manifest), (manifest.skip_reason != "").sum(), p.shards)


run_stage(snakemake, stage)
