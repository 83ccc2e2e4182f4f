"""facecast.face.detect on real portraits and frames: the mesh, the detector fallback, which face."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from conftest import media
from face_helpers import assert_plausible, decode, load_portraits, portrait, redetection_error
from facecast import face as F
from facecast.errors import InputError, NoFaceError
from facecast.landmarks import RIGHT_EYE_LOWER, RIGHT_EYE_UPPER, RIGHT_IRIS


@pytest.fixture(scope="module")
def tracker():
    with F.MediapipeFaceMesh() as t:
        yield t


@pytest.fixture(scope="module")
def portraits():
    """name -> uint8 RGB image (loaded once per session)."""
    return load_portraits()


# ---------------------------------------------------------------------------------------------
# Detection


def test_large_photo_is_downscaled_for_detection(portraits, tracker):
    image = portrait(portraits, "hallo_ref7.jpg")
    face = F.find_face(image, source="hallo", tracker=tracker)
    assert face.image_size == (3511, 3511)
    assert face.interocular > 500  # full-resolution pixels, not the 1024 px detection copy
    whole = F.frame_portrait(image, face, size=None)
    assert whole.image.shape == (1024, 1024, 3)
    assert any("downscaled" in n for n in whole.notes)
    np.testing.assert_allclose(whole.face.points, face.points * (1024 / 3511), rtol=1e-5, atol=1e-3)


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
    right_eye = face.points[list(RIGHT_EYE_UPPER + RIGHT_EYE_LOWER)].mean(axis=0)
    np.testing.assert_allclose(face.points[list(RIGHT_IRIS)], np.tile(right_eye, (5, 1)), atol=1e-3)
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
