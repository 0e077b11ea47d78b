"""Do the trained encoders see the objects, or the backgrounds?
`python benchmarks/diagnose_knn_background.py RUN_DIR [OVERLAY.yaml ...]` (the run's `--configfile` overlays, if any)

Scores every trained backbone of a finished synthetic run (`results/models/*/backbone.pth`) on the labelled set twice:
as generated (one object on a random background that fills most of the image) and with the same objects, poses and
colours on a plain grey background. Prints kNN and linear-probe top-1 (the classification stage's predictors, on one
seeded stratified 70/30 split) for both. A method that learnt object shape but pools over a background it was trained
to tell apart gains on the grey set; one that learnt no shape stays at the untrained net's level there.
docs/results.md has the figures.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from sklearn.model_selection import train_test_split
from snakemake.utils import update_config

from vidssl.evaluation.classification import knn_predict, linear_probe_predict, top1
from vidssl.models.backbone import load_backbone
from vidssl.synthetic.labelled import labelled_item
from vidssl.synthetic.render import class_materials, single_object_scene
from vidssl.training.augment import eval_transform

ROOT = Path(__file__).resolve().parents[1]
GREY = 128


def run_config(overlays: list[str]) -> dict:
    """config/config.yaml with the overlays applied in order, as Snakemake merges `--configfile`s."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for overlay in overlays:
        update_config(config, yaml.safe_load(Path(overlay).read_text()) or {})
    return config


def labelled_images(world: dict) -> tuple[dict[str, list[np.ndarray]], np.ndarray]:
    """The labelled set's images as `vidssl.synthetic.generate_labelled` draws them, on their backgrounds and on grey."""
    material = class_materials(world.get("materials", "instance"), world["seed"])
    images, labels = {"as generated": [], "grey background": []}, []
    for label, class_name in enumerate(world["classes"]):
        for i in range(int(world["labelled_per_class"])):
            background, layer, offset = labelled_item(world["seed"], class_name, i, int(world["image_size"]),
                                                      material(class_name))
            images["as generated"].append(single_object_scene(background, layer, offset)[0])
            images["grey background"].append(single_object_scene(np.full_like(background, GREY), layer, offset)[0])
            labels.append(label)
    return images, np.array(labels)


@torch.no_grad()
def features(net, images: list[np.ndarray], size: int) -> np.ndarray:
    batch = torch.stack([eval_transform(image, size) for image in images])
    return torch.cat([net.pooled(part) for part in batch.split(256)]).numpy()


def main(run_dir: Path, overlays: list[str]) -> None:
    config = run_config(overlays)
    images, labels = labelled_images(config["synthetic"])
    train, test = train_test_split(np.arange(len(labels)), test_size=0.3, random_state=0, stratify=labels)
    print(f"{'method':<16} {'set':<16} kNN top-1  linear top-1   (%; chance {100 / len(set(labels)):.1f})")
    for backbone in sorted((run_dir / "results" / "models").glob("*/backbone.pth")):
        net = load_backbone(backbone, config["model"]["arch"])
        for name, chosen in images.items():
            x = features(net, chosen, config["model"]["image_size"])
            knn = top1(knn_predict(x[train], labels[train], x[test]), labels[test])
            linear = top1(linear_probe_predict(x[train], labels[train], x[test], seed=0), labels[test])
            print(f"{backbone.parent.name:<16} {name:<16} {knn:9.3f}  {linear:12.3f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."), sys.argv[2:])
