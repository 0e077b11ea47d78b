"""Snakemake adapter: object crops and part maps of the part-segmentation set."""
from vidssl.core.cli import run_stage
from vidssl.evaluation import partseg_crops

p, c = snakemake.params, snakemake.params.crops


def stage(log):
    summary = partseg_crops.make_crops(
        p.images, p.annotations, snakemake.output[0], classes=c["classes"], merge=c["merge"], context=c["context"],
        min_box=c["min_box"], crop_size=p.crop_size, test_fraction=c["test_fraction"], seed=p.seed,
        split_lists=c["split_lists"], log=log)
    for item in summary.get("skipped", []):
        log.warning("skipped %s: %s", item["item"], item["reason"])
    log.info("%s", {k: v for k, v in summary.items() if k != "skipped"})


run_stage(snakemake, stage)
