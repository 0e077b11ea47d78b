"""A batch's frames as the device path's data workers hand them to the trainer: decoded into one uint8 tensor (made in
shared memory inside a DataLoader worker, as torch's default_collate makes its batches, so that sending it copies
nothing), each frame at the top left of its slot.

Two forms. Where every frame is a YCbCr 4:2:0 JPEG (what the chunk stores hold) and libjpeg-turbo's TurboJPEG library
is here, `planar`: the Y, Cb and Cr planes as the JPEG stores them, half the bytes of RGB and no upsampling or colour
conversion in the worker; `planes_rgb` then does both on the device with libjpeg's own integer arithmetic (its "fancy"
triangle-filter upsampling and its JFIF YCbCr -> RGB tables), so that the pixels are exactly libjpeg-turbo's RGB
decode. Otherwise `padded`: RGB pixels. Either way the trainer sees the same N x 3 x H x W image batch, each image
padded right and down with its last column and row.
"""
from __future__ import annotations

import math

import torch

from vidssl.core.errors import UserError
from vidssl.core.images import decode_jpeg, decode_jpegs_to_planes, decodes_to_planes, jpeg_header, sequential_jpeg

UNDECODABLE = "a stored frame's JPEG does not decode"
RGB, PLANES, JPEG = "rgb", "ycbcr420", "jpeg"  # a batch's frames: pixels, planes, or the bytes for the device
ONE_HALF, SCALEBITS = 1 << 15, 16  # libjpeg's jdcolor.c fixed point: FIX(x) = round(x * 2^16)
CR_R, CB_B, CR_G, CB_G = (round(x * (1 << SCALEBITS)) for x in (1.40200, 1.77200, 0.71414, 0.34414))


def undecodable(origin: str = "") -> str:
    """The one line for a stored frame that does not decode, naming where it was read when known."""
    return f"{origin}: {UNDECODABLE}" if origin else UNDECODABLE


def frames_batch(sources: list[torch.Tensor], planes: bool = True,
                 origins: list[str] | None = None) -> tuple[torch.Tensor, str, torch.Tensor]:
    """Sources (JPEG bytes as 1-D uint8 tensors, or H x W x 3 uint8 RGB pixels) as (frames, form, sizes): the frames
    `planar` where asked and it can, else `padded`; sizes the (height, width) of each, an N x 2 int64 tensor. A frame
    that does not decode is a UserError naming its origin (where it was read)."""
    origins = origins or [""] * len(sources)
    headers = [None if s.dim() == 3 else jpeg_header(s.numpy()) for s in sources]
    sizes = [tuple(s.shape[:2]) if s.dim() == 3 else header and header[:2] for s, header in zip(sources, headers)]
    if None in sizes:
        raise UserError(undecodable(origins[sizes.index(None)]))
    as_planes = planes and all(decodes_to_planes(h) and sequential_jpeg(s.numpy()) for s, h in zip(sources, headers))
    frames = planar(sources, sizes) if as_planes else None
    if frames is None:
        frames, form = padded(sources, sizes, origins), RGB
    else:
        form = PLANES
    return frames, form, torch.tensor(sizes, dtype=torch.int64)


def batch_buffer(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised uint8 tensor for a batch, in shared memory when in a DataLoader worker."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=torch.uint8)
    out = torch.empty(0, dtype=torch.uint8).new(torch.UntypedStorage._new_shared(math.prod(shape))).view(shape)
    return out.zero_()  # pages faulted in one sweep, not as the decoder reaches them: 1.22 against 1.29 ms a sample


def padded(sources: list[torch.Tensor], sizes: list[tuple[int, int]], origins: list[str] | None = None) -> torch.Tensor:
    """The sources as one N x H x W x 3 uint8 RGB tensor, each padded right and down with its last column and row, so
    that bilinear sampling at its edge reads what it reads on the image alone. A JPEG of the batch's size is decoded
    straight into its slot."""
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    out = batch_buffer((len(sources), height, width, 3))
    for i, (slot, source, (h, w)) in enumerate(zip(out, sources, sizes)):
        whole = (h, w) == (height, width)
        into = slot.numpy() if whole else None
        image = source if source.dim() == 3 else decode_jpeg(source.numpy(), rgb=True, out=into)
        if image is None:
            raise UserError(undecodable(origins[i] if origins else ""))
        if source.dim() == 3 or not whole:
            slot[:h, :w] = torch.as_tensor(image)
        if not whole:
            slot[:h, w:] = slot[:h, w - 1:w]
            slot[h:] = slot[h - 1:h]
    return out


def plane_shapes(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The Y and the Cb/Cr plane shapes of a planar batch whose largest frame is height x width."""
    luma = (height + height % 2, width + width % 2)
    return luma, (luma[0] // 2, luma[1] // 2)


def split_planes(frames: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A planar batch (N x bytes) as its Y (N x H2 x W2) and chroma (N x 2 x H2/2 x W2/2) planes."""
    luma, chroma = plane_shapes(height, width)
    n, area = len(frames), math.prod(luma)
    return frames[:, :area].view(n, *luma), frames[:, area:].view(n, 2, *chroma)


def planar(sources: list[torch.Tensor], sizes: list[tuple[int, int]]) -> torch.Tensor | None:
    """The JPEGs' Y, Cb and Cr planes, each frame's in one row of an N x (H2 W2 3/2) uint8 tensor (`split_planes`);
    None when one does not decode this way (it is then decoded to RGB, or reported)."""
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    luma, chroma = plane_shapes(height, width)
    out = batch_buffer((len(sources), math.prod(luma) + 2 * math.prod(chroma)))
    y, c = split_planes(out, height, width)
    return out if decode_jpegs_to_planes([s.numpy() for s in sources], y.numpy(), c.numpy()) else None


def planes_rgb(frames: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """A planar batch as N x 3 x H x W float RGB in [0, 255] on its device, each image padded by its last column and
    row: libjpeg's h2v2 fancy upsampling (each output pixel 9/16, 3/16, 3/16, 1/16 of its four nearest chroma samples,
    edges repeated; rounding +8 then +7 along a row) and jdcolor.c's YCbCr -> RGB, integer for integer."""
    device, n = frames.device, len(frames)
    height, width = (int(v) for v in sizes.max(0).values)
    y, c = split_planes(frames, height, width)
    h, w = (v.to(device).view(n, 1) for v in sizes.unbind(1))
    rows = torch.minimum(torch.arange(height, device=device).view(1, -1), h - 1)  # the padding repeats the edge
    cols = torch.minimum(torch.arange(width, device=device).view(1, -1), w - 1)
    near = rows // 2  # the chroma row an output row lies in, and the one beside it, towards the output row
    far = torch.minimum((near + rows % 2 * 2 - 1).clamp(min=0), (h + 1) // 2 - 1)
    k = cols // 2
    beside = torch.minimum((k + cols % 2 * 2 - 1).clamp(min=0), (w + 1) // 2 - 1)
    chroma = c.int()

    def rows_of(index):
        return chroma.gather(2, index.view(n, 1, height, 1).expand(n, 2, height, chroma.shape[3]))

    column_sums = 3 * rows_of(near) + rows_of(far)
    across = column_sums.gather(3, k.view(n, 1, 1, width).expand(n, 2, height, width))
    other = column_sums.gather(3, beside.view(n, 1, 1, width).expand(n, 2, height, width))
    rounding = (8 - cols % 2).int().view(n, 1, 1, width)  # int32 throughout (int64 doubles the memory)
    cb, cr = ((3 * across + other + rounding) >> 4).sub(128).unbind(1)
    luma = y.gather(1, rows.view(n, height, 1).expand(n, height, y.shape[2])).gather(
        2, cols.view(n, 1, width).expand(n, height, width)).int()
    red = luma + ((CR_R * cr + ONE_HALF) >> SCALEBITS)
    green = luma + ((ONE_HALF - CB_G * cb - CR_G * cr) >> SCALEBITS)
    blue = luma + ((CB_B * cb + ONE_HALF) >> SCALEBITS)
    return torch.stack([red, green, blue], 1).clamp_(0, 255).float()
