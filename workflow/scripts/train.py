"""Snakemake adapter: train one method; with train.gpus > 1 the same entry point runs under torchrun."""
import json
import subprocess
import sys
from pathlib import Path

from vidssl import train
from vidssl.cli import paths, run_stage
from vidssl.devices import claim_gpus

p, inputs = snakemake.params, snakemake.input
job = dict(
    method=p.method,
    chunks=paths(getattr(inputs, "chunks", [])),
    frame_pairs=paths(getattr(inputs, "frame_pairs", [])) or None,
    track_pairs=paths(getattr(inputs, "track_pairs", [])) or None,
    # the synthetic labelled set is a rule output; a user's ImageFolder is a checked config path
    labelled=next(iter(paths(inputs.labelled)), None) or p.labelled,
    out_dir=str(Path(snakemake.output.checkpoint).parent),
    cfg={"seed": p.seed, "model": p.model, "moco": p.moco, "train": p.train},
)


def stage(log):
    gpus = p.train["gpus"]
    claim_gpus(gpus)
    if gpus == 1:
        train.train(**job, log=log)
        return
    spec = Path(job["out_dir"]) / "config.json"
    spec.write_text(json.dumps(job["cfg"]))
    # An argv list, no shell: config values never reach a shell parser.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
               "-m", "vidssl.train", "--config-json", str(spec), "--method", job["method"], "--out-dir", job["out_dir"],
               "--chunks", *job["chunks"]]
    for flag, key in (("--frame-pairs", "frame_pairs"), ("--track-pairs", "track_pairs"), ("--labelled", "labelled")):
        if job[key]:
            command += [flag, *([job[key]] if isinstance(job[key], str) else job[key])]
    log.info("starting %s", command)
    subprocess.run(command, check=True, stderr=sys.stderr, stdout=sys.stderr)


run_stage(snakemake, stage)
