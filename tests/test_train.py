import copy
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT
from torchvision.transforms.v2 import functional as TF

from vidssl import config as vidssl_config
from vidssl.core.io import UserError, write_parquet
from vidssl.datasets import sources
from vidssl.datasets.labelled import list_labelled
from vidssl.datasets.readers import build_index
from vidssl.models.backbone import load_backbone
from vidssl.report.figures import plot_training
from vidssl.training.augment import JITTER_OPS, MIN_BOX, MocoV2Augment, adjust, crop_window
from vidssl.training.knn_monitor import KnnMonitor
from vidssl.training.methods import ALIASES, objectives, views, with_objective_optimiser
from vidssl.training.methods import get as get_method
from vidssl.training.samples import TrainingSamples, read_tracks, step_batches
from vidssl.training.train import set_up, train
from vidssl.video.chunk_store import ChunkStore
from vidssl.video.chunks import extract_chunks
from vidssl.video.manifest import build_manifest, list_videos

torch.set_num_threads(1)  # tiny models on shared cores: more threads only wait on each other

LENGTH = 12
DEFAULTS = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
# A run's config as the train rule passes it: config.yaml's sections, small.
CFG = {
    "seed": 0,
    "model": DEFAULTS["model"] | {"arch": "resnet18", "image_size": 32},
    "objective": DEFAULTS["moco"] | {"dim": 16, "queue": 32, "bn_splits": 2},
    "train": DEFAULTS["train"] | {"steps": 3, "batch_size": 8, "lr": 0.06, "workers": 0, "checkpoint_every": 1,
                                  "knn_every": 3},
}


def write_video(path, seed):
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    background = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    for t in range(LENGTH):
        frame = background.copy()
        cv2.rectangle(frame, (5 + 2 * t, 10), (25 + 2 * t, 30), (0, 0, 255 - seed * 60), -1)
        writer.write(frame)
    writer.release()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "videos").mkdir()
    for i in range(2):
        write_video(root / "videos" / f"v{i}.mp4", i)
    manifest = build_manifest(list_videos("folder", str(root / "videos")), shards=1, chunk_len=LENGTH)
    extract_chunks(manifest, str(root / "chunks.h5"), shard=0, per_video=1, length=LENGTH, max_side=64,
                         jpeg_quality=90)
    pairs = pd.DataFrame([(v, 0, a, a + 4) for v in ("v0", "v1") for a in range(0, 8, 2)],
                         columns=["video", "chunk", "frame_a", "frame_b"])
    write_parquet(pairs, root / "pairs.parquet", sort_by=["video", "chunk", "frame_a"])
    tracks = pd.DataFrame([dict(video="v0", chunk=0, frame_a=a, frame_b=a + 4, track=j,
                                ax1=5.0 + 2 * a, ay1=10.0, ax2=25.0 + 2 * a, ay2=30.0,
                                bx1=13.0 + 2 * a, by1=10.0, bx2=33.0 + 2 * a, by2=30.0, score=0.9)
                           for a in range(0, 8, 2) for j in range(2)])  # v1 has no tracks
    write_parquet(tracks, root / "tracks.parquet", sort_by=["video", "chunk", "frame_a"])
    rng = np.random.default_rng(0)
    for c, colour in enumerate([(0, 0, 255), (0, 255, 0)]):
        (root / "labelled" / f"class{c}").mkdir(parents=True)
        for i in range(6):
            image = rng.integers(0, 60, (40, 40, 3), dtype=np.uint8)
            cv2.circle(image, (20, 20), 8 + i, colour, -1)
            cv2.imwrite(str(root / "labelled" / f"class{c}" / f"{i}.jpg"), image)
    return root


def run(method, data, out, cfg=CFG, **kwargs):
    return train(method, chunks=[str(data / "chunks.h5")], frame_pairs=[str(data / "pairs.parquet")],
                 track_pairs=[str(data / "tracks.parquet")], labelled=str(data / "labelled"),
                 out_dir=str(out), cfg=cfg, **kwargs)


def test_an_objectives_own_optimiser_settings_train_its_methods(data, tmp_path):
    """`<objective>.train` over `train`: the run takes them, and its resume identity holds them (a resume copy made
    with the shared settings is not continued)."""
    cfg = copy.deepcopy(CFG)
    cfg["train"] |= {"steps": 2, "knn_every": 0, "checkpoint_every": 1}
    run("moco", data, tmp_path / "moco", cfg=cfg, stop_at=1)
    cfg["objective"]["train"] = {"lr": 0.03, "warmup_steps": 2}
    own = run("moco", data, tmp_path / "moco", cfg=cfg)
    assert own["resumed_from"] == 0 and own["steps"] == 2
    log = pd.read_csv(tmp_path / "moco" / "train.csv")
    assert list(log.lr) == pytest.approx([0.03 * 8 / 256 / 2, 0.03 * 8 / 256])  # its lr, warmed up over 2 steps


def test_runs_repeat_exactly_and_resume_continues(data, tmp_path):
    full = run("fti", data, tmp_path / "a" / "fti")
    first = run("fti", data, tmp_path / "b" / "fti", stop_at=2)
    assert first["steps"] == 2 and len(first["loss"]) == 2
    resumed = run("fti", data, tmp_path / "b" / "fti")
    assert resumed["resumed_from"] == 2 and resumed["steps"] == 3
    assert full["loss"] == resumed["loss"] and len(full["loss"]) == 3 and all(map(math.isfinite, full["loss"]))

    out = tmp_path / "b" / "fti"
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 3 and int(checkpoint["model"]["queue_ptr"]) == 3 * 8 % 32
    assert not (out / "resume.pt").exists(), "a finished run leaves a resume copy a later run could take"
    log = pd.read_csv(out / "train.csv")
    assert list(log.step) == [1, 2, 3] and list(log.loss) == pytest.approx(full["loss"])
    assert log.knn_top1[:2].isna().all() and 0 <= log.knn_top1[2] <= 1
    # scored with the kNN monitor: the loss against keys of the current key encoder, near chance ln(33) untrained
    assert log.loss_fresh_queue[:2].isna().all() and 0.5 * math.log(33) < log.loss_fresh_queue[2] < 1.5 * math.log(33)
    assert log.lr[0] == pytest.approx(0.06 * 8 / 256) and log.lr[2] < log.lr[1] < log.lr[0]
    info = json.loads((out / "run.json").read_text())
    # the settings the run used: the objective's own optimiser keys (none here) applied over `train`
    assert info["config"] == with_objective_optimiser(CFG) and "torch" in info["versions"] and info["device"] == "cpu"
    trunk = load_backbone(out / "backbone.pth", "resnet18")
    from_checkpoint = load_backbone(out / "checkpoint.pt", "resnet18")  # our checkpoint layout loads too
    assert all(torch.equal(v, from_checkpoint.state_dict()[k]) for k, v in trunk.state_dict().items())
    expected = {k.removeprefix("encoder_q."): v for k, v in checkpoint["model"].items()
                if k.startswith("encoder_q.") and ".fc." not in k and not k.startswith("encoder_q.fc.")}
    assert all(torch.equal(trunk.state_dict()[k], v) for k, v in expected.items())
    plot_training(out / "train.csv", tmp_path / "curve.png")
    assert cv2.imread(str(tmp_path / "curve.png")) is not None


def test_changed_config_starts_over_naming_the_key(data, tmp_path, caplog):
    cfg = copy.deepcopy(CFG)
    cfg["train"].update(steps=2, knn_every=0)
    run("moco", data, tmp_path / "moco", cfg=cfg, stop_at=1)
    cfg["train"]["lr"] = 0.03
    with caplog.at_level(logging.WARNING, logger="vidssl.training.train"):
        assert run("moco", data, tmp_path / "moco", cfg=cfg)["resumed_from"] == 0
    assert "train.lr 0.06 -> 0.03" in caplog.text


def copy_of_inputs(data, folder):
    """The fixture's pairs and labelled set in a folder of their own, to be changed by a test."""
    shutil.copy2(data / "pairs.parquet", folder / "pairs.parquet")
    shutil.copytree(data / "labelled", folder / "labelled")
    return folder


def run_on(inputs, data, out, cfg, **kwargs):
    return train("fti", chunks=[str(data / "chunks.h5")], frame_pairs=[str(inputs / "pairs.parquet")],
                 labelled=str(inputs / "labelled"), out_dir=str(out), cfg=cfg, **kwargs)


def test_a_resume_copy_made_from_other_inputs_is_ignored_naming_them(data, tmp_path, caplog):
    inputs = copy_of_inputs(data, tmp_path)
    cfg = copy.deepcopy(CFG)
    cfg["train"].update(steps=3, knn_every=0)
    unchanged = run_on(inputs, data, tmp_path / "a", cfg)
    assert run_on(inputs, data, tmp_path / "fti", cfg, stop_at=2)["steps"] == 2
    pairs, before = pd.read_parquet(inputs / "pairs.parquet"), (inputs / "pairs.parquet").stat()
    write_parquet(pairs.assign(frame_b=pairs.frame_a + 2), inputs / "pairs.parquet", sort_by=["video", "chunk", "frame_a"])
    os.utime(inputs / "pairs.parquet", ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p or rsync -a leave it
    with caplog.at_level(logging.WARNING, logger="vidssl.training.train"):
        other = run_on(inputs, data, tmp_path / "fti", cfg)
    assert other["resumed_from"] == 0 and other["steps"] == 3 and other["loss"] != unchanged["loss"]
    assert re.search(rf"frame_pairs {inputs / 'pairs.parquet'} changed \((size, )?metadata\)", caplog.text)

    caplog.clear()
    assert run_on(inputs, data, tmp_path / "sup", cfg, stop_at=1)["steps"] == 1
    cv2.imwrite(str(inputs / "labelled" / "class0" / "new.jpg"), np.zeros((40, 40, 3), np.uint8))
    with caplog.at_level(logging.WARNING, logger="vidssl.training.train"):
        assert run_on(inputs, data, tmp_path / "sup", cfg)["resumed_from"] == 0
    assert f"labelled {inputs / 'labelled'} changed (images, names, folder_mtimes)" in caplog.text


def test_a_finished_run_then_the_same_run_starts_from_step_0(data, tmp_path):
    """What --forcerun train_<m> does: the outputs are removed, the job runs again and must train, not re-export."""
    cfg = copy.deepcopy(CFG)
    cfg["train"].update(steps=2, knn_every=0)
    first = run("moco", data, tmp_path / "moco", cfg=cfg)
    again = run("moco", data, tmp_path / "moco", cfg=cfg)
    assert again["resumed_from"] == 0 and again["loss"] == first["loss"]


@pytest.mark.parametrize("method", list(ALIASES))
@pytest.mark.parametrize("lr", [math.nan, 1e30])
def test_a_non_finite_loss_stops_the_run_at_its_step(data, tmp_path, method, lr):
    """A NaN learning rate makes every weight NaN at step 1, so step 2's loss is NaN; 1e30 makes them explode."""
    cfg = copy.deepcopy(CFG)
    cfg["train"].update(steps=4, lr=lr, knn_every=0, checkpoint_every=1)
    with pytest.raises(UserError, match=r"loss became (nan|inf) at step (\d+)") as stopped:
        run(method, data, tmp_path / method, cfg=cfg)
    if math.isnan(lr):
        assert "loss became nan at step 2 " in str(stopped.value)
    assert not (tmp_path / method / "backbone.pth").exists()
    step = int(re.search(r"at step (\d+)", str(stopped.value))[1])
    saved = torch.load(tmp_path / method / "resume.pt", weights_only=True)  # the last state with a finite loss
    assert saved["step"] == step - 1 and all(map(math.isfinite, (row["loss"] for row in saved["history"])))


def test_the_knn_monitor_holds_a_seeded_sample_of_the_labelled_set(data):
    items, _ = list_labelled(data / "labelled")
    sampled, again, whole = (KnnMonitor(items, 32, seed=0, samples=n) for n in (6, 6, 1000))
    assert len(sampled.bank[0]) + len(sampled.query[0]) == 6 and len(whole.bank[0]) + len(whole.query[0]) == 12
    assert torch.equal(sampled.bank[0], again.bank[0]) and torch.equal(sampled.query[1], again.query[1])


def test_region_tracker_with_workers(data, tmp_path):
    cfg = copy.deepcopy(CFG)
    cfg["train"].update(steps=1, workers=1, knn_every=0)
    result = run("region_tracker", data, tmp_path / "rt", cfg=cfg)
    checkpoint = torch.load(tmp_path / "rt" / "checkpoint.pt", weights_only=True)
    assert int(checkpoint["model"]["queue_ptr"]) == 2 * 8  # frame keys and patch keys
    cfg["train"]["workers"] = 0  # samples are a function of (seed, index): the worker count changes nothing
    assert run("region_tracker", data, tmp_path / "rt0", cfg=cfg)["loss"] == result["loss"]


def test_supervised(data, tmp_path):
    cfg = copy.deepcopy(CFG)
    cfg["train"].update(steps=2, knn_every=2)
    result = run("supervised", data, tmp_path / "sup", cfg=cfg)
    assert len(result["loss"]) == 2 and 0 <= result["knn_top1"] <= 1
    assert math.isclose(result["loss"][0], math.log(2), rel_tol=0.5)  # two classes, untrained
    load_backbone(tmp_path / "sup" / "backbone.pth", "resnet18")


def test_supervised_never_trains_on_the_classification_test_images(data, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(data / "labelled", world / "labelled")
    config = {"seed": 4, "train": {"labelled": None},
              "classification": {"synthetic": True, "test_fraction": 0.5, "imagefolder": None, "voc07": None}}
    index, _ = build_index(sources._classification_sources(config, str(world))["synthetic_labelled"])
    tested = set(index.path[index.split == "test"])
    cfg = {**copy.deepcopy(CFG), "labelled_split": vidssl_config.labelled_split(config, "supervised")}
    run = set_up(get_method("supervised"), {}, str(world / "labelled"), str(tmp_path / "sup"), cfg, 0)
    trained = {path for path, _ in run.labelled}
    assert len(tested) == len(trained) == 6 and tested.isdisjoint(trained)
    assert set(run.data.labelled) == set(run.labelled)  # the training samples and the kNN monitor read the same list
    assert vidssl_config.labelled_split(config, "moco") is None  # only the kNN monitor reads it: every image


def test_region_tracker_samples(data):
    store = ChunkStore(data / "chunks.h5")
    pairs = pd.read_parquet(data / "pairs.parquet")
    samples = TrainingSamples(get_method("region_tracker"), stores=[store], frame_pairs=pairs,
                              tracks=read_tracks([data / "tracks.parquet"]), labelled=None, image_size=32, seed=0)
    drawn = [samples[i] for i in range(2 * len(samples))]
    assert all(s["x_q"].shape == (3, 32, 32) for s in drawn)
    whole = torch.tensor([0.0, 0.0, 32.0, 32.0])
    assert any(s["tracked"] for s in drawn) and not all(s["tracked"] for s in drawn)
    for s in drawn:
        for box in (s["boxes_q"], s["boxes_k"]):
            assert (box >= 0).all() and (box <= 32).all() and (box[2:] > box[:2]).all()
        if not s["tracked"]:
            assert torch.equal(s["boxes_q"], whole) and torch.equal(s["boxes_k"], whole)
    assert torch.equal(samples[3]["x_k"], samples[3]["x_k"])  # a sample is a function of its index
    assert not torch.equal(samples[3]["x_k"], samples[3 + len(samples)]["x_k"])  # not of its epoch position


@pytest.mark.parametrize("method", ["moco", "fti", "region_tracker"])
def test_a_batch_read_at_once_equals_its_samples_read_one_by_one(data, method):
    store = ChunkStore(data / "chunks.h5")
    samples = TrainingSamples(get_method(method), stores=[store], frame_pairs=pd.read_parquet(data / "pairs.parquet"),
                              tracks=read_tracks([data / "tracks.parquet"]), labelled=None, image_size=32, seed=0)
    indices = [5, 0, 3, 3, 2 * len(samples) + 1]  # any order, repeats, a later epoch: frames shared within the batch
    for batched, index in zip(samples.__getitems__(indices), indices):
        single = samples[index]
        assert batched.keys() == single.keys()
        for key, value in single.items():
            assert torch.equal(batched[key], value) if torch.is_tensor(value) else batched[key] == value


def test_box_follows_crop_resize_and_flip():
    image = np.zeros((48, 64, 3), np.uint8)
    image[10:30, 6:30] = 255  # the tracked object, left of centre so that a flip moves it: box (6, 10, 30, 30)
    augment = MocoV2Augment(32)
    clipped, sides = 0, set()
    for seed in range(40):
        _, box, kept = augment(image, [6.0, 10.0, 30.0, 30.0], np.random.default_rng(seed))
        # the same seed draws the same crop and flip first: the geometric part alone, on the pixels
        geometric, _ = augment.geometric(image, None, np.random.default_rng(seed))
        ys, xs = np.nonzero(geometric[..., 0] > 127)
        if not kept:
            assert torch.equal(box, torch.tensor([0.0, 0.0, 32.0, 32.0])) and (len(xs) == 0 or min(
                xs.max() - xs.min(), ys.max() - ys.min()) < MIN_BOX + 1)
            continue
        seen = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        assert torch.allclose(box, seen, atol=1.5), (seed, box, seen)
        clipped += bool((box == 0).any() or (box == 32).any())
        sides.add(bool(box[0] + box[2] > 32))  # right of centre: only after a flip
    assert clipped > 0 and sides == {False, True}


@pytest.mark.parametrize("op,factor", [("brightness", 1.3), ("contrast", 0.7), ("saturation", 1.4), ("hue", 0.08),
                                       ("hue", -0.1), ("brightness", 0.6)])
def test_jitter_steps_match_torchvision(op, factor):
    rgb = np.random.default_rng(0).random((24, 20, 3), dtype=np.float32)
    ours = adjust(rgb, op, factor)
    theirs = getattr(TF, f"adjust_{op}")(torch.from_numpy(rgb).permute(2, 0, 1), factor).permute(1, 2, 0).numpy()
    assert op in JITTER_OPS and np.abs(ours - theirs).max() < 2e-3


def test_crop_window_follows_random_resized_crop():
    areas = []
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = crop_window(96, 128, rng)
        assert 0 <= top <= 96 - h and 0 <= left <= 128 - w and h > 0 and w > 0
        areas.append(h * w / (96 * 128))
        assert 3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05 or (h, w) == (96, 128)
    assert 0.19 <= min(areas) < 0.3 and max(areas) > 0.9
    top, left, h, w = crop_window(10, 400, rng)  # no try fits a 40:1 strip: the centred fallback, ratio clamped to 4:3
    assert (h, w) == (10, 13) and left == (400 - 13) // 2


def test_step_batches_split_the_global_batch():
    single = step_batches(1, 3, 8, 0, 1)
    ranks = [step_batches(1, 3, 8, r, 2) for r in range(2)]
    assert single == [list(range(8, 16)), list(range(16, 24))]
    assert [a + b for a, b in zip(*ranks)] == single


def test_bad_settings_are_user_errors(data, tmp_path, monkeypatch):
    cfg = copy.deepcopy(CFG)
    cfg["objective"]["queue"] = 30
    with pytest.raises(UserError, match="moco.queue 30"):
        run("moco", data, tmp_path / "x", cfg=cfg)
    cfg = copy.deepcopy(CFG)
    cfg["train"]["gpus"] = 2
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UserError, match="torchrun"):
        run("moco", data, tmp_path / "x", cfg=cfg)
    with pytest.raises(UserError, match="simclr"):
        run("simclr", data, tmp_path / "x")


def test_method_names_follow_one_rule_and_the_papers_names_keep_their_meaning():
    assert [(m.objective, m.view) for m in map(get_method, ALIASES)] == [
        ("moco", "frame"), ("moco", "frame_pair"), ("moco", "tracked_patch"), ("cross_entropy", "labelled")]
    assert get_method("moco-tracked_patch").inputs == get_method("region_tracker").inputs == (
        "chunks", "frame_pairs", "track_pairs")
    assert {"moco", "cross_entropy"} <= set(objectives()) and {"frame", "frame_pair", "tracked_patch"} <= set(views())
    with pytest.raises(UserError, match="needs labelled samples"):
        get_method("cross_entropy-frame")
    with pytest.raises(UserError, match="learns without labels"):
        get_method("moco-labelled")
    with pytest.raises(UserError, match="not one of"):
        get_method("moco-frames")


def test_the_method_specs_and_the_training_plot_load_without_torch():
    """Snakemake reads the specs to build the DAG, and the training_plot rule only draws a CSV."""
    code = ("import sys, vidssl.report.figures, vidssl.training.methods as m, vidssl.config, vidssl.models as b; "
            "[m.get(n).inputs for n in m.ALIASES]; b.check_arch('resnet18'); sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_settings_that_cannot_change_the_weights_never_restart_a_resumed_run(data, tmp_path):
    """Killed at step 2 and resumed with other loader workers, checkpoint interval and monitor settings, a run ends
    with the weights of one run straight through: those settings are not part of what a resume copy must match."""
    cfg = copy.deepcopy(CFG)
    cfg["train"].update(steps=4, workers=0, checkpoint_every=100, knn_every=0)
    straight = run("region_tracker", data, tmp_path / "straight", cfg=cfg)
    before = copy.deepcopy(cfg)
    before["train"].update(workers=1, checkpoint_every=1, knn_every=1, knn_samples=4)
    assert run("region_tracker", data, tmp_path / "resumed", cfg=before, stop_at=2)["steps"] == 2
    after = copy.deepcopy(cfg)
    after["train"].update(workers=2, checkpoint_every=3, knn_every=2)
    resumed = run("region_tracker", data, tmp_path / "resumed", cfg=after)
    assert resumed["resumed_from"] == 2 and resumed["loss"] == straight["loss"]
    ours, theirs = (torch.load(tmp_path / name / "backbone.pth", weights_only=True) for name in ("resumed", "straight"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize("optimizer", ["sgd", "lars", "adamw"])
def test_the_optimiser_and_warm_up_are_configuration(data, tmp_path, optimizer):
    cfg = copy.deepcopy(CFG)
    cfg["train"].update(steps=4, knn_every=0, optimizer=optimizer, warmup_steps=2)
    result = run("moco", data, tmp_path / optimizer, cfg=cfg)
    log = pd.read_csv(tmp_path / optimizer / "train.csv")
    peak = 0.06 * 8 / 256
    # linear warm-up to the peak over 2 steps, then the cosine from the peak to 0 at step 4
    assert log.lr.tolist() == pytest.approx([peak / 2, peak, peak, peak / 2])
    assert all(map(math.isfinite, result["loss"]))
