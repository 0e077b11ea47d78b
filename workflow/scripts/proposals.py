"""Snakemake adapter: selective-search proposals on the keyframes of one shard."""
from vidssl.core.cli import run_stage
from vidssl.tracking import proposals

p = snakemake.params.proposals
run_stage(snakemake, lambda log: proposals.propose_shard(
    snakemake.input[0], snakemake.output[0], mode=p["mode"], top_k=p["top_k"], min_size=p["min_size"],
    min_region=p["min_region"], keyframe_every=snakemake.params.keyframe_every, pairs=snakemake.config["pairs"],
    threads=snakemake.threads, log=log))
