"""The training methods, one spec each: the files a run reads, how a sample is made, which model and loss, and which
config sections it needs. Adding a method is adding a spec to `METHODS`.

Snakemake reads the specs to build the DAG, so this module loads without torch; the model and loss functions import
it when they run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from vidssl.core.errors import UserError

if TYPE_CHECKING:
    from vidssl.training.samples import TrainingSamples

# The file sets a method can read (the keyword of vidssl.training.train.train and of the Snakemake input), as errors name them.
INPUTS = {"chunks": "chunk containers", "frame_pairs": "frame pairs", "track_pairs": "track pairs"}


@dataclass(frozen=True)
class Method:
    name: str
    inputs: tuple[str, ...]  # keys of INPUTS; the labelled set, which any run's kNN monitor may read, is apart
    trains_on_labelled: bool  # the labelled set is its training data, not only the monitor's
    config_sections: tuple[str, ...]  # config sections it reads beyond seed, model and train
    image_keys: tuple[str, ...]  # the images of a sample, each one view through the model
    units: Callable[[TrainingSamples], np.ndarray]  # an epoch is a permutation of these (frames, pairs, images)
    frame_keys: Callable[[TrainingSamples, np.ndarray], list[tuple[int, int]]]  # (store, row) of a unit's frames
    sample: Callable[[TrainingSamples, np.ndarray, list[np.ndarray], np.random.Generator], dict]
    model: Callable[[dict, int], object]  # (config, number of classes) -> the model
    loss: Callable[[object, dict], object]  # (model, a batch on the device) -> the loss to minimise
    trained: Callable[[object], object]  # the part of the model that the optimiser updates and the export takes


def frame_units(data: TrainingSamples) -> np.ndarray:
    """(store, row) of every stored frame."""
    return np.concatenate([np.stack([np.full(len(s), i), np.arange(len(s))], 1) for i, s in enumerate(data.stores)])


def pair_units(data: TrainingSamples) -> np.ndarray:
    """(video, chunk, frame_a, frame_b) of every frame pair; each pair's chunk must be stored."""
    units = data.frame_pairs[["video", "chunk", "frame_a", "frame_b"]].to_numpy()
    missing = {(v, int(c)) for v, c, _, _ in units} - set(data.store_of)
    if missing:
        raise UserError(f"frame pairs name {len(missing)} chunks absent from the chunk containers, "
                        f"e.g. {sorted(missing)[:3]}")
    return units


def image_units(data: TrainingSamples) -> np.ndarray:
    return np.arange(len(data.labelled))


def stored_frame(data: TrainingSamples, unit) -> list[tuple[int, int]]:
    return [(int(unit[0]), int(unit[1]))]


def pair_frames(data: TrainingSamples, unit) -> list[tuple[int, int]]:
    video, chunk, frame_a, frame_b = unit
    store = data.store_of[(video, int(chunk))]
    return [(store, data.stores[store].row(video, chunk, frame)) for frame in (frame_a, frame_b)]


def no_frames(data: TrainingSamples, unit) -> list[tuple[int, int]]:
    return []


def two_views_of_a_frame(data: TrainingSamples, unit, images: list[np.ndarray], rng: np.random.Generator) -> dict:
    return {"x_q": data.augment(images[0], None, rng)[0], "x_k": data.augment(images[0], None, rng)[0]}


def a_view_of_each_frame(data: TrainingSamples, unit, images: list[np.ndarray], rng: np.random.Generator) -> dict:
    return {"x_q": data.augment(images[0], None, rng)[0], "x_k": data.augment(images[1], None, rng)[0]}


def tracked_patch_pair(data: TrainingSamples, unit, images: list[np.ndarray], rng: np.random.Generator) -> dict:
    """A view of each frame, and one of the pair's tracks drawn at random as a box in each view; a pair without tracks,
    or whose box leaves a crop (see vidssl.training.augment), uses the whole crops as its patch pair."""
    image_a, image_b = images
    candidates = data.tracks.get((unit[0], int(unit[1]), int(unit[2]), int(unit[3])))
    box_a = box_b = None
    if candidates is not None:
        box_a, box_b = np.split(candidates[rng.integers(len(candidates))], 2)
    x_q, boxes_q, kept_q = data.augment(image_a, box_a, rng)
    x_k, boxes_k, kept_k = data.augment(image_b, box_b, rng)
    tracked = candidates is not None and kept_q and kept_k
    if not tracked:  # whole crops: the patch pair is the frame pair seen through layer3 ROI pooling
        boxes_q = boxes_k = x_q.new_tensor([0.0, 0.0, x_q.shape[-1], x_q.shape[-2]])
    return {"x_q": x_q, "x_k": x_k, "boxes_q": boxes_q, "boxes_k": boxes_k, "tracked": tracked}


def labelled_view(data: TrainingSamples, unit, images: list[np.ndarray], rng: np.random.Generator) -> dict:
    image, label = data.labelled_image(int(unit))
    return {"x": data.augment(image, None, rng)[0], "y": label}


def moco_model(cfg: dict, classes: int):
    from vidssl.models.backbone import model_options
    from vidssl.models.moco import MoCo

    m = cfg["moco"]
    return MoCo(cfg["model"]["arch"], dim=m["dim"], queue=m["queue"], momentum=m["momentum"],
                temperature=m["temperature"], bn_splits=m["bn_splits"], image_size=cfg["model"]["image_size"],
                **model_options(cfg["model"]))


def classifier(cfg: dict, classes: int):
    from vidssl.models.backbone import model_options, resnet

    return resnet(cfg["model"]["arch"], num_classes=classes, **model_options(cfg["model"]))


def contrastive_loss(model, batch: dict):
    return model(batch["x_q"], batch["x_k"], batch.get("boxes_q"), batch.get("boxes_k"))[0]


def query_encoder(model):
    return model.encoder_q


def whole_model(model):
    return model


def cross_entropy(model, batch: dict):
    import torch.nn.functional as F

    return F.cross_entropy(model(batch["x"]).float(), batch["y"])


MOCO_FAMILY = dict(trains_on_labelled=False, config_sections=("moco",), image_keys=("x_q", "x_k"), model=moco_model,
                   loss=contrastive_loss, trained=query_encoder)

METHODS = {method.name: method for method in (
    Method("moco", inputs=("chunks",), units=frame_units, frame_keys=stored_frame, sample=two_views_of_a_frame,
           **MOCO_FAMILY),
    Method("fti", inputs=("chunks", "frame_pairs"), units=pair_units, frame_keys=pair_frames,
           sample=a_view_of_each_frame, **MOCO_FAMILY),
    Method("region_tracker", inputs=("chunks", "frame_pairs", "track_pairs"), units=pair_units,
           frame_keys=pair_frames, sample=tracked_patch_pair, **MOCO_FAMILY),
    Method("supervised", inputs=(), trains_on_labelled=True, config_sections=(), image_keys=("x",),
           units=image_units, frame_keys=no_frames, sample=labelled_view, model=classifier, loss=cross_entropy,
           trained=whole_model),
)}


def get(name: str) -> Method:
    if name not in METHODS:
        raise UserError(f"training method {name!r} is not one of {', '.join(METHODS)}")
    return METHODS[name]


def check_inputs(method: Method, files: dict[str, list[str] | None], labelled: str | None) -> None:
    """Stop with one line when a file set the method reads is not given."""
    for key in method.inputs:
        if not files.get(key):
            raise UserError(f"{method.name} needs {INPUTS[key]}")
    if method.trains_on_labelled and not labelled:
        raise UserError(f"{method.name} needs a labelled ImageFolder set")


def build_model(name: str, cfg: dict, classes: int):
    return get(name).model(cfg, classes)
