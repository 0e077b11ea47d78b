"""Faults: kill -9 of Snakemake and of training, artifacts cut short outside our writes, a full disk mid-write.

What a user does after kill -9 of Snakemake (checked below): `snakemake --unlock`, then the same command again. Jobs
that finished are kept; the killed job never left a file under its final name (atomic writes), so it simply runs
again. (profiles/local sets rerun-incomplete, which covers a kill between a job's rename and Snakemake's bookkeeping.)
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import search_params
from test_train import CFG, data  # noqa: F401  (data: the tiny chunk/pairs fixture, reused)

from vidssl.core.integrity import find_broken, is_whole
from vidssl.core.io import UserError, atomic_path, write_parquet
from vidssl.models.backbone import export_backbone, load_backbone
from vidssl.tracking import proposals
from vidssl.video.chunk_store import ChunkStore
from vidssl.video.chunks import extract_chunks
from vidssl.video.manifest import build_manifest, list_videos

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
PROPOSALS = [f"results/proposals/{shard}.parquet" for shard in ("0000", "0001")]
# Limits on waits and subprocesses catch hangs only: many times what a step takes on a loaded 2-core machine.
HANG_S = 300


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(ROOT / "config" / "tiny.yaml"), *args]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_command(workdir, *args), capture_output=True, text=True, cwd=ROOT, timeout=600)


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = HANG_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the process ended (rc {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Path:
    """A tiny workdir with the synthetic videos, manifest and both chunk containers built."""
    workdir = tmp_path_factory.mktemp("upstream")
    result = snakemake(workdir, "--cores", "2", "results/chunks/0000.h5", "results/chunks/0001.h5")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def copy_of(upstream: Path, tmp_path: Path) -> Path:
    workdir = tmp_path / "work"
    shutil.copytree(upstream, workdir, symlinks=True)  # copy2 keeps mtimes: nothing upstream looks new
    return workdir


def reference_proposals(chunks: Path, out: Path) -> bytes:
    """An uninterrupted computation of one shard, in this process, with the config's parameters."""
    default, tiny = (yaml.safe_load((ROOT / "config" / name).read_text()) for name in ("config.yaml", "tiny.yaml"))
    params, pairs = ({**default[key], **tiny.get(key, {})} for key in ("proposals", "pairs"))
    proposals.propose_shard(str(chunks), str(out), mode=params["mode"], top_k=params["top_k"],
                            min_size=params["min_size"], min_region=params["min_region"],
                            keyframe_every=default["tracks"]["keyframe_every"], pairs=pairs, threads=1)
    return out.read_bytes()


@pytest.mark.slow
def test_kill_snakemake_during_proposals_then_rerun(upstream, tmp_path):
    workdir = copy_of(upstream, tmp_path)
    started = subprocess.Popen(snakemake_command(workdir, "--cores", "2", *PROPOSALS), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    outputs = [workdir / p for p in PROPOSALS]
    logs = [workdir / "logs" / "proposals" / f"{shard}.log" for shard in ("0000", "0001")]

    def one_done_other_running() -> bool:  # the jobs run one at a time (2 threads each on 2 cores)
        return sum(p.exists() for p in outputs) == 1 and all(log.exists() for log in logs)

    wait_for(one_done_other_running, started, "one proposals shard done and the other started")
    os.killpg(started.pid, signal.SIGKILL)
    started.wait()
    done, killed = outputs if outputs[0].exists() else outputs[::-1]
    before = identity(done)
    assert not killed.exists(), "the killed job left a file under its final name"

    blocked = snakemake(workdir, "--cores", "2", *PROPOSALS)
    assert blocked.returncode != 0 and "--unlock" in blocked.stderr  # Snakemake's stale lock: the user must unlock
    assert snakemake(workdir, "--unlock").returncode == 0
    rerun = snakemake(workdir, "--cores", "2", *PROPOSALS)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert re.search(r"^proposals\s+1$", rerun.stdout + rerun.stderr, re.M), "only the killed shard reruns"
    assert identity(done) == before, "a finished shard was recomputed"
    for shard, output in zip(("0000", "0001"), outputs):
        expected = reference_proposals(workdir / "results" / "chunks" / f"{shard}.h5", tmp_path / f"ref{shard}.parquet")
        assert output.read_bytes() == expected, f"{output.name} differs from an uninterrupted run"


def run_train(config: Path, data: Path, out: Path, *, wait: bool = True) -> subprocess.Popen:
    command = [sys.executable, "-m", "vidssl.training.train", "--config-json", str(config), "--method", "fti",
               "--chunks", str(data / "chunks.h5"), "--frame-pairs", str(data / "pairs.parquet"), "--out-dir", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: same float sums in every run, no oversubscription
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        process.communicate(timeout=300)
        assert process.returncode == 0
    return process


@pytest.mark.slow
def test_kill_training_then_resume(data, tmp_path):  # noqa: F811
    cfg = {**CFG, "train": {**CFG["train"], "steps": 8, "checkpoint_every": 1, "knn_every": 0}}
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(cfg))
    uninterrupted = tmp_path / "a" / "fti"
    run_train(config, data, uninterrupted)

    interrupted = tmp_path / "b" / "fti"
    process = run_train(config, data, interrupted, wait=False)
    resume_copy = interrupted / "resume.pt"
    wait_for(resume_copy.exists, process, "the first checkpoint")
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert not (interrupted / "backbone.pth").exists(), "training had finished before the kill"
    assert is_whole(interrupted / "checkpoint.pt") and is_whole(resume_copy)

    resumed = run_train(config, data, interrupted, wait=False)
    _, log = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, log[-3000:]
    step = int(re.search(r"fti: resuming from .* at step (\d+) of 8", log)[1])
    assert 1 <= step < 8
    full, after = pd.read_csv(uninterrupted / "train.csv"), pd.read_csv(interrupted / "train.csv")
    assert after.step.tolist() == list(range(1, 9))
    assert after.loss.tolist() == full.loss.tolist()  # the same final step and loss, and every loss before it
    assert torch.load(interrupted / "checkpoint.pt", weights_only=True)["step"] == 8


@pytest.mark.slow
def test_a_trained_model_follows_its_inputs_in_snakemake(upstream, tmp_path):
    """--forcerun retrains from step 0; a resume copy left from other chunks (the config the training reads unchanged)
    is ignored with a warning naming them; deleting the model's folder retrains."""
    workdir = copy_of(upstream, tmp_path)
    model, log = workdir / "results" / "models" / "moco", workdir / "logs" / "train" / "moco.log"
    target = "results/models/moco/backbone.pth"
    for extra in ((), ("--forcerun", "train")):  # the moco job of the train rule: the only one wanted
        result = snakemake(workdir, "--cores", "2", target, *extra)  # --forcerun takes every name after it
        assert result.returncode == 0, result.stderr[-3000:]
        assert not (model / "resume.pt").exists() and "resuming" not in log.read_text()

    overlay = tmp_path / "smaller_chunks.yaml"
    overlay.write_text("chunks: {max_side: 48}\n")
    smaller_chunks = ("--configfile", str(ROOT / "config" / "tiny.yaml"), str(overlay))
    shutil.copy2(model / "checkpoint.pt", model / "resume.pt")  # what a job killed after its last checkpoint leaves
    result = snakemake(workdir, "--cores", "2", target, *smaller_chunks)
    assert result.returncode == 0, result.stderr[-3000:]
    text = log.read_text()
    assert "resuming" not in text and "made from other settings or inputs (chunks results/chunks/0000.h5 changed" in text

    shutil.copy2(model / "checkpoint.pt", model / "resume.pt")
    shutil.rmtree(model)
    result = snakemake(workdir, "--cores", "2", target, *smaller_chunks)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming" not in log.read_text() and pd.read_csv(model / "train.csv").step.tolist() == list(range(1, 7))


def feature_file(path: Path, bad: float, rows: int = 12) -> Path:
    """A feature file as vidssl.evaluation.features.extract writes it, with `bad` (NaN or inf) in row 3."""
    features = np.random.default_rng(0).normal(size=(rows, 8)).astype(np.float32)
    features[3, 5] = bad
    with h5py.File(path, "w") as h5:
        h5["features"], h5["label"], h5["set"] = features, np.arange(rows) % 2, np.arange(rows) // 2
    return path


def crops_file(path: Path, rows: int = 12) -> Path:
    with h5py.File(path, "w") as h5:
        h5.attrs["part_names"] = json.dumps({"car": ["wheel"]})
        h5["class_name"] = np.array(["car"] * rows, dtype=object).astype("S")
        h5["image"] = np.array([f"i{i}" for i in range(rows)], dtype=object).astype("S")
        h5["split"] = np.arange(rows) % 2
        h5["part_maps"] = np.zeros((rows, 16, 16), np.uint8)
    return path


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features_stop_every_stage_that_reads_them_naming_the_file(tmp_path, bad):
    from vidssl.evaluation import classification, invariance, partseg_probe

    features = feature_file(tmp_path / "features.h5", bad)
    expected = f"{features}: 1 feature rows hold NaN or inf (first rows [3])"
    stages = {
        "invariance": lambda: invariance.score_feature_files([str(features)], top_k=[2], firing_rate=0.01,
                                                             min_set_size=2, bootstrap=0, seed=0),
        "classification": lambda: classification.score_dataset(str(features), str(tmp_path / "index.parquet"), seed=0),
        "partseg probe": lambda: partseg_probe.probe_all(crops_file(tmp_path / "crops.h5"), features, classes=["car"],
                                                         size=16, epochs=1, lr=1e-3, seed=0),
    }
    for stage, run in stages.items():
        with pytest.raises(UserError) as stopped:
            run()
        assert str(stopped.value) == expected, stage


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.slow
def test_truncated_artifacts_are_removed_and_rebuilt(upstream, tmp_path):
    workdir = copy_of(upstream, tmp_path)
    targets = ["results/proposals/0000.parquet", "results/tracks/0000.parquet", "results/models/random/backbone.pth"]
    first = snakemake(workdir, "--cores", "2", *targets)
    assert first.returncode == 0, first.stderr[-3000:]
    results = workdir / "results"
    cut = [results / "proposals" / "0000.parquet", results / "chunks" / "0001.h5", results / "models" / "random" / "backbone.pth"]
    originals = {path: path.read_bytes() for path in cut}
    tracks_before = identity(results / "tracks" / "0000.parquet")
    chunks_before = ChunkStore(results / "chunks" / "0001.h5").index
    for path in cut:
        truncate(path)
    assert find_broken(results) == sorted(cut)

    dry = snakemake(workdir, "-n", *targets, "results/chunks/0001.h5")
    assert dry.returncode == 0 and all(path.exists() for path in cut), "a dry run changed files"
    assert sum("a real run removes it" in line for line in dry.stderr.splitlines()) == 3

    rerun = snakemake(workdir, "--cores", "2", *targets, "results/chunks/0001.h5")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    warnings = [line for line in rerun.stderr.splitlines() if line.startswith("vidssl: ")]
    assert warnings == [f"vidssl: {path.relative_to(workdir)} is truncated; removed so that it is rebuilt"
                        for path in sorted(cut)]
    assert find_broken(results) == []
    assert (results / "proposals" / "0000.parquet").read_bytes() == originals[cut[0]]  # deterministic rebuild
    assert identity(results / "tracks" / "0000.parquet") != tracks_before, "downstream of a rebuilt file reruns"
    pd.testing.assert_frame_equal(ChunkStore(results / "chunks" / "0001.h5").index, chunks_before)
    rebuilt, original = load_backbone(cut[2], "resnet18"), tmp_path / "original.pth"
    original.write_bytes(originals[cut[2]])
    assert all(torch.equal(v, load_backbone(original, "resnet18").state_dict()[k]) for k, v in rebuilt.state_dict().items())


@pytest.mark.parametrize("suffix", [".parquet", ".h5", ".pth", ".png", ".csv", ".json"])
def test_is_whole_detects_every_cut(tmp_path, suffix):
    path = tmp_path / f"artifact{suffix}"
    if suffix == ".parquet":
        write_parquet(pd.DataFrame({"a": np.arange(500)}), path, sort_by=["a"])
    elif suffix == ".h5":
        with h5py.File(path, "w") as h5:
            h5["x"] = np.arange(5000)
    elif suffix == ".pth":
        export_backbone({"conv1.weight": torch.ones(64, 3, 7, 7)}, path)
    elif suffix == ".png":
        import cv2
        cv2.imwrite(str(path), np.zeros((20, 20, 3), np.uint8))
    elif suffix == ".csv":
        pd.DataFrame({"a": [0.5, 1.5]}).to_csv(path, index=False)
    else:
        path.write_text(json.dumps({"config": {"seed": 0}}))
    whole = path.read_bytes()
    assert is_whole(path)
    cuts = [1, len(whole) // 2, len(whole) - 1] if suffix != ".csv" else [len(whole) - 1]  # a CSV cut at a line end reads whole
    for keep in [0, *cuts]:
        path.write_bytes(whole[:keep])
        assert not is_whole(path), f"{suffix} cut to {keep} of {len(whole)} bytes looks whole"


def test_find_broken_finds_the_one_cut_file_among_1000(tmp_path):
    """1,000 artifacts of the kinds a run writes, scanned as common.smk does at every start. Its speed is printed,
    not asserted: a loaded machine would fail any bound."""
    kinds = {".parquet": tmp_path / "p.parquet", ".h5": tmp_path / "h.h5", ".pth": tmp_path / "b.pth"}
    write_parquet(pd.DataFrame({"a": np.arange(100)}), kinds[".parquet"], sort_by=["a"])
    with h5py.File(kinds[".h5"], "w") as h5:
        h5["x"] = np.arange(100)
    export_backbone({"w": torch.ones(10)}, kinds[".pth"])
    root = tmp_path / "results"
    for i in range(1000):
        source = list(kinds.values())[i % 3]
        folder = root / f"d{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / f"{i:04d}{source.suffix}")
    truncate(root / "d5" / "0005.pth")
    start = time.perf_counter()
    broken = find_broken(root)
    seconds = time.perf_counter() - start
    assert broken == [root / "d5" / "0005.pth"]
    print(f"find_broken: 1,000 files in {seconds * 1000:.0f} ms")


def can_mount_tmpfs(where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


@pytest.fixture
def full_disk(tmp_path):
    """A 16 KiB tmpfs: every artifact below is larger. Needs root (mount); skipped elsewhere."""
    where = tmp_path / "small"
    if not can_mount_tmpfs(where):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield where
    subprocess.run(["umount", str(where)], check=True)


def test_full_disk_every_writer_fails_cleanly(full_disk, tmp_path, data):  # noqa: F811
    writers = {
        "x.parquet": lambda out: write_parquet(pd.DataFrame({"a": np.random.default_rng(0).random(10_000)}), out,
                                               sort_by=["a"]),
        "x.h5": lambda out: extract_chunks(
            build_manifest(list_videos("folder", str(data / "videos")), shards=1, chunk_len=12), str(out),
            shard=0, per_video=1, length=12, max_side=64, jpeg_quality=100),
        "x.pth": lambda out: export_backbone({"w": torch.rand(20_000)}, out),  # torch.save hides the ENOSPC
    }
    for name, write in writers.items():
        with pytest.raises(UserError, match=rf"^disk full while writing {full_disk / name}; nothing was left behind$"):
            write(full_disk / name)
        assert list(full_disk.iterdir()) == [], f"{name} left something behind"


@pytest.mark.slow
def test_full_disk_in_a_snakemake_job(full_disk, upstream, tmp_path):
    workdir = copy_of(upstream, tmp_path)
    (workdir / "results" / "proposals").symlink_to(full_disk, target_is_directory=True)
    result = snakemake(workdir, "--cores", "2", "results/proposals/0000.parquet")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("vidssl proposals:")]
    assert lines == ["vidssl proposals: disk full while writing results/proposals/0000.parquet; nothing was left behind"]
    assert list(full_disk.iterdir()) == []


def test_enospc_is_found_behind_other_errors(tmp_path):
    """Without a small disk: an ENOSPC wrapped by a writer (as torch.save to a file object does) is still named."""
    target = tmp_path / "x.bin"
    with pytest.raises(UserError, match="disk full while writing"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError:
                raise RuntimeError("unexpected pos 704 vs 598")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="not a disk problem"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("not a disk problem")
    assert list(tmp_path.iterdir()) == []


def spawned_workers(pid: int) -> list[int]:
    """The multiprocessing worker processes under `pid` (not its resource tracker), from /proc."""
    workers, queue = [], [pid]
    while queue:
        parent = queue.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            queue.append(child)
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in command:
                workers.append(child)
    return workers


STAGE = """
import json, sys, types
from vidssl.tracking import proposals
from vidssl.core.cli import run_stage
smk = types.SimpleNamespace(log=[sys.argv[3]], rule="proposals", threads=2)
run_stage(smk, lambda log: proposals.propose_shard(sys.argv[1], sys.argv[2], **json.loads(sys.argv[4]), threads=2,
                                                   log=log))
"""


def test_a_killed_selective_search_worker_fails_the_stage_without_the_rest_of_its_chunks(tmp_path):
    from test_tracks import make_container, moving_object_frames

    videos = {f"v{i:02d}": moving_object_frames(n_frames=8, seed=i)[0] for i in range(16)}
    chunks = make_container(tmp_path, videos, length=8)
    log = tmp_path / "proposals.log"
    stage = subprocess.Popen([sys.executable, "-c", STAGE, chunks, str(tmp_path / "p.parquet"), str(log),
                              json.dumps(search_params())], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    # Kill one worker in the middle of its work: a chunk is done, the rest are in flight or queued.
    wait_for(lambda: log.exists() and " 1/16 " in log.read_text() and spawned_workers(stage.pid), stage,
             "the first chunk's proposals")
    os.kill(spawned_workers(stage.pid)[0], signal.SIGKILL)
    try:  # a pool that waits for the dead worker's chunk never ends: the limit only catches that hang
        _, stderr = stage.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        os.killpg(stage.pid, signal.SIGKILL)
        stage.communicate()
        raise AssertionError(f"the stage still ran {HANG_S} s after its worker was killed")
    assert stage.returncode == 1
    # the pool broke at once: the chunks queued behind the dead worker's were never searched
    assert " 16/16 " not in log.read_text()
    lines = [line for line in stderr.splitlines() if line.startswith("vidssl proposals:")]
    assert len(lines) == 1 and "worker" in lines[0], stderr
    assert "Traceback" not in stderr and not (tmp_path / "p.parquet").exists()


def test_temp_names_are_unique_per_writer_and_name_their_host(tmp_path):
    """Two writers of one artifact (two nodes of a shared file system may have the same pid) never share a temp."""
    target = tmp_path / "x.parquet"
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        assert first.name.startswith(".x.parquet.tmp.") and f".{host}.{os.getpid()}." in first.name
        first.write_bytes(b"1")
        second.write_bytes(b"2")
    assert target.read_bytes() == b"1" and [p.name for p in tmp_path.iterdir()] == ["x.parquet"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_quota_is_a_full_disk(tmp_path, code):
    target = tmp_path / "x.bin"
    for hidden in (False, True):  # raised as is, and hidden behind another error as torch.save does
        with pytest.raises(UserError, match=rf"^disk full while writing {target}; nothing was left behind$"):
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"partial")
                try:
                    raise OSError(code, os.strerror(code))
                except OSError:
                    if hidden:
                        raise RuntimeError("unexpected pos 704 vs 598")
                    raise
        assert list(tmp_path.iterdir()) == []


def sleeping_writer(target: Path) -> subprocess.Popen:
    """A process inside atomic_path(target), its temp written, waiting to be killed."""
    code = ("import sys; from vidssl.core.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'partial'); print('ready', flush=True); sys.stdin.read()")  # until killed, however long
    process = subprocess.Popen([sys.executable, "-c", code, str(target)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"
    return process


def temps_of(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if ".tmp" in p.name}


def test_temps_of_gone_writers_are_removed_and_live_ones_kept(tmp_path):
    from vidssl.core.integrity import stale_temps

    results = tmp_path / "results"
    models = results / "models" / "fti"
    resume = results / "models" / ".resume"
    models.mkdir(parents=True)
    resume.mkdir()
    terminated = sleeping_writer(models / "checkpoint.pt")
    terminated.send_signal(signal.SIGTERM)
    terminated.wait()
    left_behind = temps_of(models)
    assert len(left_behind) == 1, "SIGTERM should leave the temp behind (no Python cleanup runs)"
    live = sleeping_writer(models / "backbone.pth")
    live_temp = temps_of(models) - left_behind
    gone_pid = _reaped_pid()
    old = time.time() - 3 * 24 * 3600
    planted = {
        resume / f".fti.pt.tmp{gone_pid}": None,  # the host-less name of earlier versions, this host's
        resume / f".moco.pt.tmp{os.getpid()}": None,  # same form, its writer alive: kept
        results / ".table5.csv.tmp.othernode.123.0123abcd": None,  # another node, recent: its job may still run
        results / ".table5.md.tmp.othernode.123.4567cdef": old,  # another node, older than any job may run
        results / ".notes.tmp": old,  # the user's own hidden files
        results / ".x.tmp.othernode": old,
    }
    for path, mtime in planted.items():
        path.write_bytes(b"partial")
        if mtime:
            os.utime(path, (mtime, mtime))
    try:
        stale = stale_temps(results)
        assert stale == sorted([models / next(iter(left_behind)), resume / f".fti.pt.tmp{gone_pid}",
                                results / ".table5.md.tmp.othernode.123.4567cdef"])
    finally:
        live.kill()
        live.wait()
    assert live_temp and all((models / name).exists() for name in live_temp)


def _reaped_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_start_removes_only_what_the_pipeline_writes(tmp_path):
    """A user's own truncated files under results/ stay; a truncated artifact and a killed job's temp go."""
    results = tmp_path / "results"
    (results / "mine").mkdir(parents=True)
    (results / "eval").mkdir()
    write_parquet(pd.DataFrame({"a": np.arange(100)}), results / "notes.parquet", sort_by=["a"])
    with h5py.File(results / "mine" / "x.h5", "w") as h5:
        h5["x"] = np.arange(1000)
    write_parquet(pd.DataFrame({"a": np.arange(100)}), results / "eval" / "viewpoint.parquet", sort_by=["a"])
    user_files = [results / "notes.parquet", results / "mine" / "x.h5", results / "mine" / "figure.png"]
    (results / "mine" / "figure.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    for path in [*user_files[:2], results / "eval" / "viewpoint.parquet"]:
        truncate(path)
    stale = results / f".config.yaml.tmp.{re.sub(r'[^A-Za-z0-9-]', '-', socket.gethostname())}.{_reaped_pid()}.0a1b2c3d"
    stale.write_bytes(b"partial")
    user_bytes = {path: path.read_bytes() for path in user_files}

    dry = snakemake(tmp_path, "-n", "results/config.yaml")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert stale.exists() and (results / "eval" / "viewpoint.parquet").exists(), "a dry run changed files"
    real = snakemake(tmp_path, "--cores", "1", "results/config.yaml")
    assert real.returncode == 0, real.stderr[-3000:]
    notes = [line for line in real.stderr.splitlines() if line.startswith("vidssl: ")]
    assert notes == ["vidssl: results/eval/viewpoint.parquet is truncated; removed so that it is rebuilt",
                     f"vidssl: {stale.relative_to(tmp_path)} is the temp file of a job that is gone; removed"]
    assert not stale.exists() and not (results / "eval" / "viewpoint.parquet").exists()
    assert {path: path.read_bytes() for path in user_files} == user_bytes
