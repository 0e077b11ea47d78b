# Part segmentation (the paper's Table 5): object crops with part maps, a probe per method and class, the table.

PARTSEG_CROP_KEYS = ["classes", "merge", "context", "min_box", "test_fraction", "split_lists"]
# Every probe job the table reads: methods outer, seeds inner (expand's order, which the table5 script relies on).
PROBE_RUNS = dict(method=config["table5"]["methods"], probe_seed=config["partseg"]["seeds"])
TABLE5_REFERENCE = vidssl_config.table5_reference(config)  # checked with the config (vidssl.config.check)


rule partseg_crops:
    input:
        part_set_input,
    output:
        "results/partseg/crops.h5",
    params:
        images=PARTSEG_IMAGES,
        annotations=PARTSEG_ANNOTATIONS,
        crop_size=config["model"]["image_size"],
        seed=config["seed"],
        crops={key: config["partseg"][key] for key in PARTSEG_CROP_KEYS},
    log:
        "logs/partseg/crops.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/partseg_crops.py"


# One job per method and probe seed, so that a cluster runs the seeds side by side.
rule partseg_probe:
    input:
        crops="results/partseg/crops.h5",
        features="results/features/{method}/partseg.h5",
    output:
        classes="results/partseg/{method}/seed{probe_seed}.csv",
        images="results/partseg/{method}/seed{probe_seed}.images.parquet",
    params:
        classes=config["partseg"]["classes"],
        size=config["partseg"]["size"],
        epochs=config["partseg"]["epochs"],
        lr=config["partseg"]["lr"],
    wildcard_constraints:
        probe_seed=r"\d+",
    threads: 1
    log:
        "logs/partseg/{method}.seed{probe_seed}.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/partseg_probe.py"


rule table5:
    input:
        classes=expand("results/partseg/{method}/seed{probe_seed}.csv", **PROBE_RUNS),
        images=expand("results/partseg/{method}/seed{probe_seed}.images.parquet", **PROBE_RUNS),
    output:
        csv=report("results/table5.csv", caption="../report/table5.rst", category="Table 5"),
        markdown="results/table5.md",
        intervals=report("results/table5_ci.csv", caption="../report/table5_ci.rst", category="Table 5"),
    params:
        methods=config["table5"]["methods"],
        seeds=config["partseg"]["seeds"],
        display_names={method: vidssl_config.display_name(config, method) for method in config["table5"]["methods"]},
        classes=config["partseg"]["classes"],
        reference=TABLE5_REFERENCE,
        resamples=config["table5"]["bootstrap"],
        seed=config["seed"],
    log:
        "logs/table5.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/table5.py"
