"""facecast.face.detect on real portraits and frames: the mesh, the detector fallback, which face,
portraits on their side or upside down, several faces in a row."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import media
from face_helpers import (
    PORTRAITS,
    assert_plausible,
    decode,
    eye_centres,
    load_portraits,
    mean_error,
    portrait,
    redetection_error,
    row_of_faces,
    tilted,
)
from facecast import face as F
from facecast.face.geometry import turn_image, turn_points
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


def test_face_index_out_of_range_with_one_face(portraits, tracker):
    image = portrait(portraits, "sam_512.jpg")
    with pytest.raises(InputError) as err:
        F.find_face(image, source="sam.jpg", face_index=1, tracker=tracker)
    assert str(err.value) == ("sam.jpg: face 1 does not exist: 1 face found, numbered 0 from the left. "
                              "Pass --face 0, or leave --face out")


# ---------------------------------------------------------------------------------------------
# Several faces in a row (issue 18, items 8 and 10): the mesh's own detector sees a wide
# picture letterboxed into its square input, where the faces shrink to a few pixels; it found
# 1 or 2 of these 5.

ROWS = {
    "mixed": (["dreamtalk_face3.png", "hallo_ref7.jpg", "leijun.png", "sadtalker_people0.png", "sam_512.jpg"], 300),
    "paintings": (["art0_painting.png"] * 5, 300),
    "leijun": (["leijun.png"] * 5, 512),
    "older": (["art0_painting.png", "bw_s12.jpg", "dreamtalk_face3.png", "hallo_ref7.jpg", "leijun.png"], 512),
}


@pytest.fixture(scope="module")
def group():
    """A mesh looking for as many faces as find_face does on its own."""
    with F.MediapipeFaceMesh(max_faces=F.FIND_MAX_FACES) as t:
        yield t


@pytest.mark.parametrize("kind", list(ROWS))
def test_five_faces_in_a_row(kind, portraits, group, caplog):
    tracker = group
    names, height = ROWS[kind]
    image, spans = row_of_faces(portraits, names, height)
    faces = tracker.detect(image, source=kind)
    assert len(faces) == 5
    for i, (x0, x1) in enumerate(spans):  # --face i is the i-th portrait from the left
        face = F.find_face(image, source=kind, face_index=i, tracker=tracker)
        fx0, _, fx1, _ = face.bbox
        assert x0 <= (fx0 + fx1) / 2 <= x1
        assert_plausible(face)
    largest = faces[0]
    at = next(i for i, (x0, x1) in enumerate(spans) if x0 <= (largest.bbox[0] + largest.bbox[2]) / 2 <= x1)
    with caplog.at_level(logging.WARNING, logger="facecast.face"):
        assert F.find_face(image, source=f"{kind}.png", tracker=tracker) is not None
    [message] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert message == (f"{kind}.png: 5 faces found; animating the largest, face {at} (numbered 0 to 4 from "
                       "the left). Choose another with --face N")
    with pytest.raises(InputError) as err:
        F.find_face(image, source=f"{kind}.png", face_index=7, tracker=tracker)
    assert str(err.value) == (f"{kind}.png: face 7 does not exist: 5 faces found, numbered 0 to 4 from the "
                              "left. Pass --face with a number from 0 to 4")


def test_more_faces_than_looked_for(portraits, tracker):
    image, _ = row_of_faces(portraits, ["sam_512.jpg"] * 7, 256)
    assert len(tracker.detect(image)) == 5  # MeshOptions.max_faces
    with pytest.raises(InputError, match=r"face 9 does not exist: 5 faces found \(the most looked for: "
                                         r"in a larger group, crop .*\), numbered 0 to 4"):
        F.find_face(image, face_index=9, tracker=tracker)
    assert F.find_face(image, face_index=6).bbox[0] > 6 * 256  # find_face's own: up to 10


def test_cli_face_out_of_range_gives_the_true_count(portraits, tmp_path):
    image, _ = row_of_faces(portraits, ROWS["mixed"][0], 300)
    path = tmp_path / "five.png"
    Image.fromarray(image).save(path)
    out = tmp_path / "o.mp4"
    cli = str(Path(sys.executable).with_name("facecast"))
    res = subprocess.run([cli, "say", str(path), "--text", "Hello.", "--face", "7", "-o", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    squeezed = "".join(res.stderr.split())
    assert "five.png:face7doesnotexist:5facesfound,numbered0to4fromtheleft" in squeezed
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Portraits on their side or upside down (issue 18, item 6): the mesh fits an upright face
# over an upside-down one (a mouth on the forehead), and misses some faces on their side.

TURNS = {1: "on its side", 2: "upside down", 3: "on its side"}
HOW = {1: "90 degrees clockwise", 2: "180 degrees", 3: "90 degrees counter-clockwise"}


@pytest.fixture(scope="module")
def references(portraits, tracker):
    """name -> (landmarks found upright, that face framed at 512)."""
    out = {}
    for name in PORTRAITS:
        image = portrait(portraits, name)
        face = F.find_face(image, source=name, tracker=tracker)
        out[name] = face, F.frame_portrait(image, face, size=512)
    return out


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("name", PORTRAITS)
def test_turned_portrait_is_measured_and_framed_upright(name, k, portraits, tracker, references):
    image = portrait(portraits, name)
    reference, upright = references[name]
    h, w = image.shape[:2]
    turned = turn_image(image, k)  # the portrait turned k quarter turns counter-clockwise
    face = F.find_face(turned, source=name, tracker=tracker)
    # Measured right in the turned picture (observed <= 0.03 IOD; a misfit is > 1 IOD off).
    assert mean_error(face.points, turn_points(reference.points, k, (w, h)), reference.interocular) < 0.06
    framed = F.frame_portrait(turned, face, size=512, source=name)
    # Turned back and framed like the upright portrait, and said so.
    [note] = [n for n in framed.notes if "upright" in n]
    assert note.startswith(f"the face is {TURNS[k]} ") and note.endswith(f"turned {HOW[k]} to put it upright")
    assert_plausible(framed.face)
    assert mean_error(framed.face.points, upright.face.points, upright.face.interocular) < 0.06
    whole = F.frame_portrait(turned, face, size=None, source=name)
    assert whole.image.shape[:2] == F.frame_portrait(image, reference, size=None).image.shape[:2]
    assert any("upside down" in n or "on its side" in n for n in whole.notes)


def test_cli_upside_down_portrait_is_animated_upright(portraits, tracker, tmp_path):
    path = tmp_path / "upside_down.png"
    Image.fromarray(turn_image(portrait(portraits, "sam_512.jpg"), 2)).save(path)
    out = tmp_path / "o.mp4"
    cli = str(Path(sys.executable).with_name("facecast"))
    res = subprocess.run([cli, "say", str(path), "--text", "Hi.", "--size", "128", "-o", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    squeezed = "".join(res.stderr.split())  # the log handler wraps long lines anywhere
    assert f"{path}:thefaceisupsidedown" in squeezed and "turned180degreestoputitupright" in squeezed
    [face] = tracker.detect(decode(out, 1)[0])
    assert_plausible(face)  # upright: eyes above the nose above the mouth
    assert abs(F.face_roll(face)) < 20


@pytest.mark.parametrize("name, tilt, k", [
    ("sam_512.jpg", 30, 0), ("sam_512.jpg", -30, 0), ("hallo_ref7.jpg", 35, 0), ("leijun.png", -35, 0),
    ("sam_512.jpg", 40, 1), ("sadtalker_people0.png", -40, 2), ("art0_painting.png", 40, 2),
    ("dreamtalk_face3.png", 30, 3), ("bw_s12.jpg", -40, 3),
])
def test_tilted_head_keeps_its_tilt(name, tilt, k, portraits, tracker, references):
    """A head rolled by up to 40 degrees is left as it is; turned as well, it is turned back."""
    image = portrait(portraits, name)
    reference, _ = references[name]
    h, w = image.shape[:2]
    rolled, points = tilted(image, tilt, reference.points)
    turned = turn_image(rolled, k)
    face = F.find_face(turned, source=name, tracker=tracker)
    assert mean_error(face.points, turn_points(points, k, (w, h)), reference.interocular) < 0.1
    framed = F.frame_portrait(turned, face, size=512, source=name)
    right, left = eye_centres(framed.face.points)
    roll = np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0]))
    expected = F.face_roll(reference) - tilt  # the head's own roll, turned by quarter turns
    assert abs(roll) <= 45 and abs((roll - expected + 45) % 90 - 45) < 5
    assert any("upright" in n for n in framed.notes) == (abs((expected - 90 * k + 180) % 360 - 180) > 45)


def test_no_false_face_in_a_turned_photo(tracker):
    """The mesh fits a face to the astronaut's helmet in this turned photo; the detector scores
    it far below her face, and it is dropped."""
    skimage_data = pytest.importorskip("skimage.data")
    image = turn_image(tilted(skimage_data.astronaut(), 20)[0], 1)
    faces = tracker.detect(image, source="astronaut")
    assert len(faces) == 1
    framed = F.frame_portrait(image, faces[0], size=256)
    assert_plausible(framed.face)


def test_every_native_call_is_quiet(portraits, monkeypatch):
    """Every mediapipe graph (the mesh, both detectors) is made and run inside
    quiet_native_stderr, which keeps their native TFLite/absl log lines off stderr (issue 18,
    item 11)."""
    import contextlib

    import mediapipe as mp

    from facecast.face import detect

    depth = [0]
    calls: list[tuple[str, bool]] = []

    @contextlib.contextmanager
    def counting():
        depth[0] += 1
        try:
            yield
        finally:
            depth[0] -= 1

    def spy(cls, name):
        original = getattr(cls, name)

        def wrapper(self, *args, **kwargs):
            calls.append((f"{cls.__name__}.{name}", depth[0] > 0))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    from facecast import native

    monkeypatch.setattr(detect, "quiet_native_stderr", counting)
    monkeypatch.setattr(native, "quiet_native_stderr", counting)  # graphs start in native.start_graph
    for cls in (mp.solutions.face_mesh.FaceMesh, mp.solutions.face_detection.FaceDetection):
        spy(cls, "__init__")
        spy(cls, "process")
    image = portrait(portraits, "sam_512.jpg")
    row, _ = row_of_faces(portraits, ROWS["mixed"][0], 300)
    small = np.full((1920, 1080, 3), 90, np.uint8)
    small[1200:1280, 500:580] = np.asarray(Image.fromarray(image).resize((80, 80)))
    with F.MediapipeFaceMesh() as t:  # fresh graphs, made on first use
        assert len(t.detect(turn_image(image, 2))) == 1
        assert len(t.detect(row)) == 5
        t.detect(small)  # the full-range detector on tiles
    kinds = {name for name, _ in calls}
    assert {"FaceMesh.__init__", "FaceMesh.process", "FaceDetection.__init__", "FaceDetection.process"} <= kinds
    assert all(quiet for _, quiet in calls), [name for name, quiet in calls if not quiet]
