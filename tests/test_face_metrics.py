"""facecast.face.metrics: mouth and eye openings on real portraits, invariance to roll and scale."""

from __future__ import annotations

import numpy as np
import pytest

from face_helpers import CLOSED_MOUTH, OPEN_MOUTH, PORTRAITS, load_portraits, portrait
from facecast import face as F


@pytest.fixture(scope="module")
def tracker():
    with F.MediapipeFaceMesh() as t:
        yield t


@pytest.fixture(scope="module")
def portraits():
    """name -> uint8 RGB image (loaded once per session)."""
    return load_portraits()


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
