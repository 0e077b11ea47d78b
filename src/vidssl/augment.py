"""MoCo v2 augmentations on uint8 CHW tensors, with the tracked box carried through the geometric part.

Order as in MoCo v2: RandomResizedCrop(scale 0.2-1), ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, RandomGrayscale 0.2,
GaussianBlur (sigma 0.1-2) p 0.5, horizontal flip, ImageNet normalisation. The flip is applied right after the crop
(it commutes with the photometric steps) so that crop, resize and flip move the box together. A box is clipped to the
crop; when less than `MIN_BOX` pixels of it remain on a side, it is replaced by the whole crop (the patch pair then
falls back to a frame pair) and the sample reports `box_kept = False`.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_BOX = 2.0


def to_tensor(bgr: np.ndarray) -> torch.Tensor:
    """An OpenCV BGR uint8 image as an RGB uint8 CHW tensor."""
    return torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).contiguous()


class MocoV2Augment:
    """Callable (image uint8 CHW[, box x1 y1 x2 y2]) -> (normalised float image, box in output pixels, box_kept)."""

    def __init__(self, size: int):
        self.size = size
        self.geometric = v2.Compose([
            v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
        ])
        blur_kernel = 2 * round(0.05 * size) + 1  # about a tenth of the side, odd
        self.photometric = v2.Compose([
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            v2.RandomApply([v2.GaussianBlur(blur_kernel, sigma=(0.1, 2.0))], p=0.5),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ])

    def __call__(self, image: torch.Tensor, box=None):
        height, width = image.shape[-2:]
        whole = torch.tensor([0.0, 0.0, width, height]) if box is None else torch.as_tensor(box, dtype=torch.float32)
        boxes = tv_tensors.BoundingBoxes(whole[None], format="XYXY", canvas_size=(height, width))
        image, boxes = self.geometric(tv_tensors.Image(image), boxes)
        out = boxes[0].as_subclass(torch.Tensor).clamp(0, self.size)
        kept = bool((out[2] - out[0] >= MIN_BOX) and (out[3] - out[1] >= MIN_BOX))
        if not kept:
            out = torch.tensor([0.0, 0.0, self.size, self.size])
        return self.photometric(image.as_subclass(torch.Tensor)), out, kept


def eval_transform(bgr: np.ndarray, size: int) -> torch.Tensor:
    """Resize to size x size and normalise: the kNN monitor's view of a labelled image."""
    image = to_tensor(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA))
    return v2.functional.normalize(image.float() / 255, IMAGENET_MEAN, IMAGENET_STD)
