"""Snakemake adapter: the part-segmentation probe of one method and probe seed, per object class and test image."""
from vidssl.contracts import PROBE_IMAGES
from vidssl.core.cli import run_stage
from vidssl.core.io import write_csv
from vidssl.evaluation import partseg_probe

p = snakemake.params


def stage(log):
    classes, images = partseg_probe.probe_all(snakemake.input.crops, snakemake.input.features, classes=p.classes,
                                              size=p.size, epochs=p.epochs, lr=p.lr,
                                              seed=int(snakemake.wildcards.probe_seed), log=log)
    log.info("\n%s", classes.to_string())
    write_csv(classes, snakemake.output.classes)
    PROBE_IMAGES.write(images, snakemake.output.images)


run_stage(snakemake, stage)
