"""Snakemake adapter: the part-segmentation probe of one method and probe seed, per object class and test image."""
from vidssl.core.cli import run_stage
from vidssl.core.io import write_csv, write_parquet
from vidssl.evaluation import partseg_probe

p = snakemake.params


def stage(log):
    classes, images = partseg_probe.probe_all(snakemake.input.crops, snakemake.input.features, classes=p.classes,
                                              size=p.size, epochs=p.epochs, lr=p.lr,
                                              seed=int(snakemake.wildcards.probe_seed), log=log)
    log.info("\n%s", classes.to_string())
    write_csv(classes, snakemake.output.classes)
    write_parquet(images, snakemake.output.images, sort_by=["image", "class_name"])


run_stage(snakemake, stage)
