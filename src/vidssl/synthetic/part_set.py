"""The synthetic part set: images of one or two objects with exact part masks, in the Pascal-Part format."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm import tqdm

from vidssl.datasets.pascal_part import PascalObject, write_annotation
from vidssl.synthetic.render import (
    PARTSEG_STREAM,
    ObjectLayer,
    image_set,
    item_rng,
    make_background,
    paste,
    render_object,
    write_jpeg,
)
from vidssl.synthetic.templates import PARTLESS

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def _place_objects(rng: np.random.Generator, classes: list[str], image: np.ndarray, owner: np.ndarray,
                   material) -> list[tuple[ObjectLayer, np.ndarray]]:
    """Paste one or two objects of `classes` and sometimes a bottle onto `image`, later ones on top.

    `owner` marks each pixel with 1 + the index of the object painted last there; returns per placed object its
    layer and its full-image instance map.
    """
    side = image.shape[0]
    placed = []

    def pick() -> str:
        return classes[int(rng.integers(len(classes)))]

    # (class, layer side as a fraction of the image, centre as a fraction of the image)
    specs = [(pick(), rng.uniform(0.55, 0.9), 0.5 + rng.uniform(-0.15, 0.15, 2))]
    if rng.random() < 0.45:
        specs.append((pick(), rng.uniform(0.35, 0.6), rng.uniform(0.2, 0.8, 2)))
    if rng.random() < 0.1:
        specs.append(("bottle", rng.uniform(0.3, 0.5), rng.uniform(0.15, 0.85, 2)))
    for class_name, fraction, centre in specs:
        layer_side = int(fraction * side)
        layer = render_object(class_name, rng, layer_side, angle=rng.uniform(-20, 20),
                              flip=bool(rng.random() < 0.5), material=material(class_name))
        left, top = (centre * side - layer_side / 2).round().astype(int)
        instances = np.zeros((side, side), dtype=np.uint8)
        if paste(image, layer, left, top, owner=owner, owner_id=len(placed) + 1, instances=instances) is not None:
            placed.append((layer, instances))
    return placed


def _visible_objects(placed: list[tuple[ObjectLayer, np.ndarray]], owner: np.ndarray) -> list[PascalObject]:
    """The annotations of the placed objects: masks of their visible pixels, parts of part-annotated classes."""
    objects = []
    for j, (layer, instances) in enumerate(placed):
        visible = owner == j + 1
        if not visible.any():
            continue  # wholly hidden by a later object: not in the image
        parts = []
        if layer.class_name not in PARTLESS:
            for ident, name in enumerate(layer.instance_names, start=1):
                mask = visible & (instances == ident)
                if mask.any():
                    parts.append((name, mask.astype(np.uint8)))
        objects.append(PascalObject(layer.class_name, VOC_CLASSES.index(layer.class_name) + 1, visible, dict(parts)))
    return objects


def generate_partseg(out_dir, *, classes: Sequence[str], n_images: int, image_size: int, seed: int = 0,
                     materials: str = "instance") -> dict:
    """Write a Pascal-Part-format set: out_dir/JPEGImages/<stem>.jpg and out_dir/Annotations_Part/<stem>.mat.

    Each image holds one or two objects of `classes` (the second may partly hide the first) and sometimes a
    part-less bottle. Masks are of visible pixels; repeated parts carry Pascal-Part indices (wheel_1, wheel_2).
    """
    classes, material, out_dir, side = image_set(out_dir, classes=classes, count_key="partseg_images", count=n_images,
                                                 image_size=image_size, materials=materials, seed=seed)
    n_objects = 0
    for i in tqdm(range(n_images), desc="synthetic part set", unit="image"):
        rng = item_rng(seed, PARTSEG_STREAM, i)
        image = make_background(rng, side, side)
        owner = np.zeros((side, side), dtype=np.uint8)
        objects = _visible_objects(_place_objects(rng, classes, image, owner, material), owner)
        n_objects += len(objects)

        stem = f"synth_{i:05d}"
        write_jpeg(image, out_dir / "JPEGImages" / f"{stem}.jpg")
        write_annotation(out_dir / "Annotations_Part" / f"{stem}.mat", f"{stem}.jpg", objects)
    return {"images": n_images, "objects": n_objects}
