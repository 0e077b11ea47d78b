# Evaluation: image lists of the invariance sets, frozen-encoder features (HDF5), and the invariance scores.


rule eval_index:
    input:
        [f"{SYNTH}/trajectories"] if SYNTH_USED["trajectories"] else [],
    output:
        "results/eval/{dataset}.parquet",
    params:
        synthetic_root=f"{SYNTH}/trajectories",
        aloi=config["evaluation"]["aloi"],
        got10k=config["evaluation"]["got10k"],
    log:
        "logs/eval/{dataset}.log",
    conda:
        "../../envs/vidssl.yaml"
    script:
        "../scripts/eval_index.py"


rule features:
    input:
        backbone="results/models/{method}/backbone.pth",
        images=eval_input,
    output:
        "results/features/{method}/{dataset}.h5",
    params:
        arch=config["model"]["arch"],
        image_size=config["model"]["image_size"],
        batch_size=config["evaluation"]["batch_size"],
    threads: 2
    log:
        "logs/features/{method}/{dataset}.log",
    conda:
        "../../envs/vidssl.yaml"
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1 if config["train"]["gpus"] else 0,
        cpus_per_gpu=8,
        tasks_per_gpu=0,
    script:
        "../scripts/features.py"


rule invariance:
    input:
        expand("results/features/{{method}}/{dataset}.h5", dataset=EVAL_DATASETS),
    output:
        "results/invariance/{method}.csv",
    params:
        invariance=config["invariance"],
    log:
        "logs/invariance/{method}.log",
    conda:
        "../../envs/vidssl.yaml"
    script:
        "../scripts/invariance.py"


rule invariance_summary:
    input:
        expand("results/invariance/{method}.csv", method=METHODS),
    output:
        table=report("results/invariance.csv", caption="../report/invariance.rst", category="Invariance"),
        chart=report("results/figures/invariance.png", caption="../report/invariance.rst", category="Invariance"),
    params:
        names={method: vidssl_config.display_name(config, method) for method in METHODS},
    log:
        "logs/invariance/summary.log",
    conda:
        "../../envs/vidssl.yaml"
    script:
        "../scripts/invariance_summary.py"
