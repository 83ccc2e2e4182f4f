"""Faces: loading portraits, finding and framing the face, tracking it through a video.

Coordinates are pixels of the image the landmarks belong to: x right, y down, with the
*pixel-edge* convention (pixel ``i`` covers ``[i, i + 1)``, the image spans ``[0, W] x [0, H]``),
z in the same pixel scale as x (smaller = nearer the camera).  "Right"/"left" in names of landmark
groups are the *subject's* (mediapipe's convention): in an unmirrored frontal photo the subject's
right eye is on the image's left.

Public API::

    load_image(path_or_array) -> uint8 [H, W, 3] RGB
    FaceTracker (protocol), MediapipeFaceMesh (context manager holding mediapipe graphs;
        its settings in .options, a frozen MeshOptions)
    find_face(image, *, source, face_index, min_face_px, tracker) -> FaceLandmarks
    frame_portrait(image, face, *, size, source) -> Portrait
    track_video(frames, *, fps, smooth) -> (points float32 [N, 478, 3], found bool [N])
    mouth_metrics(points) -> dict of float32 arrays
    landmark index groups (LIPS_*, *_EYE_*, FACE_OVAL, JAW_LOWER, CHIN, NOSE_TIP, IRISES ...)

The mediapipe graphs are not thread-safe: use one ``MediapipeFaceMesh`` per thread.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import struct
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from facecast.errors import InputError, NoFaceError
from facecast.options import MeshOptions
from facecast.types import FaceLandmarks, Portrait, VideoFrames

log = logging.getLogger(__name__)

ImageInput = Union[str, os.PathLike, np.ndarray]
"""A path to an image file, or an image array (see ``load_image``)."""

ARRAY_SOURCE = "<array>"

NUM_LANDMARKS = 478

# ---------------------------------------------------------------------------------------------
# Landmark index groups (mediapipe face mesh, 478 points with refine_landmarks=True).
# Orderings were checked on real photos (see tests/test_face.py::test_landmark_orderings):
# the lip, eye and jaw chains run from the subject's right to the subject's left, i.e. left to
# right in the image for an unmirrored frontal face; upper/lower chains share their end points,
# so ``UPPER + LOWER[::-1]`` (without repeating the corners) is a closed polygon.

LIPS_OUTER_UPPER: tuple[int, ...] = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
"""Outer edge of the upper lip, from the subject's right mouth corner (61) to the left (291)."""
LIPS_OUTER_LOWER: tuple[int, ...] = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
"""Outer edge of the lower lip, corner 61 to corner 291."""
LIPS_INNER_UPPER: tuple[int, ...] = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
"""Inner edge (the mouth opening) of the upper lip, inner corner 78 to inner corner 308."""
LIPS_INNER_LOWER: tuple[int, ...] = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
"""Inner edge of the lower lip, 78 to 308; point k sits below LIPS_INNER_UPPER[k]."""

RIGHT_EYE_UPPER: tuple[int, ...] = (33, 246, 161, 160, 159, 158, 157, 173, 133)
"""Subject's right upper eyelid, outer corner 33 to inner corner 133."""
RIGHT_EYE_LOWER: tuple[int, ...] = (33, 7, 163, 144, 145, 153, 154, 155, 133)
"""Subject's right lower eyelid, 33 to 133; point k sits below RIGHT_EYE_UPPER[k]."""
LEFT_EYE_UPPER: tuple[int, ...] = (362, 398, 384, 385, 386, 387, 388, 466, 263)
"""Subject's left upper eyelid, inner corner 362 to outer corner 263."""
LEFT_EYE_LOWER: tuple[int, ...] = (362, 382, 381, 380, 374, 373, 390, 249, 263)
"""Subject's left lower eyelid, 362 to 263; point k sits below LEFT_EYE_UPPER[k]."""

FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
"""Face outline as a closed loop (the last point connects back to the first), starting at the
top of the forehead (10) and going towards the subject's left (image right), down to the chin
(152) and back up the subject's right side."""
JAW_LOWER: tuple[int, ...] = (172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397)
"""The part of FACE_OVAL below the mouth corners, from the subject's right jaw (172) through the
chin (152) to the left jaw (397): an open chain. (The next oval points, 58 and 288, are at the
mouth-corner height, above it on some faces, below on others.)"""

CHIN = 152
"""Lowest point of the chin on the face outline."""
NOSE_TIP = 1
RIGHT_IRIS: tuple[int, ...] = (468, 469, 470, 471, 472)
"""Subject's right iris: centre first, then 4 points on its edge."""
LEFT_IRIS: tuple[int, ...] = (473, 474, 475, 476, 477)
"""Subject's left iris: centre first, then 4 points on its edge."""
IRISES: tuple[int, ...] = RIGHT_IRIS + LEFT_IRIS

# The eye centres FaceLandmarks.interocular uses (outer + inner corner means).
_RIGHT_EYE_CORNERS = (33, 133)
_LEFT_EYE_CORNERS = (263, 362)

# ---------------------------------------------------------------------------------------------
# Limits and framing constants.

MAX_IMAGE_PIXELS = 80_000_000
"""Larger images are refused: nobody's portrait needs more, and decoding one costs GBs of RAM."""
DETECT_MAX_SIDE = 1024
"""Detection runs on a copy downscaled (area average) to this longer side. mediapipe samples
its 128-192 px model inputs from the image without antialiasing, so a face far larger than that
comes out aliased: on the 3511 px test photo, full-resolution landmarks disagree with a
re-detection on the framed portrait by 1.2 % of the inter-ocular distance, against 0.5 % from
the 1024 px copy. (mediapipe itself is fast at any size; the downscale costs ~70 ms on 12 MP.)"""
PORTRAIT_MAX_SIDE = 1024
"""frame_portrait(size=None) downscales to this longer side."""
BACKGROUND_RGB = (128, 128, 128)
"""Transparent pixels are composited on mid grey: neutral for the face detector and the
renderer (white or black would create an artificial high-contrast silhouette)."""

# Face width (landmark bbox) as a fraction of the framed square: 45 % when the image has room,
# up to 50 % before the image has to be padded.
_FACE_FRACTION_MIN = 0.45
_FACE_FRACTION_MAX = 0.50
# Height of the eye line in the framed square, from the top: a bit above the centre, which
# leaves room for the hair above and chin + neck below.
_EYE_LINE = 0.42
# Padding wider than this fraction of the square is done by edge replication: a wide reflection
# would mirror shoulders or a second copy of the head into the picture.
_REFLECT_MAX_FRACTION = 0.10

# Fallback detection: crop side as a multiple of the detector's box (which covers brows to
# chin only), so that the whole head and some context fit in the crop the mesh sees.
_CROP_PER_BOX = 2.2
# Faces narrower than this fraction of the image's longer side get a second, framed pass.
# Measured against a re-detection on the framed portrait: a face at 14 % of a 1080x1920 frame
# was off by 3 % IOD, 0.5-1 % after the second pass; faces at 26-36 % of the image were within
# 0.9-1.4 % without it, and the second pass did not improve them.
_REFINE_BELOW = 0.25
# Crops for the mesh need no more pixels than this: its models look at 128-192 px.
_CROP_MAX_SIDE = 512
# The detector works on 192x192; feeding it more is a waste of copying.
_DETECTOR_INPUT_SIDE = 384
_TILE_MIN_SIDE = 512


# ---------------------------------------------------------------------------------------------
# Loading images


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
        return _array_to_rgb(path, ARRAY_SOURCE)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_image expects a path or a numpy array, got {type(path).__name__}")
    return _read_image_file(Path(path))


def _as_image(image: ImageInput, source: str | None) -> tuple[np.ndarray, str]:
    """(uint8 [H, W, 3] RGB, source name) for a path or an array."""
    if isinstance(image, np.ndarray):
        name = source or ARRAY_SOURCE
        return _array_to_rgb(image, name), name
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
        return _array_to_rgb(np.asarray(im), name)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        return _array_to_rgb(np.asarray(im.convert("RGBA")), name)
    return np.array(im.convert("RGB"), dtype=np.uint8)  # a writable copy (asarray is read-only)


def _array_to_rgb(a: np.ndarray, name: str) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------------
# Face detection / landmarks


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence file descriptor 2 while mediapipe's C++ code runs: its TFLite/absl layers print
    INFO/WARNING lines ("Created TensorFlow Lite XNNPACK delegate", "Feedback manager ...") that
    Python logging cannot turn off. Set FACECAST_NATIVE_LOGS=1 to see them."""
    if os.environ.get("FACECAST_NATIVE_LOGS") == "1":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters, some test runners)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class FaceTracker(Protocol):
    """Something that finds faces and their 478 mediapipe landmarks in an RGB image."""

    def detect(self, image: np.ndarray, *, source: str) -> list[FaceLandmarks]:
        """All faces in ``image`` (uint8 [H, W, 3] RGB), largest first, landmarks in its pixels."""
        ...


class MediapipeFaceMesh:
    """mediapipe face mesh (legacy ``solutions`` API, models shipped in the wheel).

    ``static_image_mode=True`` treats every image on its own (photos); ``False`` tracks the face
    from frame to frame (video: faster, steadier, and frames must come in order).

    Detection runs on a copy downscaled to ``detect_max_side``, and landmarks are mapped back to
    the full image's pixels. In static mode, a face narrower than 25 % of the image's longer
    side is measured again on a crop framed around it (the mesh is more precise when the face
    fills its view). When the mesh finds nothing (a small face in a large frame: the mesh's own
    detector is a short-range model), mediapipe's full-range face detector looks for faces, on
    the whole image and then on overlapping tiles, and the mesh runs on a crop around each.

    Holds native graphs: use it as a context manager or call ``close()``. Not thread-safe.
    """

    def __init__(
        self,
        *,
        static_image_mode: bool = True,
        max_faces: int = 5,
        refine_landmarks: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        detect_max_side: int = DETECT_MAX_SIDE,
    ) -> None:
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        if detect_max_side < 128:
            raise ValueError(f"detect_max_side must be >= 128, got {detect_max_side}")
        self.options = MeshOptions(
            static_image_mode, max_faces, refine_landmarks, min_detection_confidence,
            min_tracking_confidence, detect_max_side,
        )
        # Imported here: mediapipe takes ~1 s to import, and most facecast commands (--help,
        # audio-only steps) never need it.
        import mediapipe as mp

        self._mp = mp
        self._mesh = self._new_mesh(static_image_mode, max_faces)
        self._crop_mesh = None  # static single-face mesh for fallback crops, made on first use
        self._detector = None  # full-range face detector for the fallback, made on first use
        self._closed = False

    def _new_mesh(self, static: bool, max_faces: int):
        o = self.options
        with quiet_native_stderr():
            return self._mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=max_faces,
            refine_landmarks=o.refine_landmarks,
            min_detection_confidence=o.min_detection_confidence,
            min_tracking_confidence=o.min_tracking_confidence,
            )

    def __enter__(self) -> MediapipeFaceMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the native graphs (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for graph in (self._mesh, self._crop_mesh, self._detector):
            if graph is not None:
                graph.close()
        self._mesh = self._crop_mesh = self._detector = None

    def detect(self, image: np.ndarray, *, source: str = ARRAY_SOURCE) -> list[FaceLandmarks]:
        """All faces in ``image`` (uint8 [H, W, 3] RGB), largest (landmark bbox area) first.

        Landmarks are float32 [478, 3] in ``image``'s pixels (z scaled like x).
        """
        if self._closed:
            raise RuntimeError("MediapipeFaceMesh is closed")
        rgb = _array_to_rgb(image, source)
        h, w = rgb.shape[:2]
        if min(h, w) < 8:
            return []  # nothing to find, and mediapipe's resamplers misbehave on tiny inputs
        small = _downscale(rgb, self.options.detect_max_side)
        faces = self._mesh_faces(self._mesh, small, (0.0, 0.0, float(w), float(h)), (w, h))
        if not faces:
            log.debug("%s: the face mesh found no face in %dx%d; trying the full-range detector",
                      source, w, h)
            faces = self._faces_via_detector(rgb, small)
        elif self.options.static_image_mode:
            faces = [self._refine(rgb, f) for f in faces]
        faces.sort(key=_bbox_area, reverse=True)
        return faces

    def _mesh_faces(self, mesh, rgb: np.ndarray, box: tuple[float, float, float, float],
                    image_size: tuple[int, int]) -> list[FaceLandmarks]:
        """Run ``mesh`` on ``rgb``, which shows ``box`` = (x0, y0, width, height) of the full
        image in full-image pixels; return landmarks in full-image pixels."""
        with quiet_native_stderr():
            result = mesh.process(rgb)
        faces = []
        x0, y0, bw, bh = box
        for lms in result.multi_face_landmarks or ():
            rel = np.array([(p.x, p.y, p.z) for p in lms.landmark], dtype=np.float64)
            if rel.shape[0] < NUM_LANDMARKS:
                rel = _add_iris_estimates(rel)
            pts = np.empty((NUM_LANDMARKS, 3), np.float64)
            # Normalised coordinates span the whole input, so the downscale cancels exactly;
            # mediapipe's z is normalised by the input width, like x.
            pts[:, 0] = x0 + rel[:, 0] * bw
            pts[:, 1] = y0 + rel[:, 1] * bh
            pts[:, 2] = rel[:, 2] * bw
            faces.append(FaceLandmarks(points=pts.astype(np.float32), image_size=image_size))
        return faces

    def _refine(self, rgb: np.ndarray, face: FaceLandmarks) -> FaceLandmarks:
        """Landmarks again, from a crop framed around ``face``, when it is small in the image.

        The mesh's landmarks depend on the region its detector proposes; for a face that is a
        small part of the image (the detector sees it at ~20 px) that region is loose and the
        landmarks are off by ~3 % of the inter-ocular distance compared with a detection on a
        framed portrait. A crop like the framing (face ~45 % of it) fixes that; this is what
        tracking mode does on its own from the second frame on.
        """
        h, w = rgb.shape[:2]
        x0, _, x1, _ = face.bbox
        face_w = x1 - x0
        if face_w >= _REFINE_BELOW * max(w, h):
            return face
        # Framed like frame_portrait frames it, so that a detection on the framed portrait
        # sees the same region (the two then agree to ~1 % IOD instead of ~3 %).
        side = face_w / _FACE_FRACTION_MIN
        fx0, fy0 = _framing_origin(face, side)
        # Shifted inside the image rather than clipped, so that the face stays ~45 % of it.
        cx0 = int(round(min(max(fx0, 0), max(0, w - side))))
        cy0 = int(round(min(max(fy0, 0), max(0, h - side))))
        cx1, cy1 = min(w, cx0 + int(round(side))), min(h, cy0 + int(round(side)))
        if self._crop_mesh is None:
            self._crop_mesh = self._new_mesh(static=True, max_faces=1)
        crop = _downscale(np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1]), _CROP_MAX_SIDE)
        found = self._mesh_faces(
            self._crop_mesh, crop, (float(cx0), float(cy0), float(cx1 - cx0), float(cy1 - cy0)), (w, h)
        )
        if found and _iou(found[0].bbox, face.bbox) > 0.5:
            return found[0]
        return face  # the crop lost it (should not happen): keep the first estimate

    def _faces_via_detector(self, rgb: np.ndarray, small: np.ndarray) -> list[FaceLandmarks]:
        """Fallback for faces the mesh's short-range detector misses: find them with the
        full-range detector (whole image, then overlapping tiles for faces under ~5 % of the
        frame), and run the mesh on a crop around each."""
        if self._detector is None:
            # model_selection=1: the full-range model (faces up to ~5 m), which the mesh lacks.
            with quiet_native_stderr():
                self._detector = self._mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=self.options.min_detection_confidence
                )
        h, w = rgb.shape[:2]
        boxes = self._detect_boxes(small, (0, 0, w, h))
        if not boxes:
            for tile in _tiles(w, h):
                tx0, ty0, tx1, ty1 = tile
                view = _downscale(np.ascontiguousarray(rgb[ty0:ty1, tx0:tx1]), _DETECTOR_INPUT_SIDE)
                boxes += self._detect_boxes(view, tile)
        if not boxes:
            return []
        if self._crop_mesh is None:
            self._crop_mesh = self._new_mesh(static=True, max_faces=1)
        kept: list[tuple[float, float, float, float, float]] = []
        for box in sorted(boxes, key=lambda b: -b[0]):  # best score first; overlapping tiles
            if all(_iou(box[1:], k[1:]) < 0.3 for k in kept):  # see the same face twice
                kept.append(box)
        faces: list[FaceLandmarks] = []
        for _, bx0, by0, bx1, by1 in kept[: self.options.max_faces]:
            cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
            side = _CROP_PER_BOX * max(bx1 - bx0, by1 - by0)
            x0, y0 = max(0, math.floor(cx - side / 2)), max(0, math.floor(cy - side / 2))
            x1, y1 = min(w, math.ceil(cx + side / 2)), min(h, math.ceil(cy + side / 2))
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            crop = _downscale(np.ascontiguousarray(rgb[y0:y1, x0:x1]), _CROP_MAX_SIDE)
            found = self._mesh_faces(
                self._crop_mesh, crop, (float(x0), float(y0), float(x1 - x0), float(y1 - y0)), (w, h)
            )
            for face in found:
                if all(_iou(face.bbox, f.bbox) < 0.5 for f in faces):
                    faces.append(face)
        return faces

    def _detect_boxes(self, view: np.ndarray, region: tuple[int, int, int, int]
                      ) -> list[tuple[float, float, float, float, float]]:
        """Detector boxes (score, x0, y0, x1, y1) in full-image pixels; ``view`` shows
        ``region`` = (x0, y0, x1, y1) of the full image, at any scale."""
        rx0, ry0, rx1, ry1 = region
        rw, rh = rx1 - rx0, ry1 - ry0
        boxes = []
        with quiet_native_stderr():
            detections = self._detector.process(view).detections
        for det in detections or ():
            rb = det.location_data.relative_bounding_box
            x0, y0 = rx0 + rb.xmin * rw, ry0 + rb.ymin * rh
            boxes.append((float(det.score[0]), x0, y0, x0 + rb.width * rw, y0 + rb.height * rh))
        return boxes


def _tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (x0, y0, x1, y1) covering a w x h image, a third of its shorter
    side (at least 512 px) each: a 64 px face becomes >= 10 % of a tile, which the full-range
    detector finds reliably, while it misses faces under ~4 % of its input."""
    side = min(max(_TILE_MIN_SIDE, min(w, h) // 3), w, h)
    stride = side * 3 // 4  # 25 % overlap, so that a face cut by one tile is whole in the next

    def starts(extent: int) -> list[int]:
        n = max(1, math.ceil((extent - side) / stride) + 1)
        return sorted({round(i * (extent - side) / max(1, n - 1)) for i in range(n)})

    return [(x, y, x + side, y + side) for y in starts(h) for x in starts(w)]


def _add_iris_estimates(rel: np.ndarray) -> np.ndarray:
    """[468, 3] -> [478, 3]: without refine_landmarks mediapipe has no iris points; put all 5
    points of each iris at the centre of its eye contour so that shapes stay [478, 3]."""
    out = np.empty((NUM_LANDMARKS, 3), rel.dtype)
    out[: rel.shape[0]] = rel
    right = rel[list(RIGHT_EYE_UPPER + RIGHT_EYE_LOWER)].mean(axis=0)
    left = rel[list(LEFT_EYE_UPPER + LEFT_EYE_LOWER)].mean(axis=0)
    out[list(RIGHT_IRIS)] = right
    out[list(LEFT_IRIS)] = left
    return out


def _downscale(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Area-averaged copy with the longer side <= max_side (the input itself when small)."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return rgb
    import cv2  # installed with mediapipe

    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _bbox_area(face: FaceLandmarks) -> float:
    x0, y0, x1, y1 = face.bbox
    return (x1 - x0) * (y1 - y0)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def find_face(
    image: ImageInput,
    *,
    source: str | None = None,
    face_index: int | None = None,
    min_face_px: int = 64,
    tracker: FaceTracker | None = None,
) -> FaceLandmarks:
    """The face to animate in a portrait, with its landmarks in the image's pixels.

    image: a path or uint8 [H, W, 3] RGB array (``source`` names it in messages; defaults to
        the path or "<array>").
    face_index: which face when there are several, numbered left to right from 0 (the CLI's
        ``--face N``); None = the largest, with a logged warning when there are several.
    min_face_px: smallest usable face width (landmark bbox) in pixels.
    tracker: a FaceTracker to reuse; None = a MediapipeFaceMesh made (and closed) for this call.

    Raises NoFaceError when there is no face, or the chosen one is narrower than min_face_px;
    InputError when face_index is out of range.
    """
    rgb, name = _as_image(image, source)
    if tracker is None:
        with MediapipeFaceMesh(static_image_mode=True) as own:
            faces = own.detect(rgb, source=name)
    else:
        faces = tracker.detect(rgb, source=name)
    h, w = rgb.shape[:2]
    if not faces:
        size_hint = ""
        if min(w, h) < min_face_px:
            size_hint = f" in this {w}x{h} image, which is smaller than a usable face"
        raise NoFaceError(
            f"{name}: no face found{size_hint}. Use a photo where one face is clearly visible, "
            f"frontal, at least {min_face_px} pixels wide"
        )
    by_position = sorted(faces, key=lambda f: (f.bbox[0] + f.bbox[2]) / 2)
    if face_index is not None:
        if not 0 <= face_index < len(by_position):
            raise InputError(
                f"{name}: face {face_index} does not exist: {len(by_position)} face(s) found, "
                f"numbered 0 to {len(by_position) - 1} from left to right. Pass --face with a "
                "number in that range"
            )
        face = by_position[face_index]
    else:
        face = faces[0]  # detect() returns the largest first
        if len(faces) > 1:
            log.warning(
                "%s: %d faces found; using the largest, face %d (faces are numbered from 0, left "
                "to right). Pass --face N to choose another.",
                name, len(faces), next(i for i, f in enumerate(by_position) if f is face),
            )
    x0, _, x1, _ = face.bbox
    width = x1 - x0
    if width < min_face_px:
        raise NoFaceError(
            f"{name}: the face is only {width:.0f} pixels wide, too small to animate; at least "
            f"{min_face_px} pixels are needed. Use a larger photo, or one taken closer"
        )
    return face


# ---------------------------------------------------------------------------------------------
# Framing


def frame_portrait(
    image: ImageInput,
    face: FaceLandmarks,
    *,
    size: int | None = 512,
    source: str = "",
) -> Portrait:
    """Crop and resize a portrait for rendering; the landmarks are transformed, not re-detected.

    image: the path or uint8 [H, W, 3] RGB array ``face`` was found in.
    size: output side in pixels (even): a size x size square with the face (landmark bbox)
        45-50 % of its width, the eyes at 42 % of its height; the square is shifted to stay
        inside the image, and where the image is too small it is padded (noted in ``notes``).
        None: keep the whole image, downscaled so its longer side is <= 1024; sides made even.
    Output sides are always even (H.264 needs them so).
    """
    rgb, name = _as_image(image, source or None)
    h, w = rgb.shape[:2]
    if face.image_size != (w, h):
        raise ValueError(f"face was found in a {face.image_size} image, but this one is {(w, h)}")
    if size is None:
        return _fit_whole(rgb, face, name)
    if isinstance(size, bool) or not isinstance(size, int) or size < 64 or size % 2:
        raise InputError(
            f"size={size!r}: the output size must be an even number of pixels >= 64 (H.264 "
            "needs even sides). Use e.g. 512"
        )

    notes: list[str] = []
    fx0, _, fx1, _ = face.bbox
    face_w = fx1 - fx0
    # As much context as the image allows, between the two face fractions.
    side = min(max(min(w, h), face_w / _FACE_FRACTION_MAX), face_w / _FACE_FRACTION_MIN)
    side = max(2, int(round(side)))
    x0, y0 = _framing_origin(face, side)
    # Shift the square inside the image; if it is larger than the image, cover all of it and
    # pad as little as possible.
    x0 = int(round(min(max(x0, min(0, w - side)), max(0, w - side))))
    y0 = int(round(min(max(y0, min(0, h - side)), max(0, h - side))))
    pad = (max(0, -y0), max(0, y0 + side - h), max(0, -x0), max(0, x0 + side - w))  # t, b, l, r
    if any(pad):
        how = "reflect" if max(pad) <= _REFLECT_MAX_FRACTION * side else "edge"
        rgb = np.pad(rgb, ((pad[0], pad[1]), (pad[2], pad[3]), (0, 0)), mode=how)
        notes.append(
            f"the image is too small for the framing: padded by {how} "
            f"(top {pad[0]}, bottom {pad[1]}, left {pad[2]}, right {pad[3]} px)"
        )
        crop = rgb[y0 + pad[0]: y0 + pad[0] + side, x0 + pad[2]: x0 + pad[2] + side]
    else:
        crop = rgb[y0: y0 + side, x0: x0 + side]
    scale = size / side
    if scale > 1.25:
        notes.append(f"upscaled {scale:.1f}x from a {side} px crop: the face is small, expect a soft picture")
    out = _resize(crop, size, size)
    pts = face.points.astype(np.float64)
    pts[:, 0] = (pts[:, 0] - x0) * scale
    pts[:, 1] = (pts[:, 1] - y0) * scale
    pts[:, 2] = pts[:, 2] * scale
    return Portrait(
        image=out,
        face=FaceLandmarks(points=pts.astype(np.float32), image_size=(size, size)),
        source=name,
        notes=tuple(notes),
    )


def _framing_origin(face: FaceLandmarks, side: float) -> tuple[float, float]:
    """Top-left corner of the side x side framing square: centred on the face horizontally,
    eye line at _EYE_LINE of its height (pixels, may lie outside the image)."""
    fx0, _, fx1, _ = face.bbox
    eyes_y = float(face.points[list(_RIGHT_EYE_CORNERS + _LEFT_EYE_CORNERS), 1].mean())
    return (fx0 + fx1) / 2 - side / 2, eyes_y - _EYE_LINE * side


def _fit_whole(rgb: np.ndarray, face: FaceLandmarks, name: str) -> Portrait:
    h, w = rgb.shape[:2]
    notes: list[str] = []
    scale = PORTRAIT_MAX_SIDE / max(w, h)
    pts = face.points.astype(np.float64)
    if scale < 1.0:
        # Resizing to even sides directly: the aspect changes by < 1 px, handled by separate
        # x/y scales.
        w2 = max(2, int(round(w * scale / 2)) * 2)
        h2 = max(2, int(round(h * scale / 2)) * 2)
        out = _resize(rgb, w2, h2)
        sx, sy = w2 / w, h2 / h
        pts[:, 0] *= sx
        pts[:, 1] *= sy
        pts[:, 2] *= sx
        notes.append(f"downscaled from {w}x{h} to {w2}x{h2}")
    else:
        # No resampling (it would blur the whole picture): drop the last column/row if odd.
        w2, h2 = w - w % 2, h - h % 2
        out = rgb[:h2, :w2].copy()  # never a view of the caller's array
        if (w2, h2) != (w, h):
            notes.append(f"cropped from {w}x{h} to {w2}x{h2} (even sides for H.264)")
    return Portrait(
        image=out,
        face=FaceLandmarks(points=pts.astype(np.float32), image_size=(w2, h2)),
        source=name,
        notes=tuple(notes),
    )


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Lanczos resize (antialiased when shrinking) of uint8 [H, W, 3] to [height, width, 3]:
    always a new, writable array."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb.copy()
    # reducing_gap: a box pre-reduction for large factors; 3.0 stays within 2 grey levels of
    # pure Lanczos and is 2.4x faster framing the 3511 px photo to 512 (73 vs 172 ms).
    im = Image.fromarray(np.ascontiguousarray(rgb)).resize(
        (width, height), Image.Resampling.LANCZOS, reducing_gap=3.0
    )
    return np.array(im, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# Video


# One-Euro filter settings, in inter-ocular distances (IOD) and seconds, so that they do not
# depend on the resolution. Tuned on may_en / hdtf_aoc_en / obama_en (125 frames each) and on a
# still frame with sensor noise: mediapipe's frame-to-frame jitter on a still face is ~0.004 IOD
# (0.1 IOD/s), lips move at 1-3 IOD/s while speaking and a p/b/m closure lasts ~2 frames.
# These values cut the still-face jitter ~3x while changing the mouth opening by <= 0.012 IOD
# (rms 0.004, the size of the raw jitter); a lower beta flattens lip closures visibly (beta=2
# left closed-lip frames at 0.06 IOD open).
_MIN_CUTOFF_HZ = 1.0  # cutoff when still
_BETA = 20.0  # cutoff rises by 20 Hz per IOD/s of speed: speech motion passes nearly unfiltered
_D_CUTOFF_HZ = 8.0  # smoothing of the speed estimate

_MAX_GAP_S = 0.25
"""Gaps (frames with no face) up to this long are interpolated; longer ones are left NaN."""


def track_video(
    frames: Iterable[VideoFrames | np.ndarray | torch.Tensor] | VideoFrames | np.ndarray,
    *,
    fps: float,
    smooth: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks of the (main) face in every frame of a video.

    frames: VideoFrames chunks, uint8 arrays/tensors [n, H, W, 3] RGB or single [H, W, 3]
        frames, in order (or one VideoFrames / one [N, H, W, 3] array).
    fps: frame rate (Hz); the smoother works in seconds.
    smooth: zero-phase One-Euro filter (jitter removal without lag).

    Returns (points, found): points float32 [N, 478, 3] in frame pixels; found bool [N], False
    where no face was detected. Such gaps up to 0.25 s are filled by linear interpolation (held
    at the ends of the video); in longer gaps the points are NaN.

    Uses mediapipe in tracking mode with a fresh graph per call, so the result depends only on
    the frames: the same video gives the same landmarks. One face is tracked (with several
    people, the one mediapipe detects first, kept until it is lost). ~5 ms/frame at 512x512,
    ~17 ms at 1080x1920 on 2 CPU cores.
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    raw: list[np.ndarray | None] = []
    with MediapipeFaceMesh(static_image_mode=False, max_faces=1) as tracker:
        for frame in _iter_frames(frames, fps):
            faces = tracker.detect(frame, source="<video frame>")
            raw.append(faces[0].points if faces else None)
    n = len(raw)
    points = np.full((n, NUM_LANDMARKS, 3), np.nan, np.float32)
    found = np.array([p is not None for p in raw], dtype=bool)
    for i, p in enumerate(raw):
        if p is not None:
            points[i] = p
    points = _fill_gaps(points, found, max_gap=int(round(_MAX_GAP_S * fps)))
    if smooth:
        points = _smooth(points, fps)
    return points, found


def _iter_frames(frames, fps: float) -> Iterable[np.ndarray]:
    if isinstance(frames, (VideoFrames, np.ndarray, torch.Tensor)):
        frames = [frames]
    for chunk in frames:
        if isinstance(chunk, VideoFrames):
            if abs(chunk.fps - fps) > 1e-6 * fps:
                raise ValueError(f"VideoFrames at {chunk.fps} fps passed with fps={fps}")
            chunk = chunk.frames
        if isinstance(chunk, torch.Tensor):
            chunk = chunk.detach().cpu().numpy()
        chunk = np.asarray(chunk)
        if chunk.ndim == 3:
            chunk = chunk[None]
        if chunk.ndim != 4 or chunk.shape[-1] != 3 or chunk.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [n, H, W, 3] RGB, got {chunk.dtype} {chunk.shape}")
        yield from chunk


def _fill_gaps(points: np.ndarray, found: np.ndarray, max_gap: int) -> np.ndarray:
    """Linear interpolation over runs of missing frames no longer than max_gap (runs at the
    start or end are held at the nearest found frame)."""
    n = len(found)
    out = points.copy()
    i = 0
    while i < n:
        if found[i]:
            i += 1
            continue
        j = i
        while j < n and not found[j]:
            j += 1
        # missing run [i, j)
        if j - i <= max_gap:
            if i > 0 and j < n:
                t = (np.arange(i, j) - (i - 1)) / (j - (i - 1))
                out[i:j] = (1 - t)[:, None, None] * points[i - 1] + t[:, None, None] * points[j]
            elif i > 0:
                out[i:j] = points[i - 1]
            elif j < n:
                out[i:j] = points[j]
        i = j
    return out


def _smooth(points: np.ndarray, fps: float) -> np.ndarray:
    """Zero-phase One-Euro filter over each run of finite frames: the mean of a forward and a
    backward pass, whose lags cancel."""
    out = points.copy()
    finite = np.isfinite(points).all(axis=(1, 2))
    i, n = 0, len(finite)
    while i < n:
        if not finite[i]:
            i += 1
            continue
        j = i
        while j < n and finite[j]:
            j += 1
        seg = points[i:j].astype(np.float64)
        iod = float(np.median(mouth_metrics(seg)["interocular"]))
        if j - i >= 3 and iod > 0:
            fwd = _one_euro(seg / iod, fps)
            bwd = _one_euro(seg[::-1] / iod, fps)[::-1]
            out[i:j] = ((fwd + bwd) * (iod / 2)).astype(np.float32)
        i = j
    return out


def _one_euro(x: np.ndarray, fps: float) -> np.ndarray:
    """One-Euro filter (Casiez et al. 2012) of [T, P, 3] along T; the cutoff of each point
    adapts to that point's speed (norm of its 3-D velocity, units of x per second)."""

    def alpha(cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * fps)

    out = np.empty_like(x)
    out[0] = x[0]
    dx = np.zeros(x.shape[1:])
    a_d = alpha(_D_CUTOFF_HZ)
    for t in range(1, len(x)):
        dx = a_d * (x[t] - out[t - 1]) * fps + (1 - a_d) * dx
        speed = np.linalg.norm(dx, axis=-1, keepdims=True)
        a = alpha(_MIN_CUTOFF_HZ + _BETA * speed)
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


# ---------------------------------------------------------------------------------------------
# Measurements

# Central pairs (upper, lower) of the inner lips: the corners say nothing about the opening.
_LIP_PAIRS = [(LIPS_INNER_UPPER[k], LIPS_INNER_LOWER[k]) for k in range(3, 8)]
_RIGHT_LID_PAIRS = [(RIGHT_EYE_UPPER[k], RIGHT_EYE_LOWER[k]) for k in range(2, 7)]
_LEFT_LID_PAIRS = [(LEFT_EYE_UPPER[k], LEFT_EYE_LOWER[k]) for k in range(2, 7)]


def mouth_metrics(points: np.ndarray) -> dict[str, np.ndarray]:
    """Mouth and eye openings of landmarks [N, 478, 3] (or one face [478, 3]), in units that do
    not depend on the image size or head roll.

    Returns float32 arrays [N] (0-d for one face):
      mouth_open: mean gap between the inner upper and lower lip over the 5 central pairs,
          measured along the face's vertical axis (perpendicular to the eye line), / IOD.
          Observed: 0.000-0.03 on closed-mouth photos, 0.12-0.2 showing teeth, 0-0.3 during
          speech; slightly negative when the lips press together.
      mouth_width: outer corner (61) to corner (291) distance / IOD (0.73-0.88 on neutral
          photos, ~0.95 smiling).
      eye_open_right, eye_open_left: lid gap (5 central pairs) / that eye's corner-to-corner
          width (0.18-0.30 open on the test photos, <= 0.05 at the bottom of a blink);
          subject's right/left.
      interocular: IOD in pixels (as FaceLandmarks.interocular).
    NaN landmarks give NaN metrics.
    """
    p = np.asarray(points, dtype=np.float64)
    single = p.ndim == 2
    if single:
        p = p[None]
    if p.ndim != 3 or p.shape[1] != NUM_LANDMARKS or p.shape[2] < 2:
        raise ValueError(f"points must be [N, {NUM_LANDMARKS}, 3] or [{NUM_LANDMARKS}, 3], got {np.shape(points)}")
    xy = p[:, :, :2]
    right_eye = xy[:, list(_RIGHT_EYE_CORNERS)].mean(axis=1)
    left_eye = xy[:, list(_LEFT_EYE_CORNERS)].mean(axis=1)
    across = left_eye - right_eye  # towards the subject's left (image right)
    iod = np.linalg.norm(across, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = across / iod[:, None]
        # Rotate +90 degrees in image coordinates (y down): the face's "down" direction.
        down = np.stack([-unit[:, 1], unit[:, 0]], axis=-1)

        def gap(pairs: list[tuple[int, int]]) -> np.ndarray:
            upper = xy[:, [u for u, _ in pairs]]
            lower = xy[:, [lo for _, lo in pairs]]
            return ((lower - upper) * down[:, None, :]).sum(axis=-1).mean(axis=-1)

        def width(a: int, b: int) -> np.ndarray:
            return np.linalg.norm(xy[:, b] - xy[:, a], axis=-1)

        metrics = {
            "mouth_open": gap(_LIP_PAIRS) / iod,
            "mouth_width": width(LIPS_OUTER_UPPER[0], LIPS_OUTER_UPPER[-1]) / iod,
            "eye_open_right": gap(_RIGHT_LID_PAIRS) / width(RIGHT_EYE_UPPER[0], RIGHT_EYE_UPPER[-1]),
            "eye_open_left": gap(_LEFT_LID_PAIRS) / width(LEFT_EYE_UPPER[0], LEFT_EYE_UPPER[-1]),
            "interocular": iod,
        }
    return {k: (v[0] if single else v).astype(np.float32) for k, v in metrics.items()}
