"""The synthetic invariance sets: local trajectories along which one factor (viewpoint, light, occlusion,
instance) varies while the rest stays fixed."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from vidssl.contracts import TRAJECTORY_INDEX
from vidssl.core.errors import UserError
from vidssl.synthetic.render import (TRAJECTORY_STREAM, Material, ObjectLayer, class_materials, draw_instance, hsv_bgr,
                                     item_rng, lit, make_background, sample_instance, single_object_scene, write_jpeg)
from vidssl.synthetic.templates import CLASSES, check_classes

TRAJECTORY_DATASETS = ("viewpoint", "illumination", "occlusion", "instance")


def _trajectory(dataset: str, class_name: str, rng: np.random.Generator, length: int, side: int,
                material: Material | None) -> list[np.ndarray]:
    """The images of one local trajectory of one class: one factor varies, the rest stays fixed."""
    background = make_background(rng, side, side)
    instance = sample_instance(class_name, rng, material=material)
    angle, scale, flip = rng.uniform(-20, 20), rng.uniform(0.75, 0.95), bool(rng.random() < 0.5)
    layer_side = int(0.85 * side)
    offset = rng.uniform(-0.06, 0.06, 2)
    steps = np.linspace(0.0, 1.0, length)

    def scene(layer: ObjectLayer) -> np.ndarray:
        return single_object_scene(background, layer, offset)[0]

    if dataset == "viewpoint":
        turn = rng.choice([-1, 1]) * rng.uniform(40, 90)
        zoom = rng.uniform(0.7, 1.1)
        return [scene(draw_instance(instance, layer_side, angle + turn * s, scale * (1 + (zoom - 1) * s), flip))
                for s in steps]
    if dataset == "instance":
        return [scene(draw_instance(sample_instance(class_name, rng, material=material), layer_side, angle, scale, flip))
                for _ in steps]

    image, box = single_object_scene(background, draw_instance(instance, layer_side, angle, scale, flip), offset)
    if dataset == "illumination":
        brightness = np.exp(np.log(rng.choice([rng.uniform(0.4, 0.7), rng.uniform(1.3, 1.7)])) * steps)
        cast = rng.uniform(-0.3, 0.3, 3)
        return [lit(image, b * (1 + cast * s)) for b, s in zip(brightness, steps)]
    # occlusion: a bar slides in from one side until it hides up to 70% of the object's extent
    lo, hi = np.array(box[:2]), np.array(box[2:])
    colour = tuple(float(c) for c in hsv_bgr(rng.uniform(0, 1), rng.uniform(0, 0.6), rng.uniform(0.15, 0.9)))
    edge, axis = int(rng.integers(2)), int(rng.integers(2))  # which side it enters from; 0: x, 1: y
    images = []
    for s in steps:
        covered = image.copy()
        reach = 0.7 * s * (hi[axis] - lo[axis])
        start, stop = (lo[axis] - side, lo[axis] + reach) if edge == 0 else (hi[axis] - reach, hi[axis] + side)
        if reach > 0:
            corner1 = (int(start), -1) if axis == 0 else (-1, int(start))
            corner2 = (int(stop), side) if axis == 0 else (side, int(stop))
            cv2.rectangle(covered, corner1, corner2, colour, -1)
        images.append(covered)
    return images


def generate_trajectories(out_dir, *, classes: Sequence[str], sets_per_class: int, set_length: int,
                          image_size: int, seed: int = 0, materials: str = "instance") -> dict:
    """Write the four invariance datasets under out_dir/<dataset>/<class>/ and one out_dir/index.parquet.

    index.parquet: dataset, path (relative to out_dir), label (index into `classes`), class_name,
    set (unique over the whole index), frame (position in the set).
    """
    classes = check_classes(classes)
    if sets_per_class < 1 or set_length < 1 or image_size < 16:
        raise UserError(f"synthetic: need trajectory_sets >= 1, trajectory_length >= 1 and image_size >= 16, got "
                        f"{sets_per_class}, {set_length}, {image_size}")
    material = class_materials(materials, seed)
    out_dir = Path(out_dir)
    rows = []
    set_id = 0
    jobs = [(d, c) for d in TRAJECTORY_DATASETS for c in classes]
    for dataset, class_name in tqdm(jobs, desc="synthetic invariance sets", unit="set group"):
        dataset_id, class_id = TRAJECTORY_DATASETS.index(dataset), list(CLASSES).index(class_name)
        for s in range(sets_per_class):
            rng = item_rng(seed, TRAJECTORY_STREAM, dataset_id, class_id, s)
            for frame, image in enumerate(_trajectory(dataset, class_name, rng, set_length, int(image_size),
                                                      material(class_name))):
                relative = f"{dataset}/{class_name}/{s:04d}_{frame:02d}.jpg"
                write_jpeg(image, out_dir / relative)
                rows.append((dataset, relative, classes.index(class_name), class_name, set_id, frame))
            set_id += 1
    index = pd.DataFrame(rows, columns=TRAJECTORY_INDEX.names)
    TRAJECTORY_INDEX.write(index, out_dir / "index.parquet", metadata={"seed": int(seed), "classes": classes})
    return {"sets": set_id, "images": len(rows)}
