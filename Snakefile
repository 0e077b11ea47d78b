# vidssl: video chunks -> proposals -> tracks -> MoCo training -> features -> invariance + part probe -> Table 5.
# Usage: snakemake --cores all results/table5.csv   (README.md has the rest)
import os

from snakemake.utils import min_version

min_version("9.0")

# The embedded default is found from the Snakefile, so --directory elsewhere still reads it.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/video.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/partseg.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/table5.csv",
        "results/table5.md",
        "results/config.yaml",
        "results/invariance.csv",
        "results/figures/invariance.png",
        expand("results/figures/tracks_{shard}.png", shard=SHARDS[:1]),
        expand("results/figures/training_{method}.png", method=TRAINED_METHODS),
    default_target: True


check_gpu_requests(workflow.rules)
