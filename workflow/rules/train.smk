# Backbones of every method: MoCo-family training (train_moco, train_fti, train_region_tracker), the supervised
# baseline (train_supervised), a seeded random init, and imported pretrained checkpoints.

# Which methods run, and how many data workers feed them, never changes what a run computes.
TRAIN_PARAMS = {key: value for key, value in config["train"].items() if key not in ("methods", "labelled")}

for train_method in TRAINED_METHODS:

    rule:
        name:
            f"train_{train_method}"
        input:
            **train_input(train_method),
        output:
            checkpoint=f"results/models/{train_method}/checkpoint.pt",
            backbone=f"results/models/{train_method}/backbone.pth",
            curve=f"results/models/{train_method}/train.csv",
            run=f"results/models/{train_method}/run.json",
        params:
            method=train_method,
            labelled=config["train"]["labelled"],
            labelled_split=vidssl_config.labelled_split(config, train_method),
            seed=config["seed"],
            model=config["model"],
            moco=config["moco"] if "moco" in vidssl_methods.METHODS[train_method].config_sections else {},
            train=TRAIN_PARAMS,
        threads: 2
        log:
            f"logs/train/{train_method}.log",
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
        options={key: config["model"][key] for key in ("width", "stem")},
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
