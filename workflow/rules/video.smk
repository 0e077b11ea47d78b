# manifest: every input video with its shard; chunks: per shard, JPEG frames of maximally spaced 60-frame chunks.


rule manifest:
    input:
        video_input,
    output:
        "results/manifest.parquet",
    params:
        source=config["videos"]["source"],
        path=config["videos"]["path"],
        splits=config["videos"]["trackingnet_splits"],
        shards=config["videos"]["shards"],
        chunk_len=config["chunks"]["length"],
    log:
        "logs/manifest.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=60,
    script:
        "../scripts/manifest.py"


rule chunks:
    input:
        "results/manifest.parquet",
    output:
        "results/chunks/{shard}.h5",
    params:
        chunks=config["chunks"],
    log:
        "logs/chunks/{shard}.log",
    conda:
        CONDA_ENV
    group:
        "decode"
    resources:
        mem_mb=4000,
        runtime=120,
    script:
        "../scripts/chunks.py"
