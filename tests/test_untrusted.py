"""Untrusted files and config values: checkpoints never run code, config paths are resolved and checked, no shell.

load_backbone on a malicious pickle is covered by test_backbone.py::test_malicious_pickle_is_refused; here the other
entry points that read a checkpoint: the training resume copy, an imported pretrained file (a config path), and
feature extraction.
"""
from __future__ import annotations

import ast
import copy
import logging
import pickle
from pathlib import Path

import pytest
import torch
import yaml
from test_train import CFG, data, run  # noqa: F401  (data: the tiny chunk/pairs fixture, reused)

from vidssl import config as vidssl_config
from vidssl.core.io import UserError
from vidssl.evaluation.features import extract
from vidssl.models.backbone import import_pretrained

ROOT = Path(__file__).resolve().parents[1]
PYTHON_SOURCES = sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "workflow" / "scripts").rglob("*.py")])
SNAKEMAKE_SOURCES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]


class LeavesAMarker:
    """Unpickling this calls open(marker, "w"): the marker file exists iff the pickle's code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def malicious_files(folder: Path, marker: Path) -> list[Path]:
    """The same payload as a raw pickle and inside torch.save's zip layout, where a checkpoint's model would be."""
    folder.mkdir(parents=True, exist_ok=True)
    raw, zipped = folder / "raw.pt", folder / "zipped.pt"
    raw.write_bytes(pickle.dumps({"model": LeavesAMarker(marker)}, protocol=2))
    torch.save({"model": {"conv1.weight": LeavesAMarker(marker)}, "step": 5}, zipped)
    return [raw, zipped]


def test_the_payloads_are_live(tmp_path):
    """Loaded without weights_only, each payload does run: the refusals below are not vacuous."""
    marker = tmp_path / "marker"
    raw, zipped = malicious_files(tmp_path, marker)
    for load in (lambda: pickle.loads(raw.read_bytes()), lambda: torch.load(zipped, weights_only=False)):
        load()
        assert marker.exists()
        marker.unlink()


def calls(path: Path):
    return [node for node in ast.walk(ast.parse(path.read_text(), str(path))) if isinstance(node, ast.Call)]


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def keyword(call: ast.Call, name: str):
    return next((k.value.value for k in call.keywords if k.arg == name and isinstance(k.value, ast.Constant)), None)


def test_every_torch_load_is_weights_only():
    loads = [(path, call) for path in PYTHON_SOURCES for call in calls(path) if dotted(call.func) == "torch.load"]
    assert loads, "no torch.load found: the scan is looking in the wrong place"
    unsafe = [f"{path.relative_to(ROOT)}:{call.lineno}" for path, call in loads if keyword(call, "weights_only") is not True]
    assert unsafe == []


def test_no_other_code_executing_loaders():
    risky = {"pickle.load", "pickle.loads", "yaml.load", "eval", "exec", "torch.jit.load", "dill.load"}
    found = [f"{path.relative_to(ROOT)}:{call.lineno} {dotted(call.func)}" for path in PYTHON_SOURCES
             for call in calls(path) if dotted(call.func) in risky
             or (dotted(call.func) in ("np.load", "numpy.load") and keyword(call, "allow_pickle") is True)]
    assert found == []


def test_no_shell_strings():
    """Config values reach processes only as argv lists: no `shell:` rule, no shell=True, no os.system/popen."""
    for path in SNAKEMAKE_SOURCES:
        assert not [line for line in path.read_text().splitlines() if line.strip().startswith("shell:")], path
    for path in PYTHON_SOURCES:
        for call in calls(path):
            name = dotted(call.func)
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            assert name not in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"), where
            if name.startswith("subprocess."):
                assert keyword(call, "shell") is not True, where
                assert call.args and not isinstance(call.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)), where


def test_malicious_resume_copy_is_ignored_and_never_runs(data, tmp_path, caplog):  # noqa: F811
    cfg = copy.deepcopy(CFG)
    cfg["train"].update(steps=1, knn_every=0)
    marker = tmp_path / "marker"
    for payload in malicious_files(tmp_path / "payloads", marker):
        out = tmp_path / payload.stem / "moco"
        out.mkdir(parents=True)
        (out / "resume.pt").write_bytes(payload.read_bytes())
        with caplog.at_level(logging.WARNING, logger="vidssl.training.train"):
            summary = run("moco", data, out, cfg=cfg)
        assert summary["resumed_from"] == 0 and summary["steps"] == 1
        assert "ignoring unreadable resume copy" in caplog.text
        assert not marker.exists(), f"{payload.name}: unpickling ran code"


def test_malicious_pretrained_and_backbone_files_are_refused(tmp_path):
    marker = tmp_path / "marker"
    for payload in malicious_files(tmp_path / "payloads", marker):
        with pytest.raises(UserError, match=payload.name):
            import_pretrained(payload, "torchvision", "resnet18", tmp_path / "imported.pth")
        with pytest.raises(UserError, match=payload.name):
            extract(str(payload), [("d", str(tmp_path / "index.parquet"), str(tmp_path / "f.h5"))], arch="resnet18",
                    image_size=32, batch_size=4, method="m", workers=0)
        assert not marker.exists(), f"{payload.name}: unpickling ran code"
    assert not (tmp_path / "imported.pth").exists() and not (tmp_path / "f.h5").exists()


@pytest.fixture
def default_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_config_paths_are_resolved_before_use(default_config, tmp_path, monkeypatch):
    (tmp_path / "videos").mkdir()
    (tmp_path / "labelled").mkdir()
    (tmp_path / "weights.pth").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = copy.deepcopy(default_config)
    config["videos"].update(source="folder", path="./videos/../videos")
    config["train"]["labelled"] = "~/labelled"
    config["pretrained"] = {"imagenet": {"layout": "torchvision", "path": "weights.pth"}}
    vidssl_config.check(config)
    assert config["videos"]["path"] == str(tmp_path / "videos")
    assert config["train"]["labelled"] == str(tmp_path / "labelled")
    assert config["pretrained"]["imagenet"]["path"] == str(tmp_path / "weights.pth")


@pytest.mark.parametrize("section, key, value, message", [
    ("videos", "path", "weights.pth", "config videos.path: {tmp}/weights.pth is not a folder"),
    ("train", "labelled", "$(touch marker)", "config train.labelled: {tmp}/$(touch marker) does not exist"),
    ("partseg", "split_lists", "; touch marker", "config partseg.split_lists: {tmp}/; touch marker does not exist"),
])
def test_bad_config_paths_are_one_line_errors_and_never_run(default_config, tmp_path, monkeypatch,
                                                           section, key, value, message):
    (tmp_path / "weights.pth").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    config = copy.deepcopy(default_config)
    if section == "videos":
        config["videos"]["source"] = "folder"
    config[section][key] = value
    with pytest.raises(UserError) as error:
        vidssl_config.check(config)
    assert str(error.value) == message.format(tmp=tmp_path)
    assert not (tmp_path / "marker").exists()
