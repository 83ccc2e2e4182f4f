"""facecast.face on real portraits and videos: loading, detection, framing, tracking, metrics."""

from __future__ import annotations

import logging
import re
import struct
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import media
from facecast import face as F
from facecast.errors import InputError, NoFaceError
from facecast.types import FaceLandmarks, VideoFrames

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


@pytest.fixture(scope="module")
def tracker():
    with F.MediapipeFaceMesh() as t:
        yield t


@pytest.fixture(scope="module")
def portraits():
    """name -> uint8 RGB image, loaded once for the module."""
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
    assert right[0] < p[F.NOSE_TIP, 0] < left[0]  # unmirrored frontal photo
    assert max(right[1], left[1]) < p[F.NOSE_TIP, 1] < mouth[1] < p[F.CHIN, 1]
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
# Portraits: detection and framing


@pytest.mark.parametrize("name", PORTRAITS)
def test_portrait_face_and_framing(name, portraits, tracker):
    image = portrait(portraits, name)
    faces = tracker.detect(image, source=name)
    assert len(faces) == 1
    face = F.find_face(image, source=name, tracker=tracker)
    assert face.image_size == (image.shape[1], image.shape[0])
    assert_plausible(face)

    framed = F.frame_portrait(image, face, size=512, source=name)
    assert framed.image.shape == (512, 512, 3) and framed.image.dtype == np.uint8
    assert framed.face.image_size == (512, 512) and framed.source == name
    assert_plausible(framed.face)
    x0, _, x1, _ = framed.face.bbox
    assert 0.44 <= (x1 - x0) / 512 <= 0.51  # face 45-50 % of the square
    eyes_y = np.mean([c[1] for c in eye_centres(framed.face.points)]) / 512
    assert 0.25 < eyes_y < 0.5  # a bit above the centre
    # The landmarks were transformed, not re-detected: a fresh detection must agree. (Observed
    # 0-1.4 % of the IOD; where the framing upscales a small face, e.g. bw_s12 1.8x, mediapipe
    # wavers more, so that case gets a little more room.)
    upscaled = any("upscaled" in n for n in framed.notes)
    assert redetection_error(tracker, framed.image, framed.face) < (0.025 if upscaled else 0.02)

    # Outputs are new, writable arrays (torch.from_numpy warns on read-only ones).
    assert framed.image.flags.writeable and not np.shares_memory(framed.image, image)
    assert image.flags.writeable

    whole = F.frame_portrait(image, face, size=None, source=name)
    assert whole.image.flags.writeable and not np.shares_memory(whole.image, image)
    h, w = whole.image.shape[:2]
    assert max(h, w) <= 1024 and h % 2 == 0 and w % 2 == 0
    assert whole.face.image_size == (w, h)
    assert abs(w / h - image.shape[1] / image.shape[0]) < 0.01  # the portrait's own framing
    assert_plausible(whole.face)
    assert redetection_error(tracker, whole.image, whole.face) < 0.02


def synthetic_face(width: int, height: int, face_box: tuple[float, float, float, float], seed: int = 0):
    """Random landmarks filling face_box (x0, y0, x1, y1) with the eyes above the nose, and an
    image that is black except for small Gaussian dots centred exactly on three landmarks."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = face_box
    pts = np.column_stack([rng.uniform(x0, x1, 478), rng.uniform(y0, y1, 478), rng.uniform(-30, 30, 478)])
    pts[[10, 152], :2] = [[x0, y0], [x1, y1]]  # pin the bbox
    eye_y = y0 + 0.35 * (y1 - y0)
    pts[[33, 133, 263, 362], 1] = eye_y
    dots = {33: (x0 + 0.3 * (x1 - x0), eye_y), 263: (x0 + 0.7 * (x1 - x0), eye_y),
            F.NOSE_TIP: ((x0 + x1) / 2, y0 + 0.6 * (y1 - y0))}
    pts[F.NOSE_TIP] = [*dots[F.NOSE_TIP], 0]
    pts[33, 0], pts[263, 0] = dots[33][0], dots[263][0]
    # pixel-edge convention: pixel (i, j) is centred at (j + 0.5, i + 0.5)
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    image = np.zeros((height, width), np.float64)
    for cx, cy in dots.values():
        image += 250 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 2.5**2))
    image = np.repeat(np.clip(image, 0, 255).round().astype(np.uint8)[:, :, None], 3, axis=2)
    return image, FaceLandmarks(points=pts.astype(np.float32), image_size=(width, height)), list(dots)


def dot_centroid(image: np.ndarray, at: np.ndarray, radius: int) -> np.ndarray:
    """Intensity centroid (pixel-edge convention) of the window of +-radius px around ``at``."""
    cx, cy = int(at[0]), int(at[1])
    win = image[cy - radius: cy + radius + 1, cx - radius: cx + radius + 1, 0].astype(np.float64)
    yy, xx = np.mgrid[cy - radius: cy + radius + 1, cx - radius: cx + radius + 1] + 0.5
    return np.array([(xx * win).sum(), (yy * win).sum()]) / win.sum()


@pytest.mark.parametrize(
    "width, height, box, size",
    [
        (900, 700, (300, 200, 500, 440), 512),  # room around the face: plain crop, downscale
        (300, 260, (60, 40, 200, 210), 512),  # face fills the image: padded, upscaled
        (2001, 1201, (800, 300, 1200, 780), None),  # whole image, downscaled to even sides
        (301, 211, (100, 50, 200, 170), None),  # whole image, odd sides cropped
    ],
)
def test_framing_transform_is_exact(width, height, box, size):
    image, face, dots = synthetic_face(width, height, box)
    framed = F.frame_portrait(image, face, size=size)
    h, w = framed.image.shape[:2]
    assert h % 2 == 0 and w % 2 == 0 and framed.face.image_size == (w, h)
    if size:
        assert (h, w) == (size, size)
    scale = w / width if size is None else size / framed_side(face, framed)
    for i in dots:
        at = framed.face.points[i, :2]
        radius = int(np.ceil(8 * scale))
        np.testing.assert_allclose(dot_centroid(framed.image, at, radius), at, atol=0.25 * max(1.0, scale))
    # z scales like x
    sx = (framed.face.points[152, 0] - framed.face.points[10, 0]) / (box[2] - box[0])
    np.testing.assert_allclose(framed.face.points[:, 2], face.points[:, 2] * sx, rtol=1e-4, atol=1e-3)


def framed_side(face: FaceLandmarks, framed) -> float:
    """Side in source pixels of the square frame_portrait cut (from the landmark scale)."""
    src = face.points[152, 0] - face.points[10, 0]
    dst = framed.face.points[152, 0] - framed.face.points[10, 0]
    return framed.image.shape[1] * src / dst


def test_large_photo_is_downscaled_for_detection(portraits, tracker):
    image = portrait(portraits, "hallo_ref7.jpg")
    face = F.find_face(image, source="hallo", tracker=tracker)
    assert face.image_size == (3511, 3511)
    assert face.interocular > 500  # full-resolution pixels, not the 1024 px detection copy
    whole = F.frame_portrait(image, face, size=None)
    assert whole.image.shape == (1024, 1024, 3)
    assert any("downscaled" in n for n in whole.notes)
    np.testing.assert_allclose(whole.face.points, face.points * (1024 / 3511), rtol=1e-5, atol=1e-3)


def test_odd_sized_image_keeps_pixels_and_landmarks(portraits, tracker):
    image = portrait(portraits, "bw_s12.jpg")  # 375 x 500
    face = F.find_face(image, tracker=tracker)
    whole = F.frame_portrait(image, face, size=None)
    assert whole.image.shape == (500, 374, 3)
    np.testing.assert_array_equal(whole.image, image[:, :374])
    np.testing.assert_array_equal(whole.face.points, face.points)


def test_tight_crop_is_padded_and_noted(portraits, tracker):
    image = portrait(portraits, "sam_512.jpg")
    face = F.find_face(image, tracker=tracker)
    x0, y0, x1, y1 = (int(v) for v in face.bbox)
    tight = np.ascontiguousarray(image[y0 - 10: y1 + 10, x0 - 10: x1 + 10])
    tight_face = F.find_face(tight, tracker=tracker)
    framed = F.frame_portrait(tight, tight_face, size=256)
    assert framed.image.shape == (256, 256, 3)
    assert any("padded" in n for n in framed.notes)
    assert redetection_error(tracker, framed.image, framed.face) < 0.02


def test_bad_output_size(portraits, tracker):
    image = portrait(portraits, "sam_512.jpg")
    face = F.find_face(image, tracker=tracker)
    with pytest.raises(InputError, match="even"):
        F.frame_portrait(image, face, size=511, source="sam.jpg")
    with pytest.raises(ValueError, match="image"):
        F.frame_portrait(image[:400], face, size=512)  # landmarks of another image


def test_astronaut():
    skimage_data = pytest.importorskip("skimage.data")
    image = skimage_data.astronaut()
    face = F.find_face(image)  # no tracker: find_face makes and closes its own
    assert_plausible(face)
    framed = F.frame_portrait(image, face)
    assert framed.image.shape == (512, 512, 3) and framed.source == "<array>"


def test_path_input(tmp_path, portraits):
    image = portrait(portraits, "sadtalker_people0.png")
    path = tmp_path / "person.png"
    Image.fromarray(image).save(path)
    face = F.find_face(path)
    framed = F.frame_portrait(path, face, size=256)
    assert framed.source == str(path)
    assert framed.image.shape == (256, 256, 3)


def test_small_face_in_large_frame_uses_detector_fallback(portraits, tracker, caplog):
    image = portrait(portraits, "sadtalker_people0.png")  # 474 px, face ~153 px wide
    reference = F.find_face(image, tracker=tracker)
    side = 200  # face ~65 px wide in a 1080 x 1920 frame: the mesh's own detector misses it
    small = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.LANCZOS))
    frame = np.full((1920, 1080, 3), 90, np.uint8)
    frame[1200: 1200 + side, 700: 700 + side] = small
    with caplog.at_level(logging.DEBUG, logger="facecast.face"):
        faces = tracker.detect(frame, source="frame")
    assert any("full-range detector" in r.getMessage() for r in caplog.records)
    assert len(faces) == 1
    expected = reference.points[:, :2] * (side / image.shape[0]) + np.array([700, 1200])
    err = np.linalg.norm(faces[0].points[:, :2] - expected, axis=1).mean()
    assert err < 0.05 * faces[0].interocular


def test_vertical_full_body_video_frame(tracker):
    frame = decode(media("video/latentsync_demo2_vertical.mp4"), 1)[0]
    assert frame.shape == (1920, 1080, 3)
    face = F.find_face(frame, source="vertical", tracker=tracker)
    assert_plausible(face)
    x0, _, x1, _ = face.bbox
    assert 150 < x1 - x0 < 500
    framed = F.frame_portrait(frame, face, size=512)
    assert redetection_error(tracker, framed.image, framed.face) < 0.02


# ---------------------------------------------------------------------------------------------
# No face / which face


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_no_face(kind, tmp_path, tracker):
    rng = np.random.default_rng(0)
    if kind == "blank":
        image = np.full((480, 640, 3), 200, np.uint8)
    else:
        image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    path = tmp_path / f"{kind}.png"
    Image.fromarray(image).save(path)
    with pytest.raises(NoFaceError, match=f"{kind}.png: no face found. .*at least 64 pixels wide"):
        F.find_face(path, tracker=tracker)


def test_tiny_face(portraits, tracker):
    image = portrait(portraits, "sadtalker_people0.png")
    tiny = np.asarray(Image.fromarray(image).resize((48, 48), Image.Resampling.LANCZOS))
    with pytest.raises(NoFaceError, match=r"tiny\.png: .*(\d+ pixels wide|48x48).*64") as err:
        F.find_face(tiny, source="tiny.png", tracker=tracker)
    assert "\n" not in str(err.value)


def test_min_face_px(portraits, tracker):
    image = portrait(portraits, "sadtalker_people0.png")  # face ~153 px wide
    with pytest.raises(NoFaceError, match=r"people\.png: the face is only 15\d pixels wide.*at least 200 pixels"):
        F.find_face(image, source="people.png", min_face_px=200, tracker=tracker)


def test_tracker_lifecycle_and_options(portraits):
    image = portrait(portraits, "sam_512.jpg")
    with F.MediapipeFaceMesh(refine_landmarks=False, max_faces=1) as mesh:
        assert mesh.options.max_faces == 1 and not mesh.options.refine_landmarks
        face = mesh.detect(image, source="sam")[0]
    assert face.points.shape == (478, 3)  # iris points estimated at the eye centres
    right_eye = face.points[list(F.RIGHT_EYE_UPPER + F.RIGHT_EYE_LOWER)].mean(axis=0)
    np.testing.assert_allclose(face.points[list(F.RIGHT_IRIS)], np.tile(right_eye, (5, 1)), atol=1e-3)
    mesh.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        mesh.detect(image, source="sam")


def test_two_faces(portraits, tracker, caplog):
    left = np.asarray(
        Image.fromarray(portrait(portraits, "sadtalker_people0.png")).resize((512, 512), Image.Resampling.LANCZOS)
    )
    right = portrait(portraits, "sam_512.jpg")  # the larger face
    image = np.concatenate([left, right], axis=1)
    assert len(tracker.detect(image)) == 2
    with caplog.at_level(logging.WARNING, logger="facecast.face"):
        face = F.find_face(image, source="pair.png", tracker=tracker)
    assert face.bbox[0] > 512  # the larger face, on the right
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1
    assert "pair.png" in messages[0] and "2 faces" in messages[0] and "--face N" in messages[0]
    assert "face 1" in messages[0]

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="facecast.face"):
        other = F.find_face(image, source="pair.png", face_index=0, tracker=tracker)
    assert other.bbox[2] < 512 and not caplog.records  # explicit choice: no warning
    assert F.find_face(image, face_index=1, tracker=tracker).bbox[0] > 512
    with pytest.raises(InputError, match="pair.png: face 2 does not exist: 2 face"):
        F.find_face(image, source="pair.png", face_index=2, tracker=tracker)


# ---------------------------------------------------------------------------------------------
# Loading


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that claims width x height pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", r"empty \(0 bytes\)"),
        ("text", "is a text file, not an image"),
        ("html", r"web page \(HTML\)"),
        ("garbage", "is not an image"),
        ("truncated", "damaged or truncated"),
        ("bomb", "too large"),
        ("heic", "HEIC"),
    ],
)
def test_bad_files(case, message, tmp_path):
    path = tmp_path / f"{case}.jpg"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("Hello, this is not a photo.\n" * 10)
    elif case == "html":
        path.write_text("<!DOCTYPE html>\n<html><body>403 Forbidden</body></html>\n")
    elif case == "garbage":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif case == "truncated":
        data = media("portrait/sam_512.jpg").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "bomb":
        path = tmp_path / "bomb.png"
        png_header_only(path, 20000, 20000)
    elif case == "heic":
        path = tmp_path / "photo.heic"
        path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(100))
    with pytest.raises(InputError) as err:
        F.load_image(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ")
    assert re.search(message, text), text
    assert "\n" not in text and text.rstrip().count(". ") >= 1  # what is wrong. what to do


def test_image_modes(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)

    gray = rgb[:, :, 0]
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    out = F.load_image(tmp_path / "gray.png")
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 1], gray)

    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.gif")
    assert F.load_image(tmp_path / "palette.gif").shape == (40, 60, 3)

    rgba = np.dstack([rgb, np.full((40, 60), 255, np.uint8)])
    rgba[:, :30, 3] = 0  # left half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = F.load_image(tmp_path / "rgba.png")
    assert (out[:, :30] == F.BACKGROUND_RGB).all()
    np.testing.assert_array_equal(out[:, 30:], rgb[:, 30:])

    deep = (gray.astype(np.uint16) * 257)
    Image.fromarray(deep).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    np.testing.assert_array_equal(F.load_image(tmp_path / "gray16.png")[:, :, 0], gray)

    # EXIF orientation 6: stored rotated, displayed after a 90 degree clockwise turn.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    out = F.load_image(tmp_path / "rotated.jpg")
    assert out.shape == (60, 40, 3)


def test_exif_rotated_portrait_is_upright(tmp_path, portraits, tracker):
    image = portrait(portraits, "sam_512.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # the viewer turns it 90 degrees clockwise
    Image.fromarray(image).rotate(90, expand=True).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    assert_plausible(F.find_face(tmp_path / "phone.jpg", tracker=tracker))


def test_arrays():
    rng = np.random.default_rng(3)
    f = rng.random((20, 30, 3))
    np.testing.assert_array_equal(F.load_image(f), np.rint(f * 255).astype(np.uint8))
    assert F.load_image(np.zeros((20, 30), np.uint8)).shape == (20, 30, 3)
    assert F.load_image(np.zeros((20, 30, 4), np.uint16)).shape == (20, 30, 3)
    with pytest.raises(InputError, match=r"^<array>: .*shape"):
        F.load_image(np.zeros((20, 30, 2), np.uint8))
    with pytest.raises(InputError, match=r"^<array>: .*NaN"):
        F.load_image(np.full((20, 30, 3), np.nan))


# ---------------------------------------------------------------------------------------------
# Landmark groups and metrics


def test_landmark_groups_match_mediapipe_topology():
    from mediapipe.python.solutions import face_mesh_connections as conn

    def edges(chain, closed=False):
        pairs = list(zip(chain, chain[1:])) + ([(chain[-1], chain[0])] if closed else [])
        return {frozenset(p) for p in pairs}

    def as_set(connections):
        return {frozenset(c) for c in connections}

    assert edges(F.FACE_OVAL, closed=True) == as_set(conn.FACEMESH_FACE_OVAL)
    lips = edges(F.LIPS_OUTER_UPPER) | edges(F.LIPS_OUTER_LOWER) | edges(F.LIPS_INNER_UPPER) | edges(F.LIPS_INNER_LOWER)
    assert lips == as_set(conn.FACEMESH_LIPS)
    assert edges(F.RIGHT_EYE_UPPER) | edges(F.RIGHT_EYE_LOWER) == as_set(conn.FACEMESH_RIGHT_EYE)
    assert edges(F.LEFT_EYE_UPPER) | edges(F.LEFT_EYE_LOWER) == as_set(conn.FACEMESH_LEFT_EYE)
    assert set(F.LEFT_IRIS[1:]) == {i for c in conn.FACEMESH_LEFT_IRIS for i in c}
    assert set(F.RIGHT_IRIS[1:]) == {i for c in conn.FACEMESH_RIGHT_IRIS for i in c}
    assert edges(F.JAW_LOWER) <= edges(F.FACE_OVAL, closed=True)
    assert F.CHIN in F.JAW_LOWER and F.LIPS_OUTER_UPPER[0] == 61 and F.LIPS_INNER_UPPER[-1] == 308


@pytest.mark.parametrize("name", ["leijun.png", "sadtalker_people0.png"])
def test_landmark_orderings(name, portraits, tracker):
    """The orderings on real faces: chains run left to right in the image (subject's right to
    left), upper chains above lower ones, the jaw below the mouth corners."""
    p = F.find_face(portrait(portraits, name), tracker=tracker).points
    for group in ("LIPS_OUTER_UPPER", "LIPS_OUTER_LOWER", "LIPS_INNER_UPPER", "LIPS_INNER_LOWER",
                  "RIGHT_EYE_UPPER", "RIGHT_EYE_LOWER", "LEFT_EYE_UPPER", "LEFT_EYE_LOWER", "JAW_LOWER"):
        xs = p[list(getattr(F, group)), 0]
        assert (np.diff(xs) > 0).all(), (group, xs)
    for upper, lower in ((F.LIPS_OUTER_UPPER, F.LIPS_OUTER_LOWER), (F.RIGHT_EYE_UPPER, F.RIGHT_EYE_LOWER),
                         (F.LEFT_EYE_UPPER, F.LEFT_EYE_LOWER), (F.LIPS_INNER_UPPER, F.LIPS_INNER_LOWER)):
        gap = p[list(lower[1:-1]), 1] - p[list(upper[1:-1]), 1]
        closed_lips = upper is F.LIPS_INNER_UPPER and name in CLOSED_MOUTH  # they may touch
        assert (gap > (-1.0 if closed_lips else 1.0)).all(), (upper, gap)
    assert p[F.RIGHT_EYE_UPPER[0], 0] < p[F.LEFT_EYE_UPPER[-1], 0]  # subject's right = image left
    assert np.linalg.norm(p[F.RIGHT_IRIS[0], :2] - p[[33, 133], :2].mean(0)) < 0.3 * np.linalg.norm(p[33, :2] - p[133, :2])
    assert (p[list(F.JAW_LOWER), 1] > p[[61, 291], 1].max()).all()
    assert p[F.CHIN, 1] >= p[list(F.JAW_LOWER), 1].max() - 2  # the chin is (about) the lowest
    # The oval is a simple closed loop around the face: positive shoelace area close to its hull.
    oval = p[list(F.FACE_OVAL), :2]
    area = 0.5 * np.sum(oval[:, 0] * np.roll(oval[:, 1], -1) - np.roll(oval[:, 0], -1) * oval[:, 1])
    x0, y0, x1, y1 = oval[:, 0].min(), oval[:, 1].min(), oval[:, 0].max(), oval[:, 1].max()
    assert 0.6 * (x1 - x0) * (y1 - y0) < abs(area) < (x1 - x0) * (y1 - y0)


@pytest.mark.parametrize("name", PORTRAITS)
def test_mouth_aperture_of_portraits(name, portraits, tracker):
    m = F.mouth_metrics(F.find_face(portrait(portraits, name), tracker=tracker).points)
    assert m["mouth_open"].shape == ()
    # Observed: closed 0.000-0.005 (sadtalker_people0 0.03: her lips part by a hair line),
    # open 0.125 (sam_512, teeth showing) and 0.20 (leijun, laughing).
    assert sorted(CLOSED_MOUTH + OPEN_MOUTH) == PORTRAITS
    if name in CLOSED_MOUTH:
        assert abs(float(m["mouth_open"])) < 0.05
    else:
        assert float(m["mouth_open"]) > 0.09
    assert 0.6 < float(m["mouth_width"]) < 1.2
    for eye in ("eye_open_right", "eye_open_left"):
        assert 0.12 < float(m[eye]) < 0.45  # open eyes


def test_mouth_metrics_invariant_to_roll_and_scale(portraits, tracker):
    p = F.find_face(portrait(portraits, "leijun.png"), tracker=tracker).points.astype(np.float64)
    angle = np.deg2rad(25)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    q = p.copy()
    q[:, :2] = (p[:, :2] - 256) @ rot.T * 1.7 + 300
    a, b = F.mouth_metrics(p), F.mouth_metrics(np.stack([q, q]))
    assert b["mouth_open"].shape == (2,)
    for key in ("mouth_open", "mouth_width", "eye_open_right", "eye_open_left"):
        np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b["interocular"], a["interocular"] * 1.7, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# Video tracking


@pytest.fixture(scope="module")
def may_frames():
    return decode(media("video/may_en.mp4"), 50)


def test_track_video_speech(may_frames):
    points, found = F.track_video(may_frames, fps=25)
    assert points.shape == (50, 478, 3) and points.dtype == np.float32
    assert found.shape == (50,) and found.all()
    assert np.isfinite(points).all()
    mouth = F.mouth_metrics(points)["mouth_open"]

    # The same first frame 50 times with sensor noise: what the tracker does without speech.
    rng = np.random.default_rng(0)
    noise = rng.integers(-3, 4, (50, *may_frames[0].shape), dtype=np.int16)  # +-3 levels, sd 2
    noisy = np.clip(may_frames[0].astype(np.int16) + noise, 0, 255).astype(np.uint8)
    still, still_found = F.track_video(noisy, fps=25)
    assert still_found.all()
    still_mouth = F.mouth_metrics(still)["mouth_open"]
    assert np.ptp(mouth) > 0.15  # speech: the mouth opens and closes
    assert mouth.std() > 10 * still_mouth.std()
    # Smoothing must not flatten speech (lip closures last ~2 frames) nor add lag.
    raw, _ = F.track_video(may_frames, fps=25, smooth=False)
    raw_mouth = F.mouth_metrics(raw)["mouth_open"]
    assert np.abs(raw_mouth - mouth).max() < 0.03
    assert np.corrcoef(raw_mouth, mouth)[0, 1] > 0.98
    # Lag L from the least-squares fit smooth(t) ~ raw(t - L) ~ raw - L raw'(t): a causal
    # One-Euro pass gives ~0.15 frames here, the zero-phase one ~0.
    r, sm = raw[:, :, :2].astype(np.float64), points[:, :, :2].astype(np.float64)
    d = np.gradient(r, axis=0)
    assert abs(-((sm - r) * d).sum() / (d * d).sum()) < 0.05
    # ... while it does reduce the jitter of a still face.
    raw_still, _ = F.track_video(noisy, fps=25, smooth=False)

    def jitter(x):
        return np.linalg.norm(np.diff(x[:, :, :2], axis=0), axis=-1).mean()

    assert jitter(still) < 0.6 * jitter(raw_still)


def test_track_video_is_deterministic_and_accepts_chunks(may_frames):
    a, found_a = F.track_video(may_frames, fps=25)
    chunks = [VideoFrames(torch.from_numpy(may_frames[:20]), fps=25, first_frame=0),
              VideoFrames(torch.from_numpy(may_frames[20:]), fps=25, first_frame=20)]
    b, found_b = F.track_video(chunks, fps=25)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(found_a, found_b)
    with pytest.raises(ValueError, match="fps"):
        F.track_video(chunks, fps=30)


def test_track_video_gaps(may_frames):
    frames = may_frames[:40].copy()
    frames[10:13] = 128  # 3 frames (0.12 s) without a face: interpolated
    frames[25:35] = 128  # 10 frames (0.4 s): left NaN
    points, found = F.track_video(frames, fps=25)
    expected = np.ones(40, bool)
    expected[10:13] = expected[25:35] = False
    np.testing.assert_array_equal(found, expected)
    assert np.isfinite(points[:25]).all() and np.isfinite(points[35:]).all()
    assert np.isnan(points[25:35]).all()
    # Without smoothing, the short gap is exactly the linear interpolation of its neighbours.
    raw, raw_found = F.track_video(frames, fps=25, smooth=False)
    np.testing.assert_array_equal(raw_found, found)
    t = np.array([1, 2, 3])[:, None, None] / 4
    np.testing.assert_allclose(raw[10:13], (1 - t) * raw[9] + t * raw[13], rtol=1e-5, atol=1e-3)
    assert np.abs(raw[10:13] - raw[9]).max() > 0.5  # (the head moves: not a hold)
    assert np.isnan(raw[25:35]).all()
