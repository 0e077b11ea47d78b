"""Snakemake adapter: a backbone that is not trained here (seeded random init, or an imported checkpoint)."""
from vidssl.core.cli import run_stage
from vidssl.models import backbone

p = snakemake.params
if snakemake.rule == "random_init":
    run_stage(snakemake, lambda log: backbone.random_backbone(p.arch, p.seed, snakemake.output[0], **p.options))
else:
    run_stage(snakemake, lambda log: backbone.import_pretrained(snakemake.input[0], p.layout, p.arch, snakemake.output[0]))
