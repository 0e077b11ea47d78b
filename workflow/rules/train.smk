# Backbones of every method: every trained method (an objective on a view source) through one rule, a seeded random
# init, and imported pretrained checkpoints.


rule train:
    input:
        unpack(train_input),
    output:
        checkpoint="results/models/{method}/checkpoint.pt",
        backbone="results/models/{method}/backbone.pth",
        curve="results/models/{method}/train.csv",
        run="results/models/{method}/run.json",
    params:
        labelled=config["train"]["labelled"],
        labelled_split=lambda wildcards: vidssl_config.labelled_split(config, wildcards.method),
        seed=config["seed"],
        model=lambda wildcards: vidssl_methods.get(wildcards.method).model_config(config["model"]),
        objective=objective_section,
        # Only what changes the weights a run ends with: the rest of `train` (workers, GPUs, checkpoint and monitor
        # intervals) reaches the script through its config and never reruns training.
        train=TRAIN_WEIGHT_SETTINGS,
    threads: 2
    log:
        "logs/train/{method}.log",
    wildcard_constraints:
        method=vidssl_config.wildcard_choice(TRAINED_METHODS),
    conda:
        CONDA_ENV
    resources:
        mem_mb=16000,
        runtime=24 * 60,
        # torchrun --standalone starts every process of a job on one node: SLURM must not spread its GPUs
        nodes=1,
        gpu=config["train"]["gpus"],
        cpus_per_gpu=8,
        tasks_per_gpu=0,
    script:
        "../scripts/train.py"


rule random_init:
    output:
        "results/models/random/backbone.pth",
    params:
        arch=config["model"]["arch"],
        seed=config["seed"],
        options=vidssl_models.options(config["model"]["arch"], config["model"]),
    log:
        "logs/train/random.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/backbone.py"


rule import_pretrained:
    input:
        lambda wildcards: config["pretrained"][wildcards.pretrained]["path"],
    output:
        "results/models/{pretrained}/backbone.pth",
    params:
        arch=config["model"]["arch"],
        layout=lambda wildcards: config["pretrained"][wildcards.pretrained]["layout"],
    log:
        "logs/train/{pretrained}.log",
    wildcard_constraints:
        pretrained=vidssl_config.wildcard_choice(PRETRAINED),
    conda:
        CONDA_ENV
    script:
        "../scripts/backbone.py"


rule training_plot:
    input:
        "results/models/{method}/train.csv",
    output:
        report(
            "results/figures/training_{method}.png",
            caption="../report/training.rst",
            category="Training",
            subcategory="{method}",
        ),
    log:
        "logs/figures/training_{method}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/training_plot.py"
