"""Snakemake adapter: the part-segmentation probe of one method, per object class."""
from vidssl import partseg_probe
from vidssl.cli import run_stage
from vidssl.io import write_csv

p = snakemake.params


def stage(log):
    results = partseg_probe.probe_all(snakemake.input.crops, snakemake.input.features, classes=p.classes, size=p.size,
                                epochs=p.epochs, lr=p.lr, seed=p.seed)
    log.info("\n%s", results.to_string())
    write_csv(results, snakemake.output[0])


run_stage(snakemake, stage)
