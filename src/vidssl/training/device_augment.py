"""MoCo v2 augmentations rendered on the training device, a batch at a time (`train.augment_on: device`).

The data workers read and decode only: `DeferredAugment` takes every random choice of a view with
vidssl.training.augment.MocoV2Augment.draw (the same generator, the same order: both paths draw identical parameters)
and moves the tracked box there, but returns a `DeferredView` (the frame's JPEG bytes, read with its header only, and
the parameters) in place of pixels. `collate` gathers a batch's deferred views into `DeferredBatch`es (one per key:
each frame once, in the form the device renders cheapest, `frames_for`: decoded into the batch's memory as YCbCr planes
for a GPU or RGB for a CPU (vidssl.training.batch_frames), or its bytes where the device decodes them; the parameters
as tensors), which travel to the device like tensors; `render_views` then turns
each into its images: crop, resize and flip as one `torchvision.ops.roi_align` over the batch (bilinear; on a
shrinking crop it averages ceil(scale)^2 samples per pixel where OpenCV's INTER_AREA averages the exact area), the
jitter steps in each sample's order, grayscale, each sample's blur in one grouped convolution, and the ImageNet
normalisation.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data._utils.collate import collate as torch_collate
from torch.utils.data._utils.collate import default_collate_fn_map

from vidssl.core.errors import UserError
from vidssl.core.images import IMAGENET_MEAN, IMAGENET_STD, decode_jpeg, jpeg_shape
from vidssl.training.augment import LUMA, AugmentParams, MocoV2Augment, kept_box, move_box
from vidssl.training.batch_frames import JPEG, PLANES, RGB, frames_batch, planes_rgb, undecodable

AUGMENT_ON = ("auto", "device", "workers")
CPU_CHOICE = "workers"  # what `auto` means without CUDA: the faster path on a CPU in `make bench` (bench_augment.py)


class SourceImage:
    """A stored frame as a device-mode worker holds it: its JPEG bytes (a 1-D uint8 tensor), decoded when the batch is
    collated (into the batch's own memory) or on the device, or RGB uint8 pixels (an H x W x 3 tensor), and where it
    was read (`origin`, which an error names); slicing it (`image[y1:y2, x1:x2]`) gives the region of the same source,
    so that a local crop drawn inside a region still sends the whole frame once."""

    def __init__(self, data: torch.Tensor, height: int, width: int, top: int = 0, left: int = 0, origin: str = ""):
        self.data, self.height, self.width, self.top, self.left = data, height, width, top, left
        self.origin = origin

    @classmethod
    def of(cls, image, origin: str = "") -> SourceImage:
        """A SourceImage of one, or of OpenCV's BGR uint8 pixels (H x W x 3)."""
        if isinstance(image, SourceImage):
            return image
        return cls(torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)), *image.shape[:2], origin=origin)

    @classmethod
    def of_jpeg(cls, blob: np.ndarray, origin: str = "") -> SourceImage:
        """The JPEG's bytes, its size read from its header; decoded here when the header cannot be read."""
        size = jpeg_shape(blob)
        if size is not None:
            return cls(torch.from_numpy(blob), *size, origin=origin)
        image = decode_jpeg(blob)
        if image is None:
            raise UserError(undecodable(origin))
        return cls.of(image, origin)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.height, self.width, 3

    def __getitem__(self, region) -> SourceImage:
        (y1, y2, _), (x1, x2, _) = (part.indices(n) for part, n in zip(region, (self.height, self.width)))
        return SourceImage(self.data, y2 - y1, x2 - x1, self.top + y1, self.left + x1, self.origin)


@dataclass
class DeferredView:
    """One view as the worker leaves it: its source, the crop window (top, left, h, w) in the source's pixels, the
    output side and the other parameters. `shape` and `new_tensor` answer as the rendered tensor would."""
    source: object
    window: tuple[int, int, int, int]
    size: int
    blur_kernel: int
    params: AugmentParams
    origin: str = ""  # where the source was read

    @property
    def shape(self) -> tuple[int, int, int]:
        return 3, self.size, self.size

    def new_tensor(self, data) -> torch.Tensor:
        return torch.tensor(data, dtype=torch.float32)


@dataclass
class DeferredGroup:
    """A sample's several views of one size (its local crops), rendered as one (n, 3, size, size) tensor."""
    views: list[DeferredView]


class DeferredAugment:
    """MocoV2Augment's call, its pixels deferred: (image or SourceImage, box, rng) -> (DeferredView, box, kept)."""

    def __init__(self, augment: MocoV2Augment):
        self.augment = augment

    def __call__(self, image, box, rng: np.random.Generator):
        source, size = SourceImage.of(image), self.augment.size
        params = self.augment.draw(source.height, source.width, rng)
        box, kept = kept_box(move_box(box, source.width, source.height, params.window, params.flip, size), size)
        top, left, h, w = params.window
        view = DeferredView(source.data, (top + source.top, left + source.left, h, w), size, self.augment.blur_kernel,
                            params, source.origin)
        return view, box, kept


def stack_views(views: list) -> torch.Tensor | DeferredGroup:
    """torch.stack for rendered views, a DeferredGroup for deferred ones."""
    return DeferredGroup(views) if isinstance(views[0], DeferredView) else torch.stack(views)


class DeferredBatch:
    """A batch's deferred views of one key: `pixels`, its frames as vidssl.training.batch_frames makes them (`form`
    RGB: N x H x W x 3 uint8; PLANES: the frames' YCbCr 4:2:0 planes) with each frame's (height, width) in `sizes`,
    or `jpegs` (`form` JPEG: N byte tensors); the parameters as tensors (one row per view), and the leading shape of
    the rendered result. `to` moves the frames; the parameters stay on the host, where they choose which views each
    step takes without waiting on the device."""

    def __init__(self, pixels, jpegs, params: dict, lead: tuple, size: int, blur_kernel: int, device="cpu",
                 form: str = RGB, sizes: torch.Tensor | None = None, origins: list[str] | None = None):
        self.pixels, self.jpegs, self.params, self.lead = pixels, jpegs, params, lead
        self.size, self.blur_kernel, self.device = size, blur_kernel, torch.device(device)
        self.form, self.sizes, self.origins = form, sizes, origins  # origins: where each JPEG was read

    def moved(self, pixels, device) -> DeferredBatch:
        return DeferredBatch(pixels, self.jpegs, self.params, self.lead, self.size, self.blur_kernel, device,
                             self.form, self.sizes, self.origins)

    def to(self, device, non_blocking: bool = False) -> DeferredBatch:
        return self.moved(None if self.pixels is None else self.pixels.to(device, non_blocking=non_blocking), device)

    def pin_memory(self) -> DeferredBatch:
        return self.moved(None if self.pixels is None else self.pixels.pin_memory(), self.device)

    def __getstate__(self) -> dict:
        """From a DataLoader worker, the parameters, sizes and JPEG bytes travel by value in the message (a
        shared-memory file for each small tensor cost the worker more than decoding); the pixels in the shared memory
        they are in."""
        return {**self.__dict__, "params": {k: v.numpy() for k, v in self.params.items()},
                "sizes": None if self.sizes is None else self.sizes.numpy(),
                "jpegs": None if self.jpegs is None else [j.numpy() for j in self.jpegs]}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, params={k: torch.from_numpy(v) for k, v in state["params"].items()},
                             sizes=None if state["sizes"] is None else torch.from_numpy(state["sizes"]),
                             jpegs=None if state["jpegs"] is None else [torch.from_numpy(j) for j in state["jpegs"]])


def batch_of(views: list[DeferredView], lead: tuple, form: str) -> DeferredBatch:
    """The deferred views of one key, each distinct source once, its frames in `form` (vidssl.training.batch_frames):
    JPEG keeps the bytes for the device to decode (where every source is a JPEG), PLANES and RGB decode them here
    (PLANES where every frame allows, else RGB)."""
    sources, origins, slots = [], [], {}
    for view in views:
        slots.setdefault(id(view.source), len(sources))
        if len(sources) < len(slots):
            sources.append(view.source), origins.append(view.origin)
    params = view_params(views, [slots[id(view.source)] for view in views])
    first = views[0]
    if form == JPEG and all(s.dim() == 1 for s in sources):
        return DeferredBatch(None, sources, params, lead, first.size, first.blur_kernel, form=JPEG, origins=origins)
    frames, made, sizes = frames_batch(sources, planes=form != RGB, origins=origins)
    return DeferredBatch(frames, None, params, lead, first.size, first.blur_kernel, form=made, sizes=sizes)


def view_params(views: list[DeferredView], slots: list[int]) -> dict:
    """The views' parameters as tensors, one row per view."""
    p = [view.params for view in views]
    return {"window": torch.tensor([view.window for view in views], dtype=torch.float64),
            "flip": torch.tensor([q.flip for q in p]), "jitter": torch.tensor([q.jitter is not None for q in p]),
            "factors": torch.tensor([q.jitter or (1.0, 1.0, 1.0, 0.0) for q in p], dtype=torch.float32),
            "order": torch.tensor([q.order or (0, 1, 2, 3) for q in p]), "gray": torch.tensor([q.gray for q in p]),
            "blur": torch.tensor([q.sigma is not None for q in p]),
            "sigma": torch.tensor([q.sigma or 1.0 for q in p], dtype=torch.float64),
            "image": torch.tensor(slots)}


def _collate_views(batch, *, collate_fn_map=None, form: str = RGB) -> DeferredBatch:
    return batch_of(list(batch), (len(batch),), form)


def _collate_groups(batch, *, collate_fn_map=None, form: str = RGB) -> DeferredBatch:
    return batch_of([view for group in batch for view in group.views], (len(batch), len(batch[0].views)), form)


COLLATE_MAPS = {form: {**default_collate_fn_map, DeferredView: partial(_collate_views, form=form),
                       DeferredGroup: partial(_collate_groups, form=form)} for form in (RGB, PLANES, JPEG)}


def collate(samples: list[dict], form: str = RGB):
    """torch's default_collate, which also gathers deferred views (and groups of them) into DeferredBatches, their
    frames in `form` (`frames_for` the device that renders them)."""
    return torch_collate(samples, collate_fn_map=COLLATE_MAPS[form])


def render_views(batch: dict) -> dict:
    """The batch with every DeferredBatch rendered into its normalised views (on the device its images are on)."""
    return {key: render(value) if isinstance(value, DeferredBatch) else value for key, value in batch.items()}


def render(batch: DeferredBatch) -> torch.Tensor:
    """The views of a DeferredBatch: (*lead, 3, size, size) float32, ImageNet-normalised."""
    p, size = batch.params, batch.size
    x = crop_resize_flip(source_images(batch), p, size)
    for position in range(4):
        for op, adjust in enumerate(ADJUST):
            x = apply_to(x, p["jitter"] & (p["order"][:, position] == op),
                         lambda sub, idx, op=op, adjust=adjust: adjust(sub, p["factors"][idx, op].to(sub.device)))
    x = apply_to(x, p["gray"], lambda sub, idx: grayscale(sub).expand_as(sub))
    if batch.blur_kernel > 1:
        x = apply_to(x, p["blur"], lambda sub, idx: gaussian_blur(sub, p["sigma"][idx], batch.blur_kernel))
    mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    return ((x - mean) / std).reshape(*batch.lead, 3, size, size)


def source_images(batch: DeferredBatch) -> torch.Tensor:
    """The batch's images as N x 3 x H x W float RGB in [0, 255] on its device (JPEGs decoded there, in one call)."""
    if batch.form == PLANES:
        return planes_rgb(batch.pixels.to(batch.device), batch.sizes)
    if batch.pixels is not None:
        return rgb_images(batch.pixels, batch.device)
    try:
        images = torchvision.io.decode_jpeg(batch.jpegs, mode=torchvision.io.ImageReadMode.RGB, device=batch.device)
    except (torch.OutOfMemoryError, torch.AcceleratorError):
        raise
    except RuntimeError:  # a JPEG the device's decoder refuses: the workers' decoder takes the batch or names the frame
        return rgb_images(frames_batch(batch.jpegs, planes=False, origins=batch.origins)[0], batch.device)
    height, width = max(i.shape[1] for i in images), max(i.shape[2] for i in images)
    return torch.cat([F.pad(i[None].float(), (0, width - i.shape[2], 0, height - i.shape[1]), mode="replicate")
                      for i in images])


def rgb_images(pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
    """N x H x W x 3 uint8 RGB frames as N x 3 x H x W float on `device`."""
    return pixels.to(device).permute(0, 3, 1, 2).float()


def crop_resize_flip(images: torch.Tensor, p: dict, size: int) -> torch.Tensor:
    """Each view's window resized to size x size, rounded to the uint8 levels cv2.resize gives, flipped where drawn;
    in [0, 1]. Bilinear at pixel centres (cv2.INTER_LINEAR) when enlarging; when shrinking by a factor s, the mean of
    round(s)^2 bilinear samples per output pixel, close to cv2.INTER_AREA's exact area mean (one roi_align per
    sampling count: one call for 256-pixel frames at 224)."""
    top, left, h, w = p["window"].unbind(1)
    rois = torch.stack([p["image"].double(), left, top, left + w, top + h], 1).float().to(images.device)
    samples = (torch.maximum(h, w) / size).round().clamp(min=1).long()
    out = images.new_empty(len(rois), 3, size, size)
    for count in samples.unique().tolist():
        idx = (samples == count).nonzero().flatten().to(images.device)
        out[idx] = torchvision.ops.roi_align(images, rois[idx], size, spatial_scale=1.0, sampling_ratio=count,
                                             aligned=True)
    out = out.round_() / 255
    flip = p["flip"].to(images.device).view(-1, 1, 1, 1)
    return torch.where(flip, out.flip(-1), out)


def apply_to(x: torch.Tensor, mask: torch.Tensor, step) -> torch.Tensor:
    """x with step(x[i], i) in place of the views i where `mask` (on the host) holds."""
    idx = mask.nonzero().flatten()
    if len(idx) == 0:
        return x
    on_device = idx.to(x.device)
    return x.index_copy(0, on_device, step(x.index_select(0, on_device), idx))


def grayscale(x: torch.Tensor) -> torch.Tensor:
    return (x * torch.tensor(LUMA, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    factor = factor.view(-1, 1, 1, 1)
    return (factor * x + (1 - factor) * other).clamp(0, 1)


def rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue in [0, 1), saturation, value of n x 3 x H x W RGB (OpenCV's and torchvision's definitions)."""
    r, g, b = x.unbind(1)
    value, low = x.amax(1), x.amin(1)
    chroma = value - low
    grey = chroma == 0
    saturation = chroma / torch.where(grey, torch.ones_like(value), value)
    c = torch.where(grey, torch.ones_like(chroma), chroma)
    hue = torch.where(value == r, (g - b) / c, torch.where(value == g, 2 + (b - r) / c, 4 + (r - g) / c))
    return torch.where(grey, 0, hue / 6 % 1), saturation, value


def hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """n x 3 x H x W RGB: channel c is v (1 - s clamp(min(k, 4 - k), 0, 1)), k = (n_c + 6 h) mod 6, n = 5, 3, 1."""
    k = (torch.tensor([5.0, 3.0, 1.0], device=hue.device).view(1, 3, 1, 1) + 6 * hue.unsqueeze(1)) % 6
    return value.unsqueeze(1) * (1 - saturation.unsqueeze(1) * torch.minimum(k, 4 - k).clamp(0, 1))


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    hue, saturation, value = rgb_to_hsv(x)
    return hsv_to_rgb((hue + factor.view(-1, 1, 1)) % 1, saturation, value).clamp(0, 1)


ADJUST = (lambda x, f: (x * f.view(-1, 1, 1, 1)).clamp(0, 1),  # brightness, contrast, saturation, hue (JITTER_OPS)
          lambda x, f: blend(x, grayscale(x).mean((1, 2, 3), keepdim=True), f),
          lambda x, f: blend(x, grayscale(x), f),
          adjust_hue)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Each view blurred with its own sigma (cv2.GaussianBlur's kernel, reflect-101 border): one grouped convolution
    per axis over all of them."""
    n, channels, height, width = x.shape
    t = torch.arange(kernel, dtype=torch.float64) - (kernel - 1) / 2
    weights = torch.exp(-t ** 2 / (2 * sigma.view(-1, 1) ** 2))
    weights = (weights / weights.sum(1, keepdim=True)).float().repeat_interleave(channels, 0).to(x.device)
    flat = F.pad(x.reshape(1, n * channels, height, width), (kernel // 2,) * 4, mode="reflect")
    flat = F.conv2d(flat, weights.view(-1, 1, kernel, 1), groups=n * channels)
    flat = F.conv2d(flat, weights.view(-1, 1, 1, kernel), groups=n * channels)
    return flat.reshape(n, channels, height, width)


def resolve(augment_on: str, device: torch.device) -> str:
    """`device` or `workers` for train.augment_on on `device`: `auto` is the device on CUDA, else CPU_CHOICE."""
    if augment_on != "auto":
        return augment_on
    return "device" if device.type == "cuda" else CPU_CHOICE


def frames_for(device: torch.device) -> str:
    """The form a batch's frames are cheapest in for `device` to render: the JPEG bytes where it decodes them (nvJPEG),
    RGB pixels on a CPU (which converts YCbCr planes far slower than libjpeg-turbo), else the YCbCr 4:2:0 planes
    (half the bytes, less decoding in the workers: `make bench`)."""
    return JPEG if decodes_jpeg(device) else RGB if device.type == "cpu" else PLANES


def decodes_jpeg(device: torch.device) -> bool:
    """Whether torchvision decodes JPEGs on `device` (nvJPEG on CUDA); never on a CPU, where the workers decode."""
    if device.type != "cuda":
        return False
    try:
        blob = torch.from_numpy(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1])
        torchvision.io.decode_jpeg([blob], device=device)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True
