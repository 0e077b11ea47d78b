import os
import pickle

import pytest
import torch
import torchvision

from vidssl.core.io import UserError
from vidssl.models import archs, check_arch, options
from vidssl.models.backbone import build, build_trunk, export_backbone, import_pretrained, load_backbone, random_backbone

torch.set_num_threads(1)  # tiny models on shared cores: more threads only wait on each other
TORCHVISION = {"width": 1.0, "stem": "imagenet"}


def build_resnet(arch, **kwargs):
    return build_trunk(arch, **(TORCHVISION | kwargs))


def torchvision_resnet18(seed=0):
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_build_and_dims():
    net = build_resnet("resnet18")
    assert isinstance(net.fc, torch.nn.Identity)
    assert net.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, net.feature_dim) == (2, 512)
    assert build_resnet("resnet50").feature_dim == 2048
    with pytest.raises(UserError, match="resnet34"):
        build_resnet("resnet34")


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_default_options_draw_torchvision_weights(arch):
    torch.manual_seed(5)
    expected = getattr(torchvision.models, arch)(weights=None).state_dict()
    torch.manual_seed(5)
    assert same_weights(build(arch, **TORCHVISION).state_dict(), expected)


def test_width_scales_every_stage():
    net = build_resnet("resnet18", width=0.25)
    assert [net.layer1[0].conv1.out_channels, net.layer2[0].conv1.out_channels, net.layer3[0].conv1.out_channels,
            net.layer4[0].conv1.out_channels] == [16, 32, 64, 128]
    assert net.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 128) == (2, net.feature_dim)
    assert build_resnet("resnet50", width=0.5).feature_dim == 1024
    with pytest.raises(UserError, match="model.width"):
        build_resnet("resnet18", width=0.01)
    with pytest.raises(UserError, match="model.stem"):
        build_resnet("resnet18", stem="cifar")


@pytest.mark.parametrize("arch, stem", [("resnet18", "imagenet"), ("resnet18", "small"), ("resnet50", "imagenet")])
def test_maps_have_the_channels_and_strides_the_backbone_declares(arch, stem):
    """The Backbone contract: forward_to(level) gives a map of output_shape()[level]'s channels at its stride, and
    forward_from(that map) the pooled feature of the whole trunk."""
    net = build_resnet(arch, width=0.25, stem=stem).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for level, spec in net.output_shape().items():
            maps = net.forward_to(x, level)
            assert maps.shape[1:] == (spec.channels, 64 // spec.stride, 64 // spec.stride), level
            assert torch.allclose(net.forward_from(maps, level), net(x), atol=1e-5), level
        assert torch.equal(net.pooled(x), net.forward_from(net.forward_to(x, "layer4"), "layer4"))
    with pytest.raises(ValueError, match="layer5"):
        net.forward_to(x, "layer5")


def test_small_stem_keeps_the_input_resolution_until_layer2():
    small, imagenet = build_resnet("resnet18", stem="small").eval(), build_resnet("resnet18").eval()
    x = torch.zeros(1, 3, 32, 32)
    assert small.conv1.kernel_size == (3, 3) and isinstance(small.maxpool, torch.nn.Identity)
    assert small.forward_to(x, "layer1").shape[-1] == 32 and small.forward_to(x, "layer4").shape[-1] == 4
    assert (small.output_shape()["layer3"].stride, imagenet.output_shape()["layer3"].stride) == (4, 16)
    assert torch.allclose(small.pooled(x), small(x))


def test_architectures_and_their_options_come_from_the_backbone_modules():
    assert {"resnet18", "resnet50"} <= set(archs()) and check_arch("resnet50") == "resnet"
    assert options("resnet18", {"arch": "resnet18", "width": 0.5, "stem": "small", "image_size": 48}) == {
        "width": 0.5, "stem": "small"}
    with pytest.raises(UserError, match="model.arch 'resnet34' is not one of"):
        check_arch("resnet34")


@pytest.mark.parametrize("width, stem", [(0.25, "small"), (0.5, "imagenet")])
def test_random_init_round_trips_with_its_options(tmp_path, width, stem):
    """The Random init row is the trained rows' network untrained: export, then load, gives back the same net."""
    random_backbone("resnet18", 0, tmp_path / "r.pth", width=width, stem=stem)
    torch.manual_seed(0)
    expected = build_resnet("resnet18", width=width, stem=stem).state_dict()
    loaded = load_backbone(tmp_path / "r.pth", "resnet18")
    assert (loaded.width, loaded.stem, loaded.feature_dim) == (width, stem, 8 * round(64 * width))
    assert same_weights(loaded.state_dict(), expected)
    with pytest.raises(UserError, match="resnet50"):
        load_backbone(tmp_path / "r.pth", "resnet50")


def test_export_loads_into_torchvision_with_only_fc_missing(tmp_path):
    source = torchvision_resnet18()
    state = {f"module.encoder_q.{k}": v for k, v in source.state_dict().items()}
    export_backbone(state, tmp_path / "b.pth")
    saved = torch.load(tmp_path / "b.pth", weights_only=True)
    assert not any(k.startswith(("fc.", "module.", "encoder_q.")) for k in saved)
    result = torchvision.models.resnet18(weights=None).load_state_dict(saved, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and result.unexpected_keys == []
    loaded = load_backbone(tmp_path / "b.pth", "resnet18")
    assert not loaded.training
    expected = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    assert same_weights(loaded.state_dict(), expected)
    # The loaded forward is the pooled post-ReLU trunk: non-negative, 512-d.
    x = torch.randn(2, 3, 32, 32)
    features = loaded(x)
    assert features.shape == (2, 512) and (features >= 0).all()


@pytest.mark.parametrize("layout", ["torchvision", "moco"])
def test_import_pretrained_layouts(tmp_path, layout):
    source = torchvision_resnet18(seed=3).state_dict()
    if layout == "moco":  # the official MoCo checkpoint: prefixed keys, an MLP head, optimizer state beside
        state = {f"module.encoder_q.{k}": v for k, v in source.items() if not k.startswith("fc.")}
        state.update({"module.encoder_q.fc.0.weight": torch.zeros(512, 512), "module.encoder_k.conv1.weight": torch.ones(1),
                      "module.queue": torch.zeros(128, 16)})
        obj = {"state_dict": state, "epoch": 200, "arch": "resnet50"}
    else:
        obj = source
    torch.save(obj, tmp_path / "in.pth")
    import_pretrained(tmp_path / "in.pth", layout, "resnet18", tmp_path / "out.pth")
    expected = {k: v for k, v in source.items() if not k.startswith("fc.")}
    assert same_weights(load_backbone(tmp_path / "out.pth", "resnet18").state_dict(), expected)


def test_random_backbone_is_seeded(tmp_path):
    random_backbone("resnet18", 1, tmp_path / "a.pth", **TORCHVISION)
    random_backbone("resnet18", 1, tmp_path / "b.pth", **TORCHVISION)
    random_backbone("resnet18", 2, tmp_path / "c.pth", **TORCHVISION)
    a, b, c = (torch.load(tmp_path / f"{n}.pth", weights_only=True) for n in "abc")
    assert same_weights(a, b) and not same_weights(a, c)


def test_missing_trunk_key_is_loud(tmp_path):
    state = torchvision_resnet18().state_dict()
    del state["layer2.0.conv1.weight"]
    torch.save(state, tmp_path / "m.pth")
    with pytest.raises(UserError, match=r"m\.pth.*1 missing keys \['layer2\.0\.conv1\.weight'\]"):
        load_backbone(tmp_path / "m.pth", "resnet18")


def test_unexpected_key_is_loud(tmp_path):
    state = torchvision_resnet18().state_dict()
    state["layer5.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "u.pth")
    with pytest.raises(UserError, match=r"unexpected keys \['layer5\.weight'\]"):
        load_backbone(tmp_path / "u.pth", "resnet18")


def test_wrong_arch_and_missing_path_are_loud(tmp_path):
    export_backbone(torchvision_resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(UserError, match="r18.pth"):
        load_backbone(tmp_path / "r18.pth", "resnet50")
    with pytest.raises(UserError, match="does not exist"):
        load_backbone(tmp_path / "nope.pth", "resnet18")


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused(tmp_path):
    torch.save({"state_dict": RunsCode()}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="weights_only"):
        load_backbone(tmp_path / "evil.pth", "resnet18")
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")
    with open(tmp_path / "legacy.pkl", "wb") as handle:
        pickle.dump(RunsCode(), handle)
    with pytest.raises(UserError):
        load_backbone(tmp_path / "legacy.pkl", "resnet18")


def test_truncated_file_is_loud(tmp_path):
    torch.save(torchvision_resnet18().state_dict(), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.pth"):
        load_backbone(tmp_path / "cut.pth", "resnet18")
