"""Loading portraits: image files and arrays as uint8 [H, W, 3] RGB.

Files are sniffed first (HEIC, video, PDF, SVG, web pages and text get their own message), then
decoded by Pillow with the EXIF orientation applied; arrays of any common dtype and channel
count are converted. Every failure is an InputError "<path>: <what is wrong>. <what to do>".
"""

from __future__ import annotations

import logging
import os
import struct
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facecast.errors import InputError

log = logging.getLogger(__name__)

ImageInput = Union[str, os.PathLike, np.ndarray]
"""A path to an image file, or an image array (see ``load_image``)."""

ARRAY_SOURCE = "<array>"

MAX_IMAGE_PIXELS = 80_000_000
"""Larger images are refused: nobody's portrait needs more, and decoding one costs GBs of RAM."""
BACKGROUND_RGB = (128, 128, 128)
"""Transparent pixels are composited on mid grey: neutral for the face detector and the
renderer (white or black would create an artificial high-contrast silhouette)."""


def load_image(path: ImageInput) -> np.ndarray:
    """Read an image file (or take an array) as uint8 [H, W, 3] RGB.

    Files are decoded by Pillow with the EXIF orientation applied; grayscale, palette, CMYK and
    16-bit images are converted to 8-bit RGB; transparency is composited on ``BACKGROUND_RGB``.
    Arrays may be [H, W], [H, W, 1|3|4] of uint8, uint16 or float in [0, 1] (a C-contiguous
    uint8 [H, W, 3] array is returned as is, not copied).

    Raises InputError (message: "<path>: <what is wrong>. <what to do>") for a missing file, a
    directory, an empty file, something that is not an image or is damaged, an unsupported
    format, or an image over ``MAX_IMAGE_PIXELS``.
    """
    if isinstance(path, np.ndarray):
        return array_to_rgb(path, ARRAY_SOURCE)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_image expects a path or a numpy array, got {type(path).__name__}")
    return _read_image_file(Path(path))


def as_image(image: ImageInput, source: str | None) -> tuple[np.ndarray, str]:
    """(uint8 [H, W, 3] RGB, source name) for a path or an array."""
    if isinstance(image, np.ndarray):
        name = source or ARRAY_SOURCE
        return array_to_rgb(image, name), name
    name = source or str(image)
    return load_image(image), name


def _read_image_file(path: Path) -> np.ndarray:
    name = str(path)
    if not path.exists():
        raise InputError(f"{name}: no such file. Check the path (relative paths start at {os.getcwd()})")
    if path.is_dir():
        raise InputError(f"{name}: is a directory, not an image. Pass an image file (JPEG, PNG, WebP ...)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{name}: cannot be read (permission denied). Check the file's permissions")
    if path.stat().st_size == 0:
        raise InputError(f"{name}: the file is empty (0 bytes). Re-export or re-download the image")
    with path.open("rb") as f:
        head = f.read(512)
    unsupported = _sniff_unsupported(head)
    if unsupported:
        raise InputError(f"{name}: {unsupported}")

    too_large = (
        f"{name}: the image is too large (over {MAX_IMAGE_PIXELS // 1_000_000} megapixels, or a "
        "decompression bomb). Downscale it to a few megapixels first"
    )
    try:
        # Pillow only *warns* between its own limit and twice that; make it an error so that a
        # huge image is refused before its pixels are decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise InputError(f"{too_large} ({w}x{h})")
                if w < 1 or h < 1:
                    raise InputError(f"{name}: the image has no pixels ({w}x{h}). Use a real photo")
                im.load()
                if getattr(im, "n_frames", 1) > 1:  # animated GIF, WebP or PNG
                    log.warning("%s: an animated image (%d frames): its first frame is the portrait", name,
                                im.n_frames)
                im = _apply_exif_orientation(im, name)
                return _pil_to_rgb(im, name)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(too_large) from None
    except UnidentifiedImageError:
        todo = "Use a JPEG, PNG or WebP photo"
        if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
            # What a failed download of an image URL usually leaves behind.
            what, todo = "is a web page (HTML), not an image", "Download the image itself, not the page"
        elif _looks_like_text(head):
            what = "is a text file, not an image"
        else:
            what = "is not an image, or is in a format this program cannot read"
        raise InputError(f"{name}: {what}. {todo}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        # Pillow reports truncated/corrupt data as OSError (or SyntaxError/ValueError from some
        # decoders); PermissionError was ruled out above.
        raise InputError(
            f"{name}: the image data is damaged or truncated ({e}). Re-export or re-download the image"
        ) from None


def _sniff_unsupported(head: bytes) -> str | None:
    """A specific message for common files Pillow cannot (or should not) read, else None."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"):
            return "HEIC/HEIF images are not supported. Convert it to JPEG or PNG (e.g. export from Photos)"
        if brand not in (b"avif", b"avis"):
            return "is a video (MP4/MOV), not an image. Pass a still photo, or extract a frame first"
    if head.startswith(b"%PDF"):
        return "is a PDF document, not an image. Export the page as PNG or JPEG"
    text = head.lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "SVG vector images are not supported. Export it as PNG"
    return None


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character may be cut at the end of the sample.
        try:
            head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def _apply_exif_orientation(im: Image.Image, name: str) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except (ValueError, SyntaxError, KeyError, TypeError, struct.error) as e:
        # A malformed EXIF block should not cost the user the photo; the pixels are fine.
        log.warning("%s: cannot read the EXIF orientation (%s); using the image as stored", name, e)
        return im


def _pil_to_rgb(im: Image.Image, name: str) -> np.ndarray:
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return array_to_rgb(np.asarray(im), name)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        return array_to_rgb(np.asarray(im.convert("RGBA")), name)
    return np.array(im.convert("RGB"), dtype=np.uint8)  # a writable copy (asarray is read-only)


def array_to_rgb(a: np.ndarray, name: str) -> np.ndarray:
    """uint8 [H, W, 3] from [H, W] / [H, W, 1|3|4] arrays of uint8, uint16, int or float."""
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise InputError(
            f"{name}: an image array must be [H, W], [H, W, 3] or [H, W, 4], got shape "
            f"{tuple(a.shape)}. Pass an RGB image"
        )
    h, w = a.shape[:2]
    if h < 1 or w < 1:
        raise InputError(f"{name}: the image has no pixels ({w}x{h}). Use a real photo")
    if h * w > MAX_IMAGE_PIXELS:
        raise InputError(
            f"{name}: the image is too large ({w}x{h}, over {MAX_IMAGE_PIXELS // 1_000_000} megapixels). "
            "Downscale it first"
        )
    if a.dtype == np.uint8:
        u8 = a
    elif a.dtype == np.bool_:
        u8 = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        u8 = _round_u8(a.astype(np.float32) / 257.0)
    elif np.issubdtype(a.dtype, np.integer):
        # Pillow's mode "I" (32-bit) holds 16-bit data in some files, 8-bit in others.
        top = 255.0 if a.max(initial=0) <= 255 else 65535.0
        u8 = _round_u8(np.clip(a, 0, top).astype(np.float32) * (255.0 / top))
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise InputError(f"{name}: the image contains NaN or infinite values. Pass a valid image")
        top = 1.0 if a.max(initial=0.0) <= 1.0 else 255.0
        u8 = _round_u8(np.clip(a, 0.0, top) * (255.0 / top))
    else:
        raise InputError(f"{name}: unsupported image array dtype {a.dtype}. Pass uint8 RGB")
    if u8.shape[2] == 1:
        u8 = np.repeat(u8, 3, axis=2)
    elif u8.shape[2] == 4:
        alpha = u8[:, :, 3:4].astype(np.float32) / 255.0
        bg = np.asarray(BACKGROUND_RGB, np.float32)
        u8 = _round_u8(u8[:, :, :3].astype(np.float32) * alpha + bg * (1.0 - alpha))
    return np.ascontiguousarray(u8, dtype=np.uint8)


def _round_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)

