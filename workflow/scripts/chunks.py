"""Snakemake adapter: decode one shard's chunks into its JPEG container."""
from vidssl.core.cli import run_stage
from vidssl.core.io import read_parquet
from vidssl.video.chunks import extract_chunks


def stage(log):
    c = snakemake.params.chunks
    summary = extract_chunks(
        read_parquet(snakemake.input[0]), snakemake.output[0], shard=int(snakemake.wildcards.shard),
        per_video=c["per_video"], length=c["length"], max_side=c["max_side"], jpeg_quality=c["jpeg_quality"], log=log)
    log.info("%d chunks, %d frames, %d skipped", summary["chunks"], summary["frames"], len(summary["skipped"]))


run_stage(snakemake, stage)
