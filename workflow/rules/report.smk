# The resolved configuration of the run, as an artifact and a page of the HTML report.


rule run_config:
    output:
        report("results/config.yaml", caption="../report/config.rst", category="Configuration"),
    params:
        config=config,
    log:
        "logs/run_config.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/run_config.py"
