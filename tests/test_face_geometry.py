"""facecast.face.geometry: quarter turns of images and landmarks are exact; roll; tiles, panels."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.face.geometry import (
    face_roll,
    panels,
    tiles,
    turn_face,
    turn_image,
    turn_points,
    turned_size,
    upright_turns,
)
from facecast.landmarks import LEFT_EYE_CORNERS, NUM_LANDMARKS, RIGHT_EYE_CORNERS
from facecast.types import FaceLandmarks


@pytest.mark.parametrize("k", [0, 1, 2, 3, -1, 5])
def test_turn_points_follows_the_pixels(k):
    rng = np.random.default_rng(k % 4)
    w, h = 7, 5
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    turned = turn_image(image, k)
    assert turned.flags.c_contiguous and turned.shape[:2] == turned_size((w, h), k)[::-1]
    # Every pixel centre lands on the centre of the pixel holding the same value.
    ys, xs = np.mgrid[0:h, 0:w]
    centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)
    moved = turn_points(centres, k, (w, h))
    cols, rows = np.floor(moved[:, 0]).astype(int), np.floor(moved[:, 1]).astype(int)
    np.testing.assert_allclose(moved - np.floor(moved), 0.5)
    np.testing.assert_array_equal(turned[rows, cols], image[ys.ravel(), xs.ravel()])
    back = turn_points(moved, -k, turned_size((w, h), k))
    np.testing.assert_allclose(back, centres, atol=1e-9)


def _face(roll_degrees: float, size=(200, 100)) -> FaceLandmarks:
    """Landmarks with only the eye corners set: an eye line at ``roll_degrees``."""
    pts = np.zeros((NUM_LANDMARKS, 3), np.float32)
    a = np.radians(roll_degrees)
    centre = np.array([100.0, 50.0])
    step = 20 * np.array([np.cos(a), np.sin(a)])
    pts[list(RIGHT_EYE_CORNERS), :2] = centre - step
    pts[list(LEFT_EYE_CORNERS), :2] = centre + step
    return FaceLandmarks(points=pts, image_size=size)


@pytest.mark.parametrize("roll, turns", [(0, 0), (30, 0), (-44, 0), (46, 1), (-90, 3), (90, 1),
                                         (180, 2), (-150, 2), (135.5, 2), (-100, 3)])
def test_roll_and_upright_turns(roll, turns):
    face = _face(roll)
    assert abs((face_roll(face) - roll + 180) % 360 - 180) < 1e-3
    assert upright_turns(face) == turns
    # Turned that way, the face is within 45 degrees of upright.
    upright = turn_face(face, turns)
    assert upright.image_size == turned_size(face.image_size, turns)
    assert abs(face_roll(upright)) <= 45


def test_panels_cover_every_face_of_a_row():
    assert panels(1000, 900) == [] and panels(600, 600) == []
    w, h = 2500, 300
    spans = [(x0, x1) for x0, _, x1, _ in panels(w, h)]
    assert spans[0][0] == 0 and spans[-1][1] == w and all(x1 - x0 == h for x0, x1 in spans)
    for face_x0 in range(0, w - h // 2, 7):  # any face up to half the height wide is whole in one
        assert any(x0 <= face_x0 and face_x0 + h // 2 <= x1 for x0, x1 in spans)
    assert panels(300, 2500)[-1] == (0, 2200, 300, 2500)  # tall pictures too


def test_tiles_cover_the_image():
    for w, h in [(1080, 1920), (4000, 3000), (512, 512)]:
        covered = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in tiles(w, h):
            covered[y0:y1, x0:x1] = True
        assert covered.all()
