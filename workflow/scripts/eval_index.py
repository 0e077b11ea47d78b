"""Snakemake adapter: the image list (path, label, set, box) of one invariance dataset."""
from vidssl.cli import run_stage
from vidssl.datasets import eval_sets
from vidssl.io import write_parquet

dataset, p = snakemake.wildcards.dataset, snakemake.params


def stage(log):
    if dataset.startswith("aloi_"):
        index, skipped = eval_sets.aloi_index(p.aloi, kind=dataset.removeprefix("aloi_"))
    elif dataset == "got10k_occlusion":
        index, skipped = eval_sets.got10k_index(p.got10k)
    else:
        index, skipped = eval_sets.synthetic_index(snakemake.input[0], [dataset])
    for item in skipped:
        log.warning("skipped %s: %s", item["item"], item["reason"])
    write_parquet(index, snakemake.output[0], sort_by=["set", "path"], metadata={"skipped": skipped})
    log.info("%s: %d images in %d sets of %d classes", dataset, len(index), index.set.nunique(), index.label.nunique())


run_stage(snakemake, stage)
