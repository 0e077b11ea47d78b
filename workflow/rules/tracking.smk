# proposals (selective search) -> tracks (optical-flow linking) -> frame pairs and tracked-patch pairs.

from vidssl.tracking.pairs import keyframes as chunk_keyframes


rule proposals:
    input:
        "results/chunks/{shard}.h5",
    output:
        "results/proposals/{shard}.parquet",
    params:
        proposals=config["proposals"],
        keyframe_every=config["tracks"]["keyframe_every"],
        # the keyframes themselves, not the pairs behind them: a pairs change that keeps them reruns nothing here
        keyframes=chunk_keyframes(config["chunks"]["length"], config["tracks"]["keyframe_every"], config["pairs"]["k"],
                                  config["pairs"]["mode"]),
    threads: 2
    log:
        "logs/proposals/{shard}.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=240,
    script:
        "../scripts/proposals.py"


rule tracks:
    input:
        chunks="results/chunks/{shard}.h5",
        proposals="results/proposals/{shard}.parquet",
    output:
        "results/tracks/{shard}.parquet",
    params:
        tracks=config["tracks"],
    log:
        "logs/tracks/{shard}.log",
    conda:
        CONDA_ENV
    group:
        "link"
    resources:
        mem_mb=4000,
        runtime=120,
    script:
        "../scripts/tracks.py"


rule frame_pairs:
    input:
        "results/chunks/{shard}.h5",
    output:
        "results/pairs/{shard}.frames.parquet",
    params:
        pairs=config["pairs"],
    log:
        "logs/pairs/{shard}.frames.log",
    conda:
        CONDA_ENV
    group:
        "link"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/pairs.py"


rule track_pairs:
    input:
        frame_pairs="results/pairs/{shard}.frames.parquet",
        tracks="results/tracks/{shard}.parquet",
    output:
        "results/pairs/{shard}.tracks.parquet",
    log:
        "logs/pairs/{shard}.tracks.log",
    conda:
        CONDA_ENV
    group:
        "link"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/pairs.py"


rule track_sheet:
    input:
        chunks="results/chunks/{shard}.h5",
        proposals="results/proposals/{shard}.parquet",
        tracks="results/tracks/{shard}.parquet",
    output:
        report(
            "results/figures/tracks_{shard}.png",
            caption="../report/tracks.rst",
            category="Tracks",
        ),
    log:
        "logs/figures/tracks_{shard}.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/track_sheet.py"
