# Part segmentation (the paper's Table 5): object crops with part maps, a probe per method and class, the table.

PARTSEG_CROP_KEYS = ["classes", "merge", "context", "min_box", "test_fraction", "split_lists"]


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


rule partseg_probe:
    input:
        crops="results/partseg/crops.h5",
        features="results/features/{method}/partseg.h5",
    output:
        "results/partseg/{method}.csv",
    params:
        classes=config["partseg"]["classes"],
        size=config["partseg"]["size"],
        epochs=config["partseg"]["epochs"],
        lr=config["partseg"]["lr"],
        seed=config["seed"],
    threads: 1
    log:
        "logs/partseg/{method}.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/partseg_probe.py"


rule table5:
    input:
        expand("results/partseg/{method}.csv", method=config["table5"]["methods"]),
    output:
        csv=report("results/table5.csv", caption="../report/table5.rst", category="Table 5"),
        markdown="results/table5.md",
    params:
        methods=config["table5"]["methods"],
        display_names={method: vidssl_config.display_name(config, method) for method in config["table5"]["methods"]},
        classes=config["partseg"]["classes"],
    log:
        "logs/table5.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/table5.py"
