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
        all_targets(),
    default_target: True


check_gpu_requests(workflow.rules)
clean_start(workflow.rules)
