"""Shared by the facecast.face tests (tests/test_face_*.py, tests/test_landmarks.py): the real
portraits, video decoding, and checks of detected landmarks."""

from __future__ import annotations

import functools
from pathlib import Path

import av
import numpy as np

from conftest import media
from facecast import face as F
from facecast.landmarks import CHIN, NOSE_TIP
from facecast.types import FaceLandmarks

PORTRAITS = [
    "art0_painting.png",
    "bw_s12.jpg",
    "dreamtalk_face3.png",
    "hallo_ref7.jpg",
    "leijun.png",
    "sadtalker_people0.png",
    "sam_512.jpg",
]
# Checked by eye: these subjects keep their lips together; leijun and sam_512 show their teeth.
CLOSED_MOUTH = ["art0_painting.png", "bw_s12.jpg", "dreamtalk_face3.png", "hallo_ref7.jpg", "sadtalker_people0.png"]
OPEN_MOUTH = ["leijun.png", "sam_512.jpg"]


@functools.lru_cache(maxsize=1)
def load_portraits() -> dict[str, np.ndarray]:
    """name -> uint8 RGB image of every portrait, decoded once for the session."""
    return {name: F.load_image(media(f"portrait/{name}")) for name in PORTRAITS}


def portrait(portraits, name):
    media(f"portrait/{name}")  # skip (or fail under CI) when the media are absent
    return portraits[name]


def decode(path: Path, n: int) -> np.ndarray:
    """The first n frames of a video, uint8 [n, H, W, 3] RGB."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == n:
                break
    return np.stack(frames)


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subject's right, subject's left) eye centres [2]."""
    return points[[33, 133], :2].mean(axis=0), points[[263, 362], :2].mean(axis=0)


def assert_plausible(face: FaceLandmarks) -> None:
    p = face.points
    assert p.shape == (478, 3) and p.dtype == np.float32
    assert np.isfinite(p).all()
    w, h = face.image_size
    assert (p[:, 0] > -0.05 * w).all() and (p[:, 0] < 1.05 * w).all()
    assert (p[:, 1] > -0.05 * h).all() and (p[:, 1] < 1.05 * h).all()
    right, left = eye_centres(p)
    mouth = p[[13, 14], :2].mean(axis=0)
    assert face.interocular > 20
    assert right[0] < p[NOSE_TIP, 0] < left[0]  # unmirrored frontal photo
    assert max(right[1], left[1]) < p[NOSE_TIP, 1] < mouth[1] < p[CHIN, 1]
    # z is in pixels like x: the face's depth range is a sizeable fraction of its width.
    x0, _, x1, _ = face.bbox
    assert 0.15 * (x1 - x0) < np.ptp(p[:, 2]) < 1.5 * (x1 - x0)


def redetection_error(tracker, image: np.ndarray, face: FaceLandmarks) -> float:
    """Mean 2-D distance between ``face`` and a fresh detection on ``image``, / IOD."""
    again = tracker.detect(image, source="reframed")
    assert len(again) == 1
    err = np.linalg.norm(again[0].points[:, :2] - face.points[:, :2], axis=1)
    return float(err.mean() / face.interocular)



# ---------------------------------------------------------------------------------------------
# Synthetic pictures made from the real portraits


def resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))


def row_of_faces(portraits, names, height: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The portraits side by side at one height (a collage), and each one's (x0, x1) span."""
    parts, spans, x = [], [], 0
    for name in names:
        image = portrait(portraits, name)
        width = round(image.shape[1] * height / image.shape[0])
        parts.append(resized(image, width, height))
        spans.append((x, x + width))
        x += width
    return np.concatenate(parts, axis=1), spans


def tilted(image: np.ndarray, degrees: float, points: np.ndarray | None = None):
    """``image`` rotated counter-clockwise by ``degrees`` about its centre (same size, grey
    corners), and ``points`` [N, 2+] moved with it (None when not given)."""
    import math

    from PIL import Image

    out = np.asarray(Image.fromarray(image).rotate(degrees, resample=Image.Resampling.BICUBIC,
                                                   fillcolor=(128, 128, 128)))
    if points is None:
        return out, None
    h, w = image.shape[:2]
    a = math.radians(degrees)
    dx, dy = points[:, 0] - w / 2, points[:, 1] - h / 2
    moved = np.array(points, dtype=np.float64, copy=True)
    moved[:, 0] = w / 2 + dx * math.cos(a) + dy * math.sin(a)
    moved[:, 1] = h / 2 - dx * math.sin(a) + dy * math.cos(a)
    return out, moved


def mean_error(points: np.ndarray, reference: np.ndarray, iod: float) -> float:
    """Mean 2-D distance between two landmark sets, / the inter-ocular distance."""
    return float(np.linalg.norm(points[:, :2] - reference[:, :2], axis=1).mean() / iod)
