"""The device path of the MoCo v2 augmentations (vidssl.training.device_augment) against the worker path
(vidssl.training.augment): the same random parameters, pixels within the stated tolerance, tracked boxes on the same
content, and a training run that renders its views on the device."""
import copy
import dataclasses
import functools
import math
import shutil

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from test_train import CFG, data, run  # noqa: F401  (the small chunks, pairs and tracks of the training tests)
from torchvision.transforms import RandomResizedCrop

from vidssl.core import images
from vidssl.core.errors import UserError
from vidssl.core.images import IMAGENET_MEAN, IMAGENET_STD, decode_jpeg, jpeg_header, jpeg_shape, planes_decoder_here
from vidssl.training.augment import Crops, MocoV2Augment
from vidssl.training.batch_frames import JPEG, PLANES, RGB, frames_batch, padded, planes_rgb
from vidssl.training.device_augment import (
    DeferredAugment,
    DeferredBatch,
    SourceImage,
    collate,
    frames_for,
    render_views,
    resolve,
    source_images,
)
from vidssl.training.methods import get as get_method
from vidssl.training.samples import TrainingSamples, read_tracks
from vidssl.video.chunk_store import ChunkStore

# With the parameters fixed, the two paths' pixels differ by at most these (grey levels of 0-255, before the
# normalisation) on natural-ish images: roi_align's bilinear samples against cv2's fixed-point INTER_LINEAR and exact
# INTER_AREA means, and a half-pixel border (roi_align reads past the crop's edge, cv2 repeats it). Measured: mean
# 0.14 enlarging, 0.25 shrinking; 99.9th percentile 2-3.5; single pixels up to 27 where a crop shrinks one side and
# enlarges the other (cv2's INTER_AREA is then nearest-like on the enlarged side).
MEAN_TOLERANCE, P999_TOLERANCE = 0.4, 5.0


def natural(height: int, width: int, seed: int, noise: float = 4.0) -> np.ndarray:
    """Smooth colour fields with sensor-like noise: local structure at every scale the crops sample."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
    smooth = cv2.GaussianBlur(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), (0, 0), 2)
    return np.clip(smooth + rng.normal(0, noise, smooth.shape), 0, 255).astype(np.uint8)


def grey_levels(views: torch.Tensor) -> torch.Tensor:
    """Normalised views back to 0-255."""
    std, mean = (torch.tensor(v).view(3, 1, 1) for v in (IMAGENET_STD, IMAGENET_MEAN))
    return (views * std + mean) * 255


def both_paths(images, boxes, size=224, seed=0, strip=False):
    """Each image through the worker path and the device path with the same generator seed: (worker views, device
    views, worker boxes, device boxes, deferred views); `strip` drops the photometric steps from both."""
    augment = MocoV2Augment(size)
    deferred = DeferredAugment(augment)
    worker, samples, worker_boxes, device_boxes = [], [], [], []
    for i, (image, box) in enumerate(zip(images, boxes)):
        view, device_box, kept = deferred(image, box, np.random.default_rng([seed, i]))
        if strip:
            view.params = dataclasses.replace(view.params, jitter=None, order=None, gray=False, sigma=None)
        pixels, worker_box, worker_kept = augment(image, box, np.random.default_rng([seed, i]))
        if strip:
            pixels = augment.photometric(augment.crop(image, view.params), view.params)
        assert worker_kept == kept and torch.equal(worker_box, device_box)
        worker.append(pixels), samples.append({"x": view}), worker_boxes.append(worker_box)
        device_boxes.append(device_box)
    return torch.stack(worker), render_views(collate(samples))["x"], worker_boxes, device_boxes, samples


def test_both_paths_draw_identical_parameters_and_leave_the_generator_alike():
    augment = MocoV2Augment(32)
    deferred = DeferredAugment(augment)
    image = np.zeros((48, 64, 3), np.uint8)
    for seed in range(200):
        worker_rng, device_rng, draw_rng = (np.random.default_rng([3, seed]) for _ in range(3))
        augment(image, [4.0, 4.0, 30.0, 40.0], worker_rng)
        view, _, _ = deferred(image, [4.0, 4.0, 30.0, 40.0], device_rng)
        assert view.params == augment.draw(48, 64, draw_rng)
        assert worker_rng.random() == device_rng.random() == draw_rng.random()  # the next draw is the same too


def test_the_parameters_follow_moco_v2():
    augment, rng, n = MocoV2Augment(224), np.random.default_rng(0), 4000
    draws = [augment.draw(256, 256, rng) for _ in range(n)]
    areas = np.array([p.window[2] * p.window[3] / 256 ** 2 for p in draws])
    ratios = np.log([p.window[3] / p.window[2] for p in draws])
    torch.manual_seed(0)
    theirs = [RandomResizedCrop.get_params(torch.empty(3, 256, 256), [0.2, 1.0], [3 / 4, 4 / 3]) for _ in range(n)]
    their_areas = np.array([h * w / 256 ** 2 for _, _, h, w in theirs])
    their_ratios = np.log([w / h for _, _, h, w in theirs])
    quantiles = np.linspace(0.05, 0.95, 19)
    assert areas.min() >= 0.19 and areas.max() <= 1 and np.abs(ratios).max() <= math.log(4 / 3) + 0.02
    assert np.abs(np.quantile(areas, quantiles) - np.quantile(their_areas, quantiles)).max() < 0.03
    assert np.abs(np.quantile(ratios, quantiles) - np.quantile(their_ratios, quantiles)).max() < 0.03

    def share(flags, p):  # a Bernoulli rate within 4.5 standard deviations
        assert abs(np.mean(flags) - p) < 4.5 * math.sqrt(p * (1 - p) / n), (np.mean(flags), p)

    share([p.flip for p in draws], 0.5), share([p.jitter is not None for p in draws], 0.8)
    share([p.gray for p in draws], 0.2), share([p.sigma is not None for p in draws], 0.5)
    factors = np.array([p.jitter for p in draws if p.jitter is not None])
    assert (factors[:, :3] >= 0.6).all() and (factors[:, :3] <= 1.4).all() and (np.abs(factors[:, 3]) <= 0.1).all()
    assert np.allclose(factors.mean(0), [1, 1, 1, 0], atol=0.02)
    orders = [p.order for p in draws if p.order is not None]
    assert len(set(orders)) == 24  # every order of the four jitter steps
    sigmas = np.array([p.sigma for p in draws if p.sigma is not None])
    assert sigmas.min() >= 0.1 and sigmas.max() <= 2.0 and abs(sigmas.mean() - 1.05) < 0.05


@pytest.mark.parametrize("strip", [True, False])
def test_with_the_parameters_fixed_the_pixels_agree(strip):
    images = [natural(256, 256 + 64 * (i % 2), i) for i in range(24)]  # two frame sizes in one batch
    worker, device, *_ = both_paths(images, [None] * len(images), strip=strip)
    diff = (grey_levels(worker) - grey_levels(device)).abs()
    assert device.shape == worker.shape == (24, 3, 224, 224)
    assert diff.mean() < MEAN_TOLERANCE and diff.flatten().quantile(0.999) < P999_TOLERANCE, (diff.mean(), diff.max())


def test_a_tracked_box_lands_on_the_same_content_in_both_paths():
    image = natural(96, 128, 0, noise=0) // 4  # dark
    image[30:60, 20:56] = (40, 220, 60)  # the tracked object (BGR green), box (20, 30, 56, 60)
    box = [20.0, 30.0, 56.0, 60.0]
    worker, device, worker_boxes, _, _ = both_paths([image] * 40, [box] * 40, size=64, strip=True)
    green = torch.tensor([60.0, 220.0, 40.0]).view(3, 1)  # RGB
    checked = 0
    for w_view, d_view, b in zip(grey_levels(worker), grey_levels(device), worker_boxes):
        x1, y1, x2, y2 = b.tolist()
        if x2 - x1 < 4 or y2 - y1 < 4 or (x1, y1, x2, y2) == (0, 0, 64, 64):
            continue
        inside = (slice(None), slice(math.ceil(y1 + 1), int(y2 - 1)), slice(math.ceil(x1 + 1), int(x2 - 1)))
        for view in (w_view, d_view):
            assert (view[inside].flatten(1) - green).abs().max() < 3  # the box holds the object
            outside = torch.ones(64, 64, dtype=torch.bool)
            outside[max(0, int(y1 - 2)):math.ceil(y2 + 2), max(0, int(x1 - 2)):math.ceil(x2 + 2)] = False
            assert (view[1][outside] < 150).all()  # and nothing else is the object
        checked += 1
    assert checked > 10


def test_a_region_of_a_source_image_is_the_crop_of_its_pixels():
    """Local crops inside a tracked box: the region of the whole frame, which the batch sends once."""
    image = natural(120, 160, 3)
    region = SourceImage.of(image)[20:100, 30:90]
    assert region.shape == (80, 60, 3) and (region.top, region.left) == (20, 30)
    augment = MocoV2Augment(48, (0.05, 0.4))
    samples = [{"x": DeferredAugment(augment)(region, None, np.random.default_rng(i))[0]} for i in range(8)]
    worker = torch.stack([augment(image[20:100, 30:90], None, np.random.default_rng(i))[0] for i in range(8)])
    batch = collate(samples)["x"]
    assert batch.pixels.shape[0] == 1  # the frame once for all eight views
    diff = (grey_levels(render_views({"x": batch})["x"]) - grey_levels(worker)).abs()
    assert diff.mean() < MEAN_TOLERANCE


def jpeg_variants() -> dict[str, np.ndarray]:
    """One image's JPEG bytes as encoders write them: every chroma subsampling, progressive, optimised, with restart
    markers, greyscale, one pixel, a thin column."""
    image = natural(97, 131, 5)
    sampling = {name: getattr(cv2, f"IMWRITE_JPEG_SAMPLING_FACTOR_{name}")
                for name in ("411", "420", "422", "440", "444")}
    variants = {f"{name} q{q}": cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, q,
                                                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR, flag])[1]
                for name, flag in sampling.items() for q in (30, 95)}
    variants |= {"progressive": cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1],
                 "optimised": cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_OPTIMIZE, 1])[1],
                 "restarts": cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_RST_INTERVAL, 2])[1],
                 "grey": cv2.imencode(".jpg", image[..., 1])[1], "one pixel": cv2.imencode(".jpg", image[:1, :1])[1],
                 "column": cv2.imencode(".jpg", np.ascontiguousarray(image[:, :3]))[1]}
    return {name: blob.ravel() for name, blob in variants.items()}


def test_the_jpeg_decoder_gives_opencvs_pixels_and_none_for_what_does_not_decode():
    for name, blob in jpeg_variants().items():
        expected = cv2.imdecode(blob, cv2.IMREAD_COLOR)
        assert np.array_equal(decode_jpeg(blob), expected), name
        assert np.array_equal(decode_jpeg(blob, rgb=True), expected[..., ::-1]), name
        out = np.zeros_like(expected)
        decode_jpeg(blob, rgb=True, out=out)
        assert np.array_equal(out, expected[..., ::-1]) and jpeg_shape(blob) == expected.shape[:2], name
    whole = jpeg_variants()["420 q95"]
    png = cv2.imencode(".png", natural(20, 30, 1))[1].ravel()
    assert np.array_equal(decode_jpeg(png), cv2.imdecode(png, cv2.IMREAD_COLOR))  # OpenCV decodes what it refuses
    for broken in (whole[:len(whole) // 2], np.frombuffer(b"\xff\xd8\xff\xe0 not a jpeg", np.uint8),
                   np.zeros(0, np.uint8)):
        assert decode_jpeg(broken) is None
    assert jpeg_shape(np.frombuffer(b"not a jpeg", np.uint8)) is None


def test_jpeg_bytes_are_decoded_into_the_batch_or_left_to_the_device():
    images = [natural(48 + 16 * i, 64 + 8 * (i == 1), i) for i in range(3)]  # sizes differ: the batch pads
    blobs = [cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].ravel() for image in images]
    deferred = DeferredAugment(MocoV2Augment(32))
    encoded = [{"x": deferred(SourceImage.of_jpeg(b), None, np.random.default_rng(i))[0]} for i, b in enumerate(blobs)]
    decoded = [{"x": deferred(cv2.imdecode(b, cv2.IMREAD_COLOR), None, np.random.default_rng(i))[0]}
               for i, b in enumerate(blobs)]
    kept, here, pixels = collate(encoded, form=JPEG)["x"], collate(encoded)["x"], collate(decoded)["x"]
    assert kept.pixels is None and len(kept.jpegs) == 3
    assert here.jpegs is None and pixels.form == RGB
    assert torch.equal(source_images(here), source_images(pixels))  # decoded into the batch: OpenCV's pixels
    for slot, image in zip(source_images(here), images):  # each padded right and down by its last column and row
        h, w = image.shape[:2]
        assert torch.equal(slot[:, h:], slot[:, h - 1:h].expand_as(slot[:, h:]))
        assert torch.equal(slot[:, :h, w:], slot[:, :h, w - 1:w].expand_as(slot[:, :h, w:]))
    assert torch.equal(render_views({"x": here})["x"], render_views({"x": pixels})["x"])
    diff = (render_views({"x": kept})["x"] - render_views({"x": here})["x"]).abs()
    assert diff.max() < 0.05  # two JPEG decoders (torchvision's, libjpeg-turbo's through simplejpeg) of the same bytes


needs_turbojpeg = pytest.mark.skipif(not planes_decoder_here(),
                                     reason="libjpeg-turbo's TurboJPEG library (Debian: libturbojpeg0) is missing")


def encoded(image: np.ndarray, *flags) -> torch.Tensor:
    return torch.from_numpy(cv2.imencode(".jpg", image, list(flags))[1].ravel())


@needs_turbojpeg
def test_frames_sent_as_ycbcr_planes_are_libjpeg_turbos_rgb_pixels_on_the_device():
    """Every frame size parity, the narrowest width libjpeg upsamples this way, tall and thin frames, each encoder
    option that changes the stream: the planes converted on the device give libjpeg-turbo's RGB decode exactly, the
    padding included, in half the bytes."""
    sizes = [(256, 341), (255, 340), (97, 131), (37, 9), (17, 6), (5, 5), (8, 8), (200, 7), (6, 300), (1, 7), (2, 6)]
    options = {"q30": (cv2.IMWRITE_JPEG_QUALITY, 30), "q95": (cv2.IMWRITE_JPEG_QUALITY, 95),
               "optimised": (cv2.IMWRITE_JPEG_OPTIMIZE, 1), "restarts": (cv2.IMWRITE_JPEG_RST_INTERVAL, 2)}
    for name, flags in options.items():
        sources = [encoded(np.ascontiguousarray(natural(max(h, 32), max(w, 32), i, noise=30.0)[:h, :w]), *flags)
                   for i, (h, w) in enumerate(sizes)]
        frames, form, got = frames_batch(sources)
        assert form == PLANES and got.tolist() == [list(s) for s in sizes], name
        rgb = padded(sources, sizes)
        assert frames.shape == (len(sizes), 256 * 342 * 3 // 2), name  # Y at even sizes, Cb and Cr a quarter each
        assert torch.equal(planes_rgb(frames, got), rgb.permute(0, 3, 1, 2).float()), name


@needs_turbojpeg
def test_a_batch_goes_as_rgb_where_a_frame_cannot_go_as_planes(monkeypatch):
    image, ok = natural(40, 56, 0), natural(40, 56, 1)
    factors = {name: getattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR_" + name) for name in ("411", "422", "444")}
    others = {name: encoded(image, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor) for name, factor in factors.items()}
    others |= {"grey": encoded(np.ascontiguousarray(image[..., 0])), "pixels": torch.from_numpy(image),
               "4 wide": encoded(np.ascontiguousarray(image[:, :4])),
               "progressive": encoded(image, cv2.IMWRITE_JPEG_PROGRESSIVE, 1)}  # not sequential: libjpeg-turbo 2.1
    # and 3.x (simplejpeg's) decode a progressive JPEG cut short differently
    for name, other in others.items():
        sources = [encoded(ok), other]
        frames, form, sizes = frames_batch(sources)
        assert form == RGB and torch.equal(frames, padded(sources, sizes.tolist())), name
    truncated = encoded(image)[:1000]  # its header reads as 4:2:0, its data does not decode
    assert jpeg_header(truncated.numpy()) == (40, 56, "YCbCr", "420")
    with pytest.raises(UserError, match="does not decode"):
        frames_batch([encoded(ok), truncated])
    monkeypatch.setattr(images, "_turbojpeg", lambda: None)  # where libturbojpeg is not installed
    assert frames_batch([encoded(ok)])[1] == RGB


def without_segment(blob: torch.Tensor, marker: int) -> torch.Tensor:
    """A JPEG's bytes with every segment of `marker` (before the scan) removed."""
    stream, out, i = blob.numpy().tobytes(), bytearray(b"\xff\xd8"), 2
    while stream[i + 1] != 0xDA:
        length = 2 + int.from_bytes(stream[i + 2:i + 4], "big")
        if stream[i + 1] != marker:
            out += stream[i:i + length]
        i += length
    return torch.frombuffer(bytearray(out + stream[i:]), dtype=torch.uint8)


@needs_turbojpeg
def test_a_frame_missing_its_tables_does_not_decode_with_the_frame_before_it():
    """libjpeg keeps tables for the next image (abbreviated streams): a frame without quantisation tables decoded
    after a whole one would take the whole one's. Every frame gets its own decompressor, so it is refused as RGB
    refuses it."""
    whole = encoded(natural(40, 56, 0))
    damaged = without_segment(encoded(natural(40, 56, 1)), 0xDB)  # DQT
    assert jpeg_header(damaged.numpy()) == (40, 56, "YCbCr", "420")
    for sources in ([damaged], [whole, damaged], [whole, damaged, whole]):
        with pytest.raises(UserError) as raised:
            frames_batch(sources, origins=[f"frame {i}" for i in range(len(sources))])
        position = next(i for i, source in enumerate(sources) if source is damaged)
        assert str(raised.value) == f"frame {position}: a stored frame's JPEG does not decode"


def test_a_jpeg_the_devices_decoder_refuses_is_decoded_as_the_workers_decode_it(monkeypatch):
    """nvJPEG refuses some JPEGs libjpeg-turbo decodes; no GPU here, so the device's decoder is made to refuse. The
    batch is then the RGB batch the workers would have sent; the GPU's own failures are not swallowed."""
    blobs = [cv2.imencode(".jpg", natural(40, 56 + 8 * i, i))[1].ravel() for i in range(3)]
    views = JpegViews(blobs)
    samples = [views[i] for i in range(len(views))]
    expected = render_views(collate(samples))["x"]

    def refuse(*args, **kwargs):
        raise RuntimeError("nvjpegDecode failed: NVJPEG_STATUS_BAD_JPEG")
    monkeypatch.setattr(torchvision.io, "decode_jpeg", refuse)
    assert torch.equal(render_views(collate(samples, form=JPEG))["x"], expected)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")
    monkeypatch.setattr(torchvision.io, "decode_jpeg", out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):
        render_views(collate(samples, form=JPEG))


def test_a_stored_frame_that_does_not_decode_is_a_user_error_on_the_device_path():
    whole = jpeg_variants()["420 q95"]
    deferred = DeferredAugment(MocoV2Augment(16))
    with pytest.raises(UserError, match="a stored frame's JPEG does not decode"):
        SourceImage.of_jpeg(np.frombuffer(b"not a jpeg", np.uint8))  # no header: decoded at once
    truncated = SourceImage.of_jpeg(whole[:len(whole) // 2])  # its header reads: decoded as the batch is collated
    with pytest.raises(UserError, match="a stored frame's JPEG does not decode"):
        collate([{"x": deferred(truncated, None, np.random.default_rng(0))[0]}])
    # raised in a DataLoader worker, it reaches the trainer as the same one line, not the worker's traceback
    loader = torch.utils.data.DataLoader(JpegViews([whole[:len(whole) // 2]]), batch_size=2, num_workers=1,
                                         collate_fn=collate)
    with pytest.raises(UserError) as raised:
        next(iter(loader))
    assert str(raised.value) == "a stored frame's JPEG does not decode"


@pytest.mark.parametrize("augment_on, form", [("workers", RGB), ("device", RGB),
                                              pytest.param("device", PLANES, marks=needs_turbojpeg), ("device", JPEG)])
def test_a_damaged_frame_in_a_chunk_store_is_one_line_naming_it_on_every_path(data, tmp_path, augment_on, form):  # noqa: F811
    """Decoded by a worker to pixels, RGB or planes, or by the device's decoder (torchvision's, on this CPU): the same
    line, naming the store and the row."""
    shutil.copy(data / "chunks.h5", tmp_path / "chunks.h5")
    with h5py.File(tmp_path / "chunks.h5", "r+") as h5:
        row = len(h5["jpeg"]) // 2
        whole = h5["jpeg"][row]
        h5["jpeg"][row] = whole[:len(whole) // 2]
    samples = TrainingSamples(get_method("moco"), stores=[ChunkStore(tmp_path / "chunks.h5")], frame_pairs=None,
                              tracks=None, labelled=None, image_size=32, seed=0, augment_on=augment_on)
    with pytest.raises(UserError) as raised:
        render_views(collate(samples.__getitems__(list(range(len(samples.units)))), form=form))
    assert str(raised.value) == f"{tmp_path / 'chunks.h5'}, row {row}: a stored frame's JPEG does not decode"


class JpegViews(torch.utils.data.Dataset):
    def __init__(self, blobs):
        self.blobs, self.deferred = blobs, DeferredAugment(MocoV2Augment(24, (0.3, 1.0)))

    def __len__(self):
        return 2 * len(self.blobs)

    def __getitem__(self, index):
        source = SourceImage.of_jpeg(self.blobs[index % len(self.blobs)])
        return {"x": self.deferred(source, None, np.random.default_rng(index))[0], "index": index}


@pytest.mark.parametrize("form", [RGB, PLANES, JPEG])
def test_a_deferred_batch_from_a_worker_process_is_the_batch_made_here(form):
    """Pixels through shared memory, parameters and JPEG bytes by value: what the trainer gets from a DataLoader
    worker is what collating in its own process gives."""
    blobs = [cv2.imencode(".jpg", natural(40, 56, i))[1].ravel() for i in range(3)]
    views = JpegViews(blobs)
    collate_fn = functools.partial(collate, form=form)
    loader = torch.utils.data.DataLoader(views, batch_size=4, num_workers=1, collate_fn=collate_fn)
    batches = list(loader)
    assert len(batches) == 2
    for first, batch in zip((0, 4), batches):
        here = collate_fn([views[i] for i in range(first, min(first + 4, len(views)))])
        assert torch.equal(batch["index"], here["index"])
        assert batch["x"].params.keys() == here["x"].params.keys()
        assert all(torch.equal(batch["x"].params[k], here["x"].params[k]) for k in here["x"].params)
        if form == JPEG:
            assert batch["x"].pixels is None
            assert all(torch.equal(a, b) for a, b in zip(batch["x"].jpegs, here["x"].jpegs))
        else:
            assert batch["x"].pixels.is_shared() and torch.equal(batch["x"].pixels, here["x"].pixels)
            assert batch["x"].form == here["x"].form and torch.equal(batch["x"].sizes, here["x"].sizes)
            assert batch["x"].form == form or form == PLANES and not planes_decoder_here()
        assert torch.equal(render_views(batch)["x"], render_views(here)["x"])


def test_local_crops_and_tracked_boxes_through_the_samples(data):  # noqa: F811
    def samples(augment_on):
        return TrainingSamples(get_method("region_tracker"), stores=[ChunkStore(data / "chunks.h5")],
                               frame_pairs=pd.read_parquet(data / "pairs.parquet"),
                               tracks=read_tracks([data / "tracks.parquet"]), labelled=None, image_size=32, seed=0,
                               crops=Crops(32, local=3, local_size=16), augment_on=augment_on)
    indices = list(range(6))
    worker = torch.utils.data.default_collate(samples("workers").__getitems__(indices))
    deferred = collate(samples("device").__getitems__(indices))
    assert isinstance(deferred["x_local"], DeferredBatch) and deferred["x_local"].lead == (6, 3)
    device = render_views(deferred)
    as_planes = collate(samples("device").__getitems__(indices), form=PLANES)  # a chunk store's frames, for a GPU
    assert as_planes["x_local"].form == PLANES or not planes_decoder_here()
    assert all(torch.equal(v, device[k]) for k, v in render_views(as_planes).items())
    assert device.keys() == worker.keys()
    for key, value in worker.items():
        assert device[key].shape == value.shape and device[key].dtype == value.dtype
        if key.startswith("x_"):
            # frames of uniform noise shrunk from 64 to 32 pixels: the tolerance's worst case, yet far below the
            # ~85 grey levels between two different views of them
            assert (grey_levels(device[key]) - grey_levels(value)).abs().mean() < 3.0, key
        else:
            assert torch.equal(device[key], value), key  # boxes and `tracked` come from the same draws


def test_auto_is_the_device_on_cuda_and_the_measured_choice_on_a_cpu():
    assert resolve("auto", torch.device("cuda", 0)) == "device"
    assert resolve("auto", torch.device("cpu")) in ("device", "workers")
    assert resolve("workers", torch.device("cuda", 0)) == "workers" and resolve("device", torch.device("cpu")) == "device"
    assert frames_for(torch.device("cpu")) == RGB  # a CPU converts YCbCr planes far slower than libjpeg-turbo
    assert frames_for(torch.device("mps")) == PLANES  # a GPU that does not decode JPEGs (CUDA with nvJPEG: JPEG)


def test_a_training_run_renders_its_views_on_the_device(data, tmp_path):  # noqa: F811
    cfg = copy.deepcopy(CFG)
    cfg["train"].update(steps=2, workers=1, knn_every=2, augment_on="device")  # a worker process, and the monitors
    device = run("region_tracker", data, tmp_path / "device", cfg=cfg)
    cfg["train"]["augment_on"] = "workers"
    worker = run("region_tracker", data, tmp_path / "workers", cfg=cfg)
    assert all(math.isfinite(loss) for loss in device["loss"])
    # the same views within the tolerance (the batches differ by 0.7 grey levels on average); at 32 pixels with four
    # samples per batch-norm split the untrained network moves its first loss by several percent for that
    assert math.isclose(device["loss"][0], worker["loss"][0], rel_tol=0.15)
    checkpoint = torch.load(tmp_path / "device" / "checkpoint.pt", weights_only=True)
    assert checkpoint["identity"]["config"]["train"]["augment_on"] == "device"
