# Evaluation: image lists of the invariance and classification sets, frozen-encoder features (HDF5), the invariance
# scores and the downstream classification scores.

FEATURE_PARAMS = dict(
    arch=lambda wildcards: vidssl_config.arch_of(config, wildcards.method),
    batch_size=config["evaluation"]["batch_size"],
)
FEATURE_RESOURCES = dict(
    mem_mb=8000,
    runtime=120,
    gpu=1 if config["train"]["gpus"] else 0,
    cpus_per_gpu=8,
    tasks_per_gpu=0,
)


rule eval_index:
    input:
        eval_index_input,
    output:
        "results/eval/{dataset}.parquet",
    params:
        source=lambda wildcards: EVAL_PLAN.sources[wildcards.dataset],
    log:
        "logs/eval/{dataset}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/eval_index.py"


# One job per method for all invariance sets, one for the classification sets, one for the part crops: the backbone
# loads once, and a change to one group does not recompute the others' features.
rule features:
    input:
        backbone="results/models/{method}/backbone.pth",
        images=expand("results/eval/{dataset}.parquet", dataset=EVAL_DATASETS),
    output:
        expand("results/features/{{method}}/{dataset}.h5", dataset=EVAL_DATASETS),
    params:
        **FEATURE_PARAMS,
        image_size={dataset: EVAL_PLAN.image_sizes[dataset] for dataset in EVAL_DATASETS},
    threads: 2
    log:
        "logs/features/{method}.log",
    conda:
        CONDA_ENV
    resources:
        **FEATURE_RESOURCES,
    script:
        "../scripts/features.py"


rule partseg_features:
    input:
        backbone="results/models/{method}/backbone.pth",
        images="results/partseg/crops.h5",
    output:
        "results/features/{method}/partseg.h5",
    params:
        **FEATURE_PARAMS,
        image_size=config["model"]["image_size"],
    threads: 2
    log:
        "logs/features/{method}.partseg.log",
    conda:
        CONDA_ENV
    resources:
        **FEATURE_RESOURCES,
    script:
        "../scripts/features.py"


rule invariance:
    input:
        expand("results/features/{{method}}/{dataset}.h5", dataset=EVAL_DATASETS),
    output:
        "results/invariance/{method}.csv",
    params:
        invariance=config["invariance"],
        seed=config["seed"],
    log:
        "logs/invariance/{method}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/invariance.py"


rule invariance_summary:
    input:
        expand("results/invariance/{method}.csv", method=METHODS),
    output:
        table=report("results/invariance.csv", caption="../report/invariance.rst", category="Invariance"),
        chart=report("results/figures/invariance.png", caption="../report/invariance.rst", category="Invariance"),
        paper_table=report(
            "results/invariance_table.md", caption="../report/invariance_table.rst", category="Invariance"
        ),
    params:
        display_names={method: vidssl_config.display_name(config, method) for method in METHODS},
    log:
        "logs/invariance/summary.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/invariance_summary.py"


# Without a classification set there is nothing to extract or score: results/classification.csv keeps its header.
if CLASSIFICATION_DATASETS:

    rule classification_features:
        input:
            backbone="results/models/{method}/backbone.pth",
            images=expand("results/eval/{dataset}.parquet", dataset=CLASSIFICATION_DATASETS),
        output:
            expand("results/features/{{method}}/{dataset}.h5", dataset=CLASSIFICATION_DATASETS),
        params:
            **FEATURE_PARAMS,
            image_size={dataset: EVAL_PLAN.image_sizes[dataset] for dataset in CLASSIFICATION_DATASETS},
        threads: 2
        log:
            "logs/features/{method}.classification.log",
        conda:
            CONDA_ENV
        resources:
            **FEATURE_RESOURCES,
        script:
            "../scripts/features.py"

    rule classification_scores:
        input:
            features=expand("results/features/{{method}}/{dataset}.h5", dataset=CLASSIFICATION_DATASETS),
            images=expand("results/eval/{dataset}.parquet", dataset=CLASSIFICATION_DATASETS),
        output:
            "results/classification/{method}.csv",
        params:
            seed=config["seed"],
            resamples=config["classification"]["bootstrap"],
        log:
            "logs/classification/{method}.log",
        conda:
            CONDA_ENV
        script:
            "../scripts/classification.py"


rule classification:
    input:
        expand("results/classification/{method}.csv", method=METHODS if CLASSIFICATION_DATASETS else []),
    output:
        report("results/classification.csv", caption="../report/classification.rst", category="Classification"),
    log:
        "logs/classification/summary.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/classification_summary.py"
