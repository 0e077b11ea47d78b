"""The synthetic labelled set: an ImageFolder of one object per image, for the supervised baseline and kNN."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm import tqdm

from vidssl.synthetic.render import (
    LABELLED_STREAM,
    Material,
    ObjectLayer,
    image_set,
    item_rng,
    make_background,
    render_object,
    single_object_scene,
    write_jpeg,
)
from vidssl.synthetic.templates import CLASSES


def labelled_item(seed: int, class_name: str, i: int, side: int,
                  material: Material | None) -> tuple[np.ndarray, ObjectLayer, np.ndarray]:
    """Image `i` of `class_name` before it is assembled: its background, its object's layer and the object's offset
    from the centre (`single_object_scene` pastes the layer there)."""
    rng = item_rng(seed, LABELLED_STREAM, list(CLASSES).index(class_name), i)  # class ids stable across class subsets
    background = make_background(rng, side, side)
    layer = render_object(class_name, rng, int(side * rng.uniform(0.6, 0.95)), angle=rng.uniform(-35, 35),
                          flip=bool(rng.random() < 0.5), material=material)
    return background, layer, rng.uniform(-0.1, 0.1, 2)


def generate_labelled(out_dir, *, classes: Sequence[str], per_class: int, image_size: int, seed: int = 0,
                      materials: str = "instance") -> dict:
    """Write an ImageFolder set out_dir/<class>/<i:04d>.jpg: one object near the centre, random pose and look."""
    classes, material, out_dir, side = image_set(out_dir, classes=classes, count_key="labelled_per_class", count=per_class,
                                                 image_size=image_size, materials=materials, seed=seed)
    for class_name in tqdm(classes, desc="synthetic labelled set", unit="class"):
        for i in range(per_class):
            image, _ = single_object_scene(*labelled_item(seed, class_name, i, side, material(class_name)))
            write_jpeg(image, out_dir / class_name / f"{i:04d}.jpg")
    return {"classes": len(classes), "images": len(classes) * per_class}

