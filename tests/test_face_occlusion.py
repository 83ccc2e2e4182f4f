"""facecast.face.occlusion: a mouth covered by a flat box is refused (issue 18, item 9); real
lips, and lips painted one flat colour, are not taken for a cover."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from face_helpers import PORTRAITS, decode, load_portraits, portrait
from conftest import media
from facecast import face as F
from facecast.errors import InputError
from facecast.landmarks import LIPS_INNER_UPPER, LIPS_OUTER_LOWER, LIPS_OUTER_UPPER
from facecast.options import SayOptions
from facecast.sources import prepare_portrait


@pytest.fixture(scope="module")
def tracker():
    with F.MediapipeFaceMesh() as t:
        yield t


@pytest.fixture(scope="module")
def portraits():
    return load_portraits()


def _lips(face) -> np.ndarray:
    return face.points[list(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER), :2]


def box_over_mouth(image: np.ndarray, face, colour, grow: float = 1.3) -> np.ndarray:
    """A box of one colour over the mouth, ``grow`` times the lips' size."""
    out = image.copy()
    lips = _lips(face)
    mid, half = lips.mean(axis=0), (lips.max(axis=0) - lips.min(axis=0)) / 2 * grow
    x0, y0 = np.floor(mid - half).astype(int)
    x1, y1 = np.ceil(mid + half).astype(int)
    out[y0:y1, x0:x1] = colour
    return out


def jpeg(image: np.ndarray, quality: int = 75) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.mark.parametrize("name", PORTRAITS)
def test_real_mouths_are_visible(name, portraits, tracker):
    image = portrait(portraits, name)
    face = F.find_face(image, tracker=tracker)
    lips, ring = F.mouth_flatness(image, face)
    assert lips < 0.3 and ring < 0.3  # observed <= 0.26 / 0.21 on 80 faces
    F.check_mouth_visible(image, face, source=name)


def test_video_frames_mouths_are_visible(tracker):
    for clip in ["video/obama_en.mp4", "video/retalking_face1_en.mp4", "video/hdtf_aoc_en.mp4"]:
        for frame in decode(media(clip), 30)[::10]:
            face = tracker.detect(frame)[0]
            F.check_mouth_visible(frame, face, source=clip)


@pytest.mark.parametrize("colour", [(0, 0, 0), (240, 240, 240), "skin"])
@pytest.mark.parametrize("name", ["sam_512.jpg", "leijun.png", "hallo_ref7.jpg", "bw_s12.jpg"])
def test_box_over_the_mouth_is_refused(name, colour, portraits, tracker, tmp_path):
    image = portrait(portraits, name)
    face = F.find_face(image, tracker=tracker)
    if colour == "skin":  # the cheek's colour: a patch painted over the mouth
        x, y = face.points[205, :2].astype(int)
        colour = tuple(int(v) for v in np.median(image[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3), axis=0))
    covered = jpeg(box_over_mouth(image, face, colour))
    path = tmp_path / "covered.jpg"
    Image.fromarray(covered).save(path, quality=95)
    with pytest.raises(InputError) as err:
        prepare_portrait(str(path), SayOptions())
    message = str(err.value)
    assert message.startswith(f"{path}: the mouth is covered or not visible") and "\n" not in message
    assert message.endswith("Use a photo where the mouth is visible")


@pytest.mark.parametrize("name", ["sam_512.jpg", "dreamtalk_face3.png", "sadtalker_people0.png"])
def test_flat_painted_lips_are_not_a_cover(name, portraits, tracker):
    """Lips of one flat colour with a line between them (a cartoon) differ from the skin around."""
    import cv2

    image = portrait(portraits, name)
    face = F.find_face(image, tracker=tracker)
    painted = image.copy()
    outline = face.points[list(LIPS_OUTER_UPPER) + list(LIPS_OUTER_LOWER[-2:0:-1]), :2]
    cv2.fillPoly(painted, [np.round(outline * 4).astype(np.int32)], (200, 60, 60), shift=2)
    line = face.points[list(LIPS_INNER_UPPER), :2]
    cv2.polylines(painted, [np.round(line * 4).astype(np.int32)], False, (60, 20, 20), 2, shift=2)
    again = F.find_face(painted, tracker=tracker)
    lips, ring = F.mouth_flatness(painted, again)
    assert lips > 0.6 and ring < 0.1
    F.check_mouth_visible(painted, again, source=name)


def test_cli_box_over_the_mouth(portraits, tracker, tmp_path):
    image = portrait(portraits, "sam_512.jpg")
    path = tmp_path / "boxed.png"
    Image.fromarray(box_over_mouth(image, F.find_face(image, tracker=tracker), (0, 0, 0))).save(path)
    out = tmp_path / "o.mp4"
    cli = str(Path(sys.executable).with_name("facecast"))
    res = subprocess.run([cli, "say", str(path), "--text", "Hello.", "-o", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "boxed.png:themouthiscoveredornotvisible" in "".join(res.stderr.split())
    assert not out.exists()
