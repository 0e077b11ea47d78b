"""Config validation at start: one clear line naming the key, no traceback, nothing run."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SNAKEMAKE, planned_jobs

from vidssl import synthetic
from vidssl import config as vidssl_config
from vidssl.core.errors import UserError
from vidssl.training.methods import with_objective_optimiser


def dry_run(tmp_path: Path, overlay: str) -> subprocess.CompletedProcess:
    config = tmp_path / "overlay.yaml"
    config.write_text(overlay)
    return subprocess.run([str(SNAKEMAKE), "-n", "--configfile", str(config), "--directory", str(tmp_path),
                           "--snakefile", str(ROOT / "Snakefile")], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize(
    "overlay, message",
    [
        ("tracks:\n  score_threshold: -0.5\n", "invalid config at tracks.score_threshold: -0.5 is less than the minimum of 0"),
        ("trackz:\n  score_threshold: 0.5\n", "config trackz: not a known section nor an objective's (byol, dino, moco)"),
        ("tracks:\n  scor_threshold: 0.5\n", "'scor_threshold' was unexpected"),
        ("train:\n  steps: many\n", "invalid config at train.steps: 'many' is not of type 'integer'"),
        ("model:\n  arch: vgg16\n", "model.arch 'vgg16' is not one of resnet18, resnet50"),
        ("moco:\n  temperature: 0\n", "invalid config at moco.temperature: 0 is less than or equal to the minimum of 0"),
        ("moco:\n  queu: 64\n", "invalid config at moco: Additional properties are not allowed ('queu' was unexpected)"),
        ("dino:\n  train:\n    steps: 5\n",
         "invalid config at dino.train: Additional properties are not allowed ('steps' was unexpected) (an objective sets "
         "only optimizer, lr, weight_decay, momentum, warmup_steps, clip_grad)"),
        ("byol:\n  train:\n    optimizer: adam\n", "invalid config at byol.train.optimizer: 'adam' is not one of"),
        ("moco:\n  train:\n    lr: 0\n", "invalid config at moco.train.lr: 0 is less than or equal to the minimum of 0"),
        ("train:\n  methods: [simclr]\n", "training method 'simclr' is not one of moco, fti, region_tracker, supervised"),
        ("train:\n  methods: [cross_entropy-frame]\n", "the cross_entropy objective needs labelled samples"),
        ("model:\n  arch: vit_s16\n  image_size: 32\ntrain:\n  methods: [dino-frame]\ntable5:\n  methods: [dino-frame]\n",
         "config dino.local_size: crops of 14 px are smaller than vit_s16's smallest input (16 px)"),
        ("videos:\n  source: folder\n  path: /no/such/folder\n", "videos.path: /no/such/folder does not exist"),
        ("videos:\n  source: folder\n", "videos.path: required"),
        ("table5:\n  methods: [random, imagenet]\n", "['imagenet'] are neither trained"),
        ("pretrained:\n  imagenet: {layout: torchvision, path: /no/such.pth}\n", "pretrained.imagenet.path: /no/such.pth does not exist"),
        ("moco:\n  queue: 100\n", "moco.queue (100) must be a multiple of train.batch_size (64)"),
        ("synthetic:\n  classes: [car, boat]\n", "invalid config at synthetic.classes[1]: 'boat' is not one of"),
        ("partseg:\n  classes: [car, aeroplne]\n", "invalid config at partseg.classes[1]: 'aeroplne' is not one of"),
        ("partseg:\n  classes: [car, car]\n", "invalid config at partseg.classes: ['car', 'car'] has non-unique elements"),
        ("table5:\n  methods: [random, ../imagenet]\n", "invalid config at table5.methods[1]: '../imagenet' does not match"),
        ("table5:\n  methods: [random, supervised]\n  reference: moco\n",
         "config table5.reference: 'moco' is not one of table5.methods ['random', 'supervised']"),
    ],
)
def test_bad_config_stops_with_one_line(tmp_path, overlay, message):
    result = dry_run(tmp_path, overlay)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("vidssl:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_schema_class_names_are_the_libraries():
    definitions = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["definitions"]
    assert definitions["synthetic_class"]["enum"] == list(synthetic.CLASSES)
    assert definitions["voc_class"]["enum"] == list(synthetic.VOC_CLASSES)


def test_default_config_is_valid(tmp_path):
    result = dry_run(tmp_path, "{}\n")
    assert result.returncode == 0, result.stderr
    assert "method=region_tracker" in result.stdout and "table5" in result.stdout


def test_the_schema_holds_no_default_and_config_yaml_every_key():
    """Defaults live in config/config.yaml alone: the schema gives types and ranges, and names no key the default
    config lacks."""
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    default = yaml.safe_load((ROOT / "config/config.yaml").read_text())

    def walk(node, values, path):  # values None: inside a list or map the default config need not fill
        if isinstance(node, dict):
            assert "default" not in node, f"{path} has a default in the schema"
            for key, sub in node.get("properties", {}).items():
                assert values is None or key in values, f"config/config.yaml lacks {path}{key}"
                walk(sub, None if values is None else values[key], f"{path}{key}.")
            for key in ("items", "additionalProperties", "oneOf"):
                for sub in node.get(key) if isinstance(node.get(key), list) else [node.get(key)]:
                    walk(sub, None, f"{path}*.")
    walk(schema, default, "")


def test_an_overlay_keeps_config_yaml_for_every_key_it_does_not_name(tmp_path):
    """Snakemake merges the overlay over config/config.yaml: the resolved config of the run is config.yaml's wherever
    the overlay is silent (pairs.mode all, where the schema once said strided)."""
    (tmp_path / "overlay.yaml").write_text("pairs:\n  k: 7\n")
    result = subprocess.run([str(SNAKEMAKE), "--cores", "1", "results/config.yaml", "--configfile",
                             str(tmp_path / "overlay.yaml"), "--directory", str(tmp_path), "--snakefile",
                             str(ROOT / "Snakefile")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load((tmp_path / "results/config.yaml").read_text())
    default = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert resolved["pairs"] == {"k": 7, "mode": default["pairs"]["mode"]} and default["pairs"]["mode"] == "all"
    assert resolved["tracks"] == default["tracks"] and resolved["partseg"]["seeds"] == default["partseg"]["seeds"]


def test_an_objective_sets_its_own_optimiser_over_train():
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["dino"]["train"] = {"optimizer": "adamw", "lr": 0.0005}
    vidssl_config.check_objectives(config, [])
    run = with_objective_optimiser({"train": config["train"], "objective": config["dino"]})
    assert run["train"] == config["train"] | {"optimizer": "adamw", "lr": 0.0005}
    assert run["objective"] == {k: v for k, v in config["dino"].items() if k != "train"}  # the objective's own keys
    assert config["dino"]["train"] == {"optimizer": "adamw", "lr": 0.0005}  # the config itself untouched
    moco = {"train": config["train"], "objective": config["moco"]}
    assert with_objective_optimiser(moco)["train"] == config["train"]  # `train: {}` sets nothing


def test_gpu_requests_beyond_what_a_rule_uses_are_one_line():
    vidssl_config.check_gpu_requests(2, {"train": 2, "features": 1})
    with pytest.raises(UserError, match=r"^rule features asks for 2 GPUs but uses 1 \(train.gpus = 2\); set train.gpus"):
        vidssl_config.check_gpu_requests(2, {"train": 2, "features": 2})
    with pytest.raises(UserError, match=r"^rule train asks for 4 GPUs but uses 1 \(train.gpus = 1\)"):
        vidssl_config.check_gpu_requests(1, {"train": 4})


def test_pretrained_checkpoints_are_methods(tmp_path):
    for name in ("supervised.pth", "moco.pth.tar"):
        (tmp_path / name).write_bytes(b"placeholder: a dry run only needs the path to exist")
    result = dry_run(tmp_path, f"""
pretrained:
  imagenet_supervised: {{layout: torchvision, path: {tmp_path / 'supervised.pth'}}}
  imagenet_moco: {{layout: moco, path: {tmp_path / 'moco.pth.tar'}}}
train:
  methods: [region_tracker]
table5:
  methods: [imagenet_supervised, imagenet_moco, region_tracker]
  names: {{imagenet_supervised: ImageNet Supervised, imagenet_moco: ImageNet MOCOv2, region_tracker: Ours Region Tracker}}
""")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result)
    assert jobs["import_pretrained"] == 2 and jobs["train[region_tracker]"] == 1
    assert "train[moco]" not in jobs and "random_init" not in jobs
    assert jobs["partseg_probe"] == 9  # three methods x the default three probe seeds


def test_lint_is_clean():
    result = subprocess.run([str(SNAKEMAKE), "--lint", "--snakefile", str(ROOT / "Snakefile")], capture_output=True,
                            text=True, cwd=ROOT)
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr, result.stdout


PRETRAINED_OVERLAY = "pretrained:\n  {name}: {{layout: torchvision, path: /etc/hostname}}\ntable5:\n  methods: [random, {name}]\n"


@pytest.mark.parametrize("name", ["../../escape", "a|b", "x(y", "-rf", "with space", "dot.ted", "moco\\n", "é"])
def test_pretrained_names_are_identifiers(tmp_path, name):
    result = dry_run(tmp_path, PRETRAINED_OVERLAY.format(name=f'"{name}"'))
    errors = [line for line in result.stderr.splitlines() if line.startswith("vidssl:")]
    assert result.returncode != 0 and len(errors) == 1, result.stderr
    assert errors[0].startswith("vidssl: invalid config at pretrained") and "does not match" in errors[0], errors
    assert "Traceback" not in result.stderr and not (tmp_path / "results").exists()


@pytest.mark.parametrize("names, message", [
    ('{"mo|co": X}', "invalid config at table5.names"),
    ('{moco: "a|b"}', "invalid config at table5.names.moco"),
    ('{moco: "cost $5"}', "invalid config at table5.names.moco"),
    ('{moco: "two\\nlines"}', "invalid config at table5.names.moco"),
    ('{moco: " padded"}', "invalid config at table5.names.moco"),
    ('{moco: ""}', "invalid config at table5.names.moco"),
    ("{moco: Same, fti: Same}", "config table5.names: moco and fti would both be shown as 'Same'"),
    ("{moco: Supervised}", "config table5.names: supervised and moco would both be shown as 'Supervised'"),
    ("{moco: fti, fti: Mine}", None),  # a name another method no longer shows is free
])
def test_display_names_are_printable_and_unique(tmp_path, names, message):
    result = dry_run(tmp_path, f"table5:\n  names: {names}\n")
    errors = [line for line in result.stderr.splitlines() if line.startswith("vidssl:")]
    if message is None:
        assert result.returncode == 0 and errors == [], result.stderr
        return
    assert result.returncode != 0 and len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_every_output_stays_under_results_resources_or_logs(tmp_path):
    """A dry run of a config with every kind of name the schema allows: each job's outputs and logs in the three roots."""
    result = dry_run(tmp_path, """
pretrained:
  "0-net_B": {layout: torchvision, path: /etc/hostname}
  Zz: {layout: moco, path: /etc/hostname}
train:
  methods: [moco, fti]
table5:
  methods: [random, 0-net_B, Zz, moco]
  names: {0-net_B: "Net (0) + B/C, v1.5", Zz: "Zz ünïcode", moco: MoCo v2}
""")
    assert result.returncode == 0, result.stderr
    paths = [path for line in result.stdout.splitlines() if line.strip().startswith(("output:", "log:"))
             for path in line.split(":", 1)[1].split(", ")]
    assert len(paths) > 50 and any("0-net_B" in path for path in paths)
    outside = [path for path in map(str.strip, paths)
               if not path.startswith(("results/", "resources/", "logs/")) or ".." in path.split("/")]
    assert outside == []


def test_wildcard_choices_match_only_their_names():
    from vidssl.config import wildcard_choice

    choice = wildcard_choice(["a.b", "c|d", "e"])
    assert [bool(re.fullmatch(f"(?:{choice})", text)) for text in ("a.b", "axb", "c|d", "c", "d", "e", "")] == [
        True, False, True, False, False, True, False]
    assert re.fullmatch(f"(?:{wildcard_choice([])})", "") is None
