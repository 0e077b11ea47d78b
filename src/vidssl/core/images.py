"""Images: the suffixes every stage reads as images, the one reader they share, the one decoder of stored JPEG frames
(to pixels, or to the YCbCr planes of a 4:2:0 JPEG), and the ImageNet channel statistics every network input is
normalised with (RGB, in [0, 1])."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

import cv2
import numpy as np
import simplejpeg

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_image(path: str | os.PathLike, *, rgb: bool = False) -> np.ndarray | None:
    """The image at `path` as three-channel uint8, BGR (RGB when `rgb`), EXIF orientation applied; None when it is
    missing or does not decode.

    Python reads the bytes and OpenCV decodes them in memory: OpenCV's own file reader crashes on a name that is not
    valid UTF-8, and warns on stderr for every missing file.
    """
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR_RGB if rgb else cv2.IMREAD_COLOR) if data.size else None


def decode_jpeg(blob: np.ndarray, *, rgb: bool = False, out: np.ndarray | None = None) -> np.ndarray | None:
    """A stored JPEG's three-channel uint8 pixels, BGR (RGB when `rgb`), decoded into `out` when given (a C-contiguous
    H x W x 3 uint8 array of the image's size); None when it does not decode.

    libjpeg-turbo through simplejpeg gives OpenCV's pixels exactly (every subsampling, progressive, greyscale; tested)
    in 12-17% less CPU (benchmarks/bench_augment.py), and can write straight into a batch's memory; OpenCV decodes what
    it refuses.
    """
    try:
        return simplejpeg.decode_jpeg(blob, "RGB" if rgb else "BGR", buffer=out)
    except ValueError:
        image = cv2.imdecode(blob, cv2.IMREAD_COLOR_RGB if rgb else cv2.IMREAD_COLOR) if blob.size else None
    if image is not None and out is not None:
        out[...] = image
    return image


def jpeg_header(blob: np.ndarray) -> tuple[int, int, str, str] | None:
    """(height, width, colour space, subsampling) from a JPEG's header, e.g. (256, 341, "YCbCr", "420"); None when it
    cannot be read."""
    try:
        return simplejpeg.decode_jpeg_header(blob)
    except ValueError:
        return None


def jpeg_shape(blob: np.ndarray) -> tuple[int, int] | None:
    """(height, width) from a JPEG's header; None when it cannot be read."""
    header = jpeg_header(blob)
    return None if header is None else header[:2]


def planes_decoder_here() -> bool:
    """Whether libjpeg-turbo's TurboJPEG library, which `decode_jpegs_to_planes` calls, is installed."""
    return _turbojpeg() is not None


def decodes_to_planes(header: tuple[int, int, str, str] | None) -> bool:
    """Whether `decode_jpegs_to_planes` decodes a JPEG with this header: libjpeg-turbo's TurboJPEG library is here,
    and the JPEG is YCbCr 4:2:0 wide enough (5 pixels) for libjpeg's fancy upsampling, which
    vidssl.training.batch_frames.planes_rgb repeats."""
    return header is not None and header[2:] == ("YCbCr", "420") and header[1] > 4 and planes_decoder_here()


def decode_jpegs_to_planes(blobs: list[np.ndarray], luma: np.ndarray, chroma: np.ndarray) -> bool:
    """Decode YCbCr 4:2:0 JPEGs (`decodes_to_planes`) to their planes as stored, without upsampling or colour
    conversion (half the bytes of RGB, and less work): JPEG i's Y into luma[i] (N x H x W uint8, H and W even) and its
    Cb and Cr into chroma[i] (N x 2 x H/2 x W/2), each at the top left, rows of unit stride. False where one is too
    large, not sequential (a progressive JPEG cut short decodes differently in libjpeg-turbo 2.1 and 3.x, whose RGB
    decode the planes must match), or does not decode cleanly (libjpeg's warnings included, as `decode_jpeg` refuses
    them). Each frame gets a fresh decompressor: libjpeg keeps tables from one image for the next (abbreviated
    streams), so a frame missing its own would decode with its predecessor's."""
    lib = _turbojpeg()
    n, height, width = luma.shape
    if (lib is None or luma.dtype != np.uint8 or chroma.dtype != np.uint8 or height % 2 or width % 2
            or chroma.shape != (n, 2, height // 2, width // 2) or luma.strides[2] != 1 or chroma.strides[3] != 1):
        return False
    strides = (ctypes.c_int * 3)(luma.strides[1], chroma.strides[2], chroma.strides[2])
    y, c = luma.ctypes.data, chroma.ctypes.data
    for i, blob in enumerate(blobs):
        header, blob = jpeg_header(blob), np.ascontiguousarray(blob)
        if not decodes_to_planes(header) or header[0] > height or header[1] > width or not sequential_jpeg(blob):
            return False
        cb = c + i * chroma.strides[0]
        planes = (ctypes.c_void_p * 3)(y + i * luma.strides[0], cb, cb + chroma.strides[1])
        handle = lib.tjInitDecompress()
        if not handle:
            return False
        try:
            if lib.tjDecompressToYUVPlanes(handle, blob.ctypes.data, blob.size, planes, header[1], strides, header[0],
                                           0):
                return False
        finally:
            lib.tjDestroy(handle)
    return True


def sequential_jpeg(blob: np.ndarray) -> bool:
    """Whether a JPEG's frame is sequential (SOF0 baseline or SOF1 extended, Huffman-coded), from its markers."""
    data, i = memoryview(blob), 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # a fill byte
            i += 1
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            return marker in (0xC0, 0xC1)
        elif marker in (0xD9, 0xDA):  # the image or its scan before a frame header
            return False
        else:
            i += 2 + (data[i + 2] << 8 | data[i + 3])
    return False


@functools.cache
def _turbojpeg() -> ctypes.CDLL | None:
    """libjpeg-turbo's TurboJPEG library (Debian: libturbojpeg0; conda-forge: libjpeg-turbo), or None: its 2.x API,
    which 3.x keeps."""
    names = (ctypes.util.find_library("turbojpeg"), "libturbojpeg.so.0", os.path.join(sys.prefix, "lib",
                                                                                      "libturbojpeg.so.0"))
    for name in filter(None, names):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        return None
    lib.tjInitDecompress.restype = ctypes.c_void_p
    lib.tjDestroy.argtypes = [ctypes.c_void_p]
    lib.tjDecompressToYUVPlanes.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong,
                                            ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                            ctypes.c_int, ctypes.c_int]
    return lib
