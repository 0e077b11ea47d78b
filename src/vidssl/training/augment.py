"""MoCo v2 augmentations on OpenCV BGR uint8 images, with the tracked box carried through the geometric part.

Order as in MoCo v2: RandomResizedCrop(scale 0.2-1), ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, RandomGrayscale 0.2,
GaussianBlur (sigma 0.1-2) p 0.5, horizontal flip, ImageNet normalisation. The flip is applied right after the crop
(it commutes with the photometric steps) so that crop, resize and flip move the box together. A box is clipped to the
crop; when less than `MIN_BOX` pixels of it remain on a side, it is replaced by the whole crop (the patch pair then
falls back to a frame pair) and the sample reports `box_kept = False`.

The steps follow torchvision's definitions (crop sampling, jitter factors and their random order, luma weights) but
run as OpenCV/NumPy calls on the small training images: on them torchvision.transforms.v2 spends most of its time in
per-call overhead, which on a CPU-only machine the data workers take away from the model. All randomness
comes from the NumPy generator passed in, so a sample's augmentation is a function of that generator's seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from vidssl.core.images import IMAGENET_MEAN, IMAGENET_STD

MEAN, STD = np.array(IMAGENET_MEAN, np.float32), np.array(IMAGENET_STD, np.float32)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, as torchvision's rgb_to_grayscale
MIN_BOX = 2.0
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def crop_window(height: int, width: int, rng: np.random.Generator, scale=(0.2, 1.0),
                ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, h, w) as torchvision's RandomResizedCrop.get_params: ten tries at a random area and aspect ratio,
    then the largest centred crop with the ratio clamped."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def rgb_float(bgr: np.ndarray) -> np.ndarray:
    """An OpenCV BGR uint8 image as float32 RGB in [0, 1]."""
    return cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def normalised_tensor(rgb: np.ndarray) -> torch.Tensor:
    """Float RGB H x W x 3 in [0, 1] -> ImageNet-normalised 3 x H x W tensor."""
    return torch.from_numpy(((rgb - MEAN) / STD).transpose(2, 0, 1).copy())


def grayscale(rgb: np.ndarray) -> np.ndarray:
    return (rgb @ LUMA)[..., None]


def adjust(rgb: np.ndarray, op: str, factor: float) -> np.ndarray:
    """One ColorJitter step on a float RGB image in [0, 1], as torchvision.transforms.v2.functional.adjust_{op}."""
    if op == "brightness":
        rgb = rgb * factor
    elif op == "contrast":
        rgb = factor * rgb + (1 - factor) * float(grayscale(rgb).mean())
    elif op == "saturation":
        rgb = factor * rgb + (1 - factor) * grayscale(rgb)
    else:
        hsv = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2HSV)  # float: hue in degrees
        hsv[..., 0] = (hsv[..., 0] + 360 * factor) % 360
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(rgb, 0, 1)


def jitter_draw(rng: np.random.Generator, strength: float = 0.4, hue: float = 0.1) -> tuple[tuple, tuple]:
    """ColorJitter(strength, strength, strength, hue)'s random part: the four factors (JITTER_OPS order), then the
    order the adjustments run in (indices into JITTER_OPS)."""
    factors = [rng.uniform(max(0.0, 1 - strength), 1 + strength) for _ in JITTER_OPS[:3]]
    factors.append(rng.uniform(-hue, hue))
    return tuple(factors), tuple(int(i) for i in rng.permutation(4))


def color_jitter(rgb: np.ndarray, factors, order) -> np.ndarray:
    """The four adjustments with their factors in their order."""
    for index in order:
        rgb = adjust(rgb, JITTER_OPS[index], factors[index])
    return rgb


MOCO_V2_SCALE = (0.2, 1.0)  # MoCo v2's RandomResizedCrop scale


@dataclass(frozen=True)
class Crops:
    """The crops of a sample: two global views at the training size (with `global_scale`), and `local` smaller ones of
    side `local_size` (with `local_scale`: DINO's multi-crop). An objective asks for other crops than MoCo v2's two
    by the keys of its config section: global_scale, local_crops, local_scale, local_size (a fraction of the training
    size)."""
    size: int
    global_scale: tuple[float, float] = MOCO_V2_SCALE
    local: int = 0
    local_size: int = 0
    local_scale: tuple[float, float] = (0.05, 0.4)

    @classmethod
    def of(cls, image_size: int, section: dict | None) -> Crops:
        section = section or {}
        crops = cls(image_size, tuple(section.get("global_scale", MOCO_V2_SCALE)))
        if not section.get("local_crops"):
            return crops
        return cls(image_size, crops.global_scale, int(section["local_crops"]),
                   max(8, round(section["local_size"] * image_size)), tuple(section["local_scale"]))


@dataclass(frozen=True)
class AugmentParams:
    """Every random choice of one MoCo v2 augmentation: the crop window (top, left, h, w) in the image, the flip, the
    jitter factors and order (None: no jitter), grayscale, and the blur's sigma (None: no blur)."""
    window: tuple[int, int, int, int]
    flip: bool
    jitter: tuple[float, float, float, float] | None
    order: tuple[int, int, int, int] | None
    gray: bool
    sigma: float | None


def move_box(box, width: int, height: int, window, flip: bool, size: int) -> np.ndarray:
    """A box (x1 y1 x2 y2; None: the whole image) through the crop `window`, the resize to `size` and the flip, clipped
    to the output."""
    top, left, h, w = window
    box = np.array([0, 0, width, height] if box is None else box, np.float32)
    box = (box - np.array([left, top] * 2, np.float32)) * np.array([size / w, size / h] * 2, np.float32)
    if flip:
        box = np.array([size - box[2], box[1], size - box[0], box[3]], np.float32)
    return box.clip(0, size)


def kept_box(box: np.ndarray, size: int) -> tuple[torch.Tensor, bool]:
    """The box, or the whole output when less than MIN_BOX pixels of it remain on a side; and whether it was kept."""
    kept = bool(box[2] - box[0] >= MIN_BOX and box[3] - box[1] >= MIN_BOX)
    return torch.from_numpy(box if kept else np.array([0.0, 0.0, size, size], np.float32)), kept


class MocoV2Augment:
    """Callable (BGR uint8 image, box x1 y1 x2 y2 or None, rng) -> (normalised float CHW tensor, box in output pixels,
    box_kept), its crops of `scale` of the image's area resized to `size`. `draw` takes every random choice, in the
    order the steps use them, so that vidssl.training.device_augment draws the same ones and renders them elsewhere."""

    def __init__(self, size: int, scale: tuple[float, float] = MOCO_V2_SCALE):
        self.size, self.scale = size, scale
        self.blur_kernel = 2 * round(0.05 * size) + 1  # about a tenth of the side, odd

    def draw(self, height: int, width: int, rng: np.random.Generator) -> AugmentParams:
        window = crop_window(height, width, rng, scale=self.scale)
        flip = bool(rng.random() < 0.5)
        jitter = order = None
        if rng.random() < 0.8:
            jitter, order = jitter_draw(rng)
        gray = bool(rng.random() < 0.2)
        sigma = rng.uniform(0.1, 2.0) if rng.random() < 0.5 else None
        return AugmentParams(window, flip, jitter, order, gray, sigma)

    def geometric(self, image: np.ndarray, box, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Random resized crop, then horizontal flip; the box (default: the whole image) moves with them."""
        params = self.draw(*image.shape[:2], rng)
        return self.crop(image, params), move_box(box, image.shape[1], image.shape[0], params.window, params.flip,
                                                  self.size)

    def crop(self, image: np.ndarray, params: AugmentParams) -> np.ndarray:
        top, left, h, w = params.window
        shrinking = h > self.size or w > self.size
        out = cv2.resize(image[top:top + h, left:left + w], (self.size, self.size),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        return out[:, ::-1] if params.flip else out

    def photometric(self, image: np.ndarray, params: AugmentParams) -> torch.Tensor:
        rgb = rgb_float(image)
        if params.jitter is not None:
            rgb = color_jitter(rgb, params.jitter, params.order)
        if params.gray:
            rgb = np.repeat(grayscale(rgb), 3, axis=2)
        if params.sigma is not None:
            rgb = cv2.GaussianBlur(rgb, (self.blur_kernel, self.blur_kernel), params.sigma,
                                   borderType=cv2.BORDER_REFLECT_101)
        return normalised_tensor(rgb)

    def __call__(self, image: np.ndarray, box, rng: np.random.Generator):
        params = self.draw(*image.shape[:2], rng)
        box, kept = kept_box(move_box(box, image.shape[1], image.shape[0], params.window, params.flip, self.size),
                             self.size)
        return self.photometric(self.crop(image, params), params), box, kept


def eval_transform(bgr: np.ndarray, size: int) -> torch.Tensor:
    """Resize to size x size and normalise: the kNN monitor's view of a labelled image."""
    return normalised_tensor(rgb_float(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)))
