"""Snakemake adapter: selective-search proposals for every frame of one shard."""
from vidssl import proposals
from vidssl.cli import run_stage

p = snakemake.params.proposals
run_stage(snakemake, lambda log: proposals.propose_shard(
    snakemake.input[0], snakemake.output[0], mode=p["mode"], top_k=p["top_k"], min_size=p["min_size"],
    min_region=p["min_region"], threads=snakemake.threads, log=log))
