"""The synthetic labelled set: an ImageFolder of one object per image, for the supervised baseline and kNN."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from vidssl.errors import UserError
from vidssl.synthetic.render import (LABELLED_STREAM, class_materials, item_rng, make_background, render_object,
                                    single_object_scene, write_jpeg)
from vidssl.synthetic.templates import CLASSES, check_classes


def generate_labelled(out_dir, *, classes: Sequence[str], per_class: int, image_size: int, seed: int = 0,
                      materials: str = "instance") -> dict:
    """Write an ImageFolder set out_dir/<class>/<i:04d>.jpg: one object near the centre, random pose and look."""
    classes = check_classes(classes)
    if per_class < 1 or image_size < 16:
        raise UserError(f"synthetic: need labelled_per_class >= 1 and image_size >= 16, got {per_class}, {image_size}")
    material = class_materials(materials, seed)
    out_dir = Path(out_dir)
    side = int(image_size)
    for class_name in tqdm(classes, desc="synthetic labelled set", unit="class"):
        class_id = list(CLASSES).index(class_name)  # stable across class subsets
        for i in range(per_class):
            rng = item_rng(seed, LABELLED_STREAM, class_id, i)
            background = make_background(rng, side, side)
            layer = render_object(class_name, rng, int(side * rng.uniform(0.6, 0.95)), angle=rng.uniform(-35, 35),
                                  flip=bool(rng.random() < 0.5), material=material(class_name))
            image, _ = single_object_scene(background, layer, rng.uniform(-0.1, 0.1, 2))
            write_jpeg(image, out_dir / class_name / f"{i:04d}.jpg")
    return {"classes": len(classes), "images": len(classes) * per_class}

