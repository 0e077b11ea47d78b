"""The tiny config through `--profile profiles/slurm` on a real single-node SLURM cluster (tests/slurm_cluster.sh).

The cluster is started once per module on loopback (root; SLURM and munge are installed with apt when missing). Off CI a
machine that cannot run it skips with the reason; with CI=true it fails instead. The SLURM run's results must equal the
local run's (`tiny_run`, `--cores 2`) exactly: CPU training with workers=0 is deterministic.
"""
from __future__ import annotations

import functools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, SNAKEMAKE

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CLUSTER_SCRIPT = ROOT / "tests" / "slurm_cluster.sh"
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")
IN_CI = os.environ.get("CI", "").lower() == "true"
# Limits that catch hangs only, never a slow machine: the tiny DAG through SLURM takes 5-6 minutes on 2 idle cores,
# a run that stops before submission seconds, the cluster's start seconds after SLURM's install.
RUN_LIMIT_S = 2400
STOP_LIMIT_S = 600


def unavailable(reason: str):
    """Skip off CI; in CI the SLURM test must run, so a missing cluster is a failure."""
    if IN_CI:
        pytest.fail(f"CI=true but the SLURM test cannot run: {reason}")
    pytest.skip(reason)


def free_port_pair() -> int:
    """A port p with p and p+1 free on loopback (slurmctld, slurmd), so the test never meets another cluster."""
    for _ in range(100):
        port = random.randrange(20000, 30000)
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports between 20000 and 30000")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """SLURM_CONF and the environment every SLURM command and snakemake needs."""
    if os.geteuid() != 0:
        unavailable("the single-node SLURM cluster needs root (slurmd runs jobs as root)")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        unavailable("SLURM is not installed and apt-get is not available to install it")
    directory = tmp_path_factory.mktemp("slurm")
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    env.update(SLURM_CONF=str(directory / "slurm.conf"), SLURM_TEST_PORT=str(free_port_pair()))
    started = time.perf_counter()
    result = subprocess.run(["bash", str(CLUSTER_SCRIPT), "start", str(directory)], env=env,
                            capture_output=True, text=True, timeout=RUN_LIMIT_S)
    if result.returncode != 0:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop", str(directory)], env=env, timeout=STOP_LIMIT_S)
        unavailable(f"tests/slurm_cluster.sh start failed: {result.stderr.strip()[-2000:]}")
    print(f"SLURM cluster up in {time.perf_counter() - started:.1f} s")
    yield env
    subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop", str(directory)], env=env, timeout=STOP_LIMIT_S)


@functools.cache
def gpu_rules() -> frozenset[str]:
    """Rules whose jobs ask for a GPU, from a dry run of the default config (rules come and go; the profile must
    follow them)."""
    with tempfile.TemporaryDirectory(prefix="gpu_rules_") as workdir:
        result = subprocess.run([str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", workdir,
                                 "-n", "--forceall"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    blocks = re.split(r"^(?:local)?rule (\w+):$", result.stdout, flags=re.M)
    return frozenset(name for name, body in zip(blocks[1::2], blocks[2::2]) if re.search(r"\bgpu=[1-9]", body))


def test_profile_needs_editing_and_covers_every_gpu_rule():
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    assert profile["default-resources"]["slurm_partition"].startswith("<")
    assert {"train", "features"} <= gpu_rules()
    for rule in gpu_rules():
        resources = profile["set-resources"][rule]
        assert resources["slurm_partition"].startswith("<") and resources["tasks_per_gpu"] == 0 and resources["cpus_per_gpu"] > 0
        assert resources["mem_mb"] > 0 and resources["runtime"] > 0
        # train.gpus decides how many processes train.py starts: a GPU count here would contradict it
        assert "gpu" not in resources
    assert not (ROOT / "profiles" / "default").exists(), "profiles/default is loaded automatically: no executor there"


def cluster_profile(workdir: Path, partition: str, **changes) -> Path:
    """profiles/slurm/config.yaml with what the one-node test cluster needs: its partition, no account, no GPUs,
    small jobs that fit the node, quick status checks, and every SLURM log kept. The time limit of a job (runtime,
    minutes) and the wait for its outputs (latency-wait) are far above what a loaded machine needs: a slow job is
    never killed or failed for its time."""
    profile = yaml.safe_load(PROFILE.read_text())
    small = {"mem_mb": 1500, "runtime": 120}
    profile["default-resources"] = {"slurm_partition": partition, **small}
    profile["set-resources"] = {
        rule: {**profile["set-resources"].get(rule, {}), **small, "slurm_partition": partition,
               **({"gpu": 0} if rule in gpu_rules() else {})}
        for rule in {*profile["set-resources"], *gpu_rules()}
    }
    profile["set-threads"] = {rule: min(threads, os.cpu_count()) for rule, threads in profile["set-threads"].items()}
    profile.update({"slurm-init-seconds-before-status-checks": 1, "seconds-between-status-checks": 2,
                    "max-status-checks-per-second": 10, "slurm-keep-successful-logs": True,
                    "latency-wait": 60, "retries": 0, "keep-going": False}, **changes)
    folder = workdir / "profile"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def snakemake_on_cluster(env: dict, workdir: Path, profile: Path, *targets: str,
                         timeout: int = RUN_LIMIT_S) -> tuple[int, str]:
    """Run snakemake in its own process group and SIGKILL the whole group on timeout: with jobs still
    active it ignores SIGTERM, and a hung status check would otherwise hang the test run."""
    command = [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(ROOT / "config" / "tiny.yaml"), "--profile", str(profile), *targets]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"snakemake on SLURM did not finish in {timeout} s:\n{output[-5000:]}")
    return process.returncode, output


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_slurm")
    started = time.perf_counter()
    returncode, output = snakemake_on_cluster(cluster, workdir, cluster_profile(workdir, "test"), "all")
    assert returncode == 0, output[-8000:]
    print(f"tiny config on SLURM: {time.perf_counter() - started:.0f} s")
    return workdir, output


def test_jobs_went_through_sbatch(slurm_run):
    workdir, output = slurm_run
    submitted = SUBMITTED.findall(output)
    slurm_ids = [slurm_id for _, slurm_id, _ in submitted]
    # every job but `all` is a SLURM job; job groups (chunks, link) share one SLURM job per shard
    assert len(submitted) >= 30 and len(set(slurm_ids)) == len(slurm_ids)
    for _, slurm_id, log in submitted:
        assert Path(log).name == f"{slurm_id}.log" and Path(log).is_file()
        assert Path(log).is_relative_to(workdir / "logs" / "slurm")
    train_logs = {log for log in (workdir / "logs" / "slurm" / "rule_train").rglob("*.log")
                  if "method=moco" in log.read_text()}  # one SLURM job per trained method, each with its log
    assert len(train_logs) == 1 and next(iter(train_logs)).stem in slurm_ids
    assert "rule train:" in next(iter(train_logs)).read_text()


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def test_results_equal_a_local_run(slurm_run, tiny_run):  # noqa: F811
    workdir, _ = slurm_run
    artifacts = ["results/table5.csv", "results/invariance.csv"]
    for kind in ("proposals", "tracks"):
        artifacts += sorted(str(path.relative_to(tiny_run)) for path in (tiny_run / "results" / kind).glob("*.parquet"))
    assert len(artifacts) == 2 + 2 * 2  # two shards in the tiny config
    for artifact in artifacts:
        pd.testing.assert_frame_equal(read_table(workdir / artifact), read_table(tiny_run / artifact),
                                      check_exact=True, obj=artifact)


def test_unknown_profile_value_fails_before_submission(cluster, tmp_path):
    profile = cluster_profile(tmp_path, "test", **{"slurm-status-command": "sqeue"})
    returncode, output = snakemake_on_cluster(cluster, tmp_path, profile, "all", timeout=STOP_LIMIT_S)
    assert returncode != 0
    assert "Invalid status command. Allowed values are 'sacct' or 'squeue'." in output
    assert not SUBMITTED.search(output) and not (tmp_path / "logs" / "slurm").exists()


def test_unknown_partition_fails_with_sbatch_message(cluster, tmp_path):
    returncode, output = snakemake_on_cluster(cluster, tmp_path, cluster_profile(tmp_path, "nosuchpartition"),
                                              "resources/synthetic/labelled", timeout=STOP_LIMIT_S)
    assert returncode != 0
    assert "invalid partition specified: nosuchpartition" in output
    assert not SUBMITTED.search(output)


def test_more_gpus_than_the_job_uses_fails_before_submission(cluster, tmp_path):
    profile = cluster_profile(tmp_path, "test")
    resources = yaml.safe_load((profile / "config.yaml").read_text())
    resources["set-resources"]["train"]["gpu"] = 99
    (profile / "config.yaml").write_text(yaml.safe_dump(resources))
    returncode, output = snakemake_on_cluster(cluster, tmp_path, profile, "results/models/supervised/backbone.pth",
                                              timeout=STOP_LIMIT_S)
    assert returncode != 0
    assert "vidssl: rule train asks for 99 GPUs but uses 1 (train.gpus = 1)" in output
    assert "sbatch" not in output and not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
