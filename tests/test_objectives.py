"""BYOL, DINO and the ViT backbone: losses and schedules by hand, what learns and what does not, box features, and
every objective on every view source through the real trainer."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import ROOT
from test_train import CFG, data, run  # noqa: F401  (data: the module's fixture of videos, pairs and tracks)

from vidssl.models.backbone import build_trunk, export_backbone, load_backbone
from vidssl.models.vit import box_means
from vidssl.training.augment import Crops
from vidssl.training.methods import get as get_method
from vidssl.training.objective import cosine_momentum
from vidssl.training.objectives.byol import BYOL, regression_loss
from vidssl.training.objectives.dino import DINO, distillation_loss

torch.set_num_threads(1)
DEFAULTS = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SMALL = {"arch": "resnet18", "width": 0.25, "stem": "imagenet", "image_size": 32}
DINO_SMALL = DEFAULTS["dino"] | {"out_dim": 64, "hidden": 32, "bottleneck": 16, "local_crops": 2}


def byol(steps=10, **model):
    torch.manual_seed(0)
    return BYOL(SMALL | model, projector_hidden=32, dim=16, momentum=0.99, steps=steps)


def dino(steps=10, **settings):
    torch.manual_seed(0)
    return DINO(SMALL, steps=steps, **(DINO_SMALL | settings))


def test_byol_loss_by_hand():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    # rows: cos 1/sqrt(2) and cos -1 -> 2 - 2 cos: 2 - sqrt(2) and 4
    assert float(regression_loss(p, z)) == pytest.approx((2 - math.sqrt(2) + 4) / 2)


def test_the_ema_momentum_rises_from_its_base_to_one_by_a_cosine():
    assert cosine_momentum(0.996, 0, 100) == pytest.approx(0.996)
    assert cosine_momentum(0.996, 50, 100) == pytest.approx(0.998)
    assert cosine_momentum(0.996, 100, 100) == pytest.approx(1.0)


def test_byol_target_takes_no_gradient_and_follows_the_online_network_by_ema():
    model = byol()
    x = torch.randn(4, 3, 32, 32)
    loss = model({"x_q": x, "x_k": x.flip(-1)}, 0)
    loss.backward()
    assert all(p.grad is None for p in [*model.target.parameters(), *model.target_projector.parameters()])
    assert all(p.grad is not None for p in model.predictor.parameters())
    online, target = (next(n.parameters()).detach().clone() for n in (model.online, model.target))
    with torch.no_grad():
        next(model.online.parameters()).add_(1.0)
    model.after_step(3)
    tau = cosine_momentum(0.99, 3, 10)
    assert torch.allclose(next(model.target.parameters()), tau * target + (1 - tau) * (online + 1.0), atol=1e-6)


def test_dino_loss_by_hand_and_the_centre_update():
    teacher, student = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    centre = torch.tensor([[1.0, 1.0]])
    target = torch.softmax((teacher - centre) / 0.5, -1)  # (e^2, e^-2) normalised
    expected = -(target * torch.log_softmax(student / 0.25, -1)).sum()
    assert float(distillation_loss(teacher, student, centre, 0.5, 0.25)) == pytest.approx(float(expected))
    model = dino(centre_momentum=0.9)
    outputs = torch.randn(6, 64)
    model.update_centre(outputs)
    assert torch.allclose(model.centre, 0.1 * outputs.mean(0, keepdim=True))


def test_dino_teacher_temperature_warms_up_linearly():
    model = dino(teacher_temperature_start=0.04, teacher_temperature=0.07, teacher_warmup_steps=3)
    assert [model.teacher_temperature(s) for s in (0, 1, 3, 9)] == pytest.approx([0.04, 0.05, 0.07, 0.07])


def test_dino_teacher_takes_no_gradient_and_its_last_layer_waits():
    model = dino(freeze_last_layer_steps=2)
    batch = {"x_q": torch.randn(4, 3, 32, 32), "x_k": torch.randn(4, 3, 32, 32),
             "x_local": torch.randn(4, 2, 3, 16, 16)}
    model(batch, 0).backward()
    assert all(p.grad is None for p in [*model.teacher.parameters(), *model.teacher_head.parameters()])
    model.before_step(1)
    assert all(p.grad is None for p in model.student_head.last.parameters())
    assert next(model.student_head.mlp.parameters()).grad is not None
    weight_norms = model.student_head.last.parametrizations.weight.original0
    assert not weight_norms.requires_grad and torch.equal(weight_norms, torch.ones_like(weight_norms))


def test_multi_crop_sizes_and_counts_come_from_the_objectives_section():
    crops = Crops.of(224, DEFAULTS["dino"])
    assert (crops.global_scale, crops.local, crops.local_size, crops.local_scale) == ((0.4, 1.0), 8, 96, (0.05, 0.4))
    assert Crops.of(224, DEFAULTS["moco"]) == Crops(224)  # MoCo v2: two crops of scale 0.2-1, no local ones


def test_samples_carry_the_local_crops_around_the_tracked_boxes(data):  # noqa: F811
    from vidssl.training.samples import TrainingSamples, read_tracks
    from vidssl.video.chunk_store import ChunkStore
    import pandas as pd

    crops = Crops.of(32, DINO_SMALL | {"local_crops": 3})
    samples = TrainingSamples(get_method("dino-tracked_patch"), stores=[ChunkStore(data / "chunks.h5")],
                              frame_pairs=pd.read_parquet(data / "pairs.parquet"),
                              tracks=read_tracks([data / "tracks.parquet"]), labelled=None, image_size=32, seed=0,
                              crops=crops)
    sample = samples[0]
    assert sample["x_q"].shape == (3, 32, 32) and sample["x_local"].shape == (3, 3, crops.local_size, crops.local_size)


def test_a_vit_box_feature_is_the_mean_of_the_tokens_its_box_covers():
    grid = torch.arange(2 * 3 * 3 * 4, dtype=torch.float32).reshape(2, 4, 3, 3)  # 2 images, 4 channels, 3x3 cells
    boxes = torch.tensor([[0.0, 0.0, 30.0, 10.0],   # centres (8, 8) and (24, 8) lie inside: cells (0, 0), (0, 1)
                          [30.0, 30.0, 33.0, 33.0]])  # holds no centre: the cell under its centre, (1, 1)
    pooled = box_means(grid, boxes, patch=16)
    assert torch.allclose(pooled[0], grid[0, :, 0, :2].mean(-1))
    assert torch.allclose(pooled[1], grid[1, :, 1, 1])


def test_the_vit_pools_the_cls_token_takes_any_input_size_and_round_trips(tmp_path):
    torch.manual_seed(0)
    net = build_trunk("vit_ti16", image_size=48).eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        cls, grid = net.tokens(x)
        frame, whole = net.features(x, torch.tensor([[0.0, 0.0, 48.0, 48.0]] * 2))
        assert torch.equal(net.pooled(x), cls) and torch.equal(frame, cls) and torch.allclose(whole, grid.mean((2, 3)), atol=1e-5)
        assert net.pooled(torch.randn(2, 3, 80, 64)).shape == (2, 192)  # position embedding resized to 5x4
    export_backbone(net.state_dict(), tmp_path / "vit.pth")
    loaded = load_backbone(tmp_path / "vit.pth", "vit_ti16")
    with torch.no_grad():
        assert torch.equal(loaded.pooled(x), net.pooled(x))


def train_on_identical_views(model, steps: int = 40) -> torch.Tensor:
    """`steps` SGD steps on pairs of identical views of smooth random images; returns the images."""
    torch.manual_seed(0)
    images = F.interpolate(torch.randn(32, 3, 8, 8), size=32, mode="bilinear")
    optimizer = torch.optim.SGD([p for _, p in model.trainable()], lr=0.05, momentum=0.9)
    losses = []
    for step in range(steps):
        x = images[torch.randperm(32)[:16]]
        loss = model({"x_q": x, "x_k": x.clone()}, step)
        optimizer.zero_grad()
        loss.backward()
        model.before_step(step)
        optimizer.step()
        model.after_step(step)
        losses.append(float(loss))
    return images, losses


def test_byol_learns_from_identical_views():
    """The wiring (loss, predictor, target EMA, optimiser) learns when the task is easy: the loss falls."""
    _, losses = train_on_identical_views(byol(steps=40))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


@torch.no_grad()
def student_teacher_divergence(model: DINO, images: torch.Tensor) -> float:
    """KL(teacher || student) on `images`: the part of DINO's loss the student can lower (the rest is the teacher's
    entropy, which centring raises)."""
    model.eval()
    teacher = torch.softmax((model.teacher_head(model.teacher.pooled(images)) - model.centre) / 0.04, -1)
    student = torch.log_softmax(model.student_head(model.student.pooled(images)) / 0.1, -1)
    model.train()
    return float((teacher * (torch.log(teacher + 1e-12) - student)).sum(-1).mean())


def test_dino_student_learns_to_match_its_teacher_on_identical_views():
    model = dino(steps=40, local_crops=0, out_dim=32)
    torch.manual_seed(0)
    probe = F.interpolate(torch.randn(32, 3, 8, 8), size=32, mode="bilinear")
    before = student_teacher_divergence(model, probe)
    images, _ = train_on_identical_views(model)
    assert torch.equal(images, probe)
    assert student_teacher_divergence(model, images) < 0.5 * before


def test_every_extension_module_declares_what_the_registry_reads():
    """Declarations are read from the source as literals: one that is not a literal would be missing."""
    from vidssl.core import registry
    from vidssl.models import archs
    from vidssl.training.methods import OBJECTIVES, VIEWS, objectives, views

    assert {"moco", "byol", "dino", "cross_entropy"} <= set(objectives())
    assert all({"LABELS", "SCHEMA"} <= set(registry.declarations(OBJECTIVES, o)) for o in objectives())
    assert all({"INPUTS", "IMAGE_KEYS", "LABELS"} <= set(registry.declarations(VIEWS, v)) for v in views())
    assert {"resnet18", "resnet50", "vit_s16", "vit_ti16"} <= set(archs())


RUNS = [f"{o}-{v}" for o in ("moco", "byol", "dino") for v in ("frame", "frame_pair", "tracked_patch")]


@pytest.mark.parametrize("method", RUNS)
def test_every_objective_on_every_view_trains_through_the_trainer(data, tmp_path, method):  # noqa: F811
    objective = method.split("-")[0]
    cfg = copy.deepcopy(CFG)
    cfg["train"].update(steps=2, knn_every=2, checkpoint_every=1)
    cfg["objective"] = {"moco": CFG["objective"], "byol": DEFAULTS["byol"] | {"projector_hidden": 32, "dim": 16},
                        "dino": DINO_SMALL}[objective]
    result = run(method, data, tmp_path / method, cfg=cfg)
    assert len(result["loss"]) == 2 and all(map(math.isfinite, result["loss"])) and 0 <= result["knn_top1"] <= 1
    trunk = load_backbone(tmp_path / method / "backbone.pth", "resnet18")
    assert trunk.feature_dim == 128


def test_a_vit_trains_through_the_trainer(data, tmp_path):  # noqa: F811
    cfg = copy.deepcopy(CFG)
    cfg["model"] = cfg["model"] | {"arch": "vit_ti16"}
    cfg["train"].update(steps=2, knn_every=2, optimizer="adamw", lr=0.0005)
    cfg["objective"] = DINO_SMALL | {"local_size": 0.5}  # 16 px local crops: one patch
    result = run("dino-tracked_patch", data, tmp_path / "vit", cfg=cfg)
    assert all(map(math.isfinite, result["loss"]))
    assert load_backbone(tmp_path / "vit" / "backbone.pth", "vit_ti16").feature_dim == 192
