"""GPUs on a workstation and a cluster: device claims that come before CUDA and hold across users, the GPU count
`make run` gives Snakemake, one SLURM node per training job, and the torchrun path run for real with two CPU
processes (gloo), its children's user errors reaching the user as one line."""
from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT
from test_train import CFG, data  # noqa: F401  (data: the tiny chunk/pairs/labelled fixture, reused)

from vidssl.core import devices

SNAKEMAKE = Path(sys.executable).parent / "snakemake"

# A job that claims GPUs, reports them and holds its claim until its stdin closes; under umask 077, so that nothing it
# makes is readable by other users unless the claim sees to it.
CLAIM = """
import os, sys
from pathlib import Path
os.umask(0o077)
from vidssl.core import devices
devices.NVIDIA_GPUS = Path(sys.argv[1])
try:
    devices.claim_gpus(1)
except Exception as error:
    print(f"{type(error).__name__}: {error}", flush=True)
    sys.exit(1)
print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
sys.stdin.read()
"""
# The same in a process whose CUDA fails if asked anything before the claim: CUDA reads CUDA_VISIBLE_DEVICES once.
CLAIM_BEFORE_CUDA = """
import torch
def no_cuda(*args, **kwargs):
    raise AssertionError("CUDA was asked before CUDA_VISIBLE_DEVICES was set")
torch.cuda.is_available = torch.cuda.device_count = torch.cuda.init = torch.cuda._lazy_init = no_cuda
""" + CLAIM
SYSTEM_PYTHON = Path("/usr/bin/python3")  # another user cannot run this checkout's virtualenv, under root's home


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A fake driver listing of two GPUs and a lock folder of this test's own, under a folder every user can enter."""
    shared = Path(tempfile.mkdtemp(prefix="vidssl-devices-"))
    shared.chmod(0o755)
    gpus = shared / "gpus"
    for address in ("0000:01:00.0", "0000:02:00.0"):
        (gpus / address).mkdir(parents=True)
    env = {**os.environ, "VIDSSL_GPU_LOCKS": str(shared / "locks")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    yield gpus, env
    subprocess.run(["rm", "-rf", str(shared)], check=True)


def start_claim(gpus: Path, env: dict, python: str = sys.executable, code: str = CLAIM_BEFORE_CUDA,
                **user) -> tuple[subprocess.Popen, str]:
    job = subprocess.Popen([python, "-c", code, str(gpus)], env=env, cwd=gpus.parent, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **user)
    return job, job.stdout.readline().strip()


def test_gpu_jobs_claim_distinct_devices_before_cuda_starts(machine):
    gpus, env = machine
    first, first_gpu = start_claim(gpus, env)
    second, second_gpu = start_claim(gpus, env)
    third, third_line = start_claim(gpus, env)
    assert (first_gpu, second_gpu) == ("0", "1")
    assert third_line.startswith("UserError: asked for 1 GPUs, only 0 of 2 are free")
    for job in (first, second, third):
        job.communicate()


@pytest.mark.skipif(os.getuid() != 0 or not SYSTEM_PYTHON.exists(), reason="switching users needs root")
def test_the_lock_folder_serves_every_user_of_the_machine(machine):
    """Root makes the folder and a lock file (under umask 077); user nobody still claims the other device, and not
    the one root holds."""
    gpus, env = machine
    first, first_gpu = start_claim(gpus, env)
    other, other_gpu = start_claim(gpus, {**env, "PYTHONPATH": str(ROOT / "src")}, str(SYSTEM_PYTHON), CLAIM,
                                   user=65534, group=65534)
    assert (first_gpu, other_gpu) == ("0", "1"), other.stderr.read() if other.poll() else ""
    for job in (first, other):
        job.communicate()


def test_the_gpu_count_comes_from_the_driver(tmp_path, monkeypatch):
    proc = tmp_path / "gpus"
    for address in ("a", "b", "c"):
        (proc / address).mkdir(parents=True)
    monkeypatch.setattr(devices, "NVIDIA_GPUS", proc)
    assert devices.gpu_count() == 3
    nodes = tmp_path / "dev"
    nodes.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-modeset"):
        (nodes / name).touch()
    monkeypatch.setattr(devices, "NVIDIA_GPUS", tmp_path / "absent")
    monkeypatch.setattr(devices, "DEVICE_NODES", nodes)
    assert devices.gpu_count() == 2


def test_make_run_gives_snakemake_the_gpu_count():
    dry = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert f"--resources gpu={devices.gpu_count()} " in dry.stdout
    # the command must also parse: --resources takes every word after it, so a target there was read as a resource
    [command] = [line for line in dry.stdout.splitlines() if "bin/snakemake " in line]
    parsed = subprocess.run(shlex.split(command.replace("bin/snakemake ", "bin/snakemake -n ", 1), comments=True),
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert parsed.returncode == 0, parsed.stderr[-2000:]


def test_training_rules_ask_slurm_for_one_node(tmp_path):
    dry = subprocess.run([str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
                          "--configfile", str(ROOT / "config" / "tiny.yaml"), "-n",
                          *(f"results/models/{m}/backbone.pth" for m in ("supervised", "moco", "fti", "region_tracker"))],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    blocks = re.split(r"^(?:local)?rule (\w+):$", dry.stdout, flags=re.M)
    trains = [body for name, body in zip(blocks[1::2], blocks[2::2]) if name == "train"]
    assert len(trains) == 4 and all(re.search(r"resources: .*\bnodes=1\b", body) for body in trains)


STAGE = """
import json, sys, types
from vidssl.training import train
from vidssl.core.cli import run_stage
job = json.loads(sys.argv[1])
run_stage(types.SimpleNamespace(log=[sys.argv[2]], rule="train", threads=1),
          lambda log: train.launch(job, log=log), job="train " + job["method"])
"""


def train_stage(data, out: Path, **train_settings) -> subprocess.CompletedProcess:  # noqa: F811
    """vidssl.training.train.launch as the Snakemake adapter calls it, in a process of its own: under torchrun for gpus > 1."""
    cfg = copy.deepcopy(CFG)
    cfg["train"].update(steps=3, knn_every=3, **train_settings)
    job = dict(method="fti", chunks=[str(data / "chunks.h5")], frame_pairs=[str(data / "pairs.parquet")],
               labelled=str(data / "labelled"), out_dir=str(out), cfg=cfg)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run([sys.executable, "-c", STAGE, json.dumps(job), str(out.parent / "train.log")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


def test_two_cpu_processes_train_through_torchrun(data, tmp_path):  # noqa: F811
    out = tmp_path / "fti"
    done = train_stage(data, out, gpus=2)
    assert done.returncode == 0, (tmp_path / "train.log").read_text()[-3000:]
    log = pd.read_csv(out / "train.csv")
    assert log.step.tolist() == [1, 2, 3] and log.loss.notna().all() and 0 <= log.knn_top1.iloc[-1] <= 1
    assert 0 < log.loss_fresh_queue.iloc[-1] < 10  # both ranks gathered their keys for the fresh queue
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert int(checkpoint["model"]["queue_ptr"]) == 3 * 8 % 32  # both ranks' keys, gathered, went into the queue
    assert (out / "backbone.pth").is_file() and not (out / "resume.pt").exists()
    assert not (out / "config.json").exists()  # torchrun's config goes to a scratch folder, removed after it


@pytest.mark.parametrize("gpus", [1, 2])
def test_a_user_error_in_training_is_one_line_on_any_number_of_processes(data, tmp_path, gpus):  # noqa: F811
    out = tmp_path / "fti"
    stopped = train_stage(data, out, gpus=gpus, lr=float("nan"))
    assert stopped.returncode == 1
    lines = stopped.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(r"vidssl train fti: loss became nan at step 2 \(lr nan\); .*", lines[0]), \
        stopped.stderr[-3000:]
    assert not (out / "backbone.pth").exists()
