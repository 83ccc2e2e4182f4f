"""facecast.landmarks: the index groups against mediapipe's topology and on real faces."""

from __future__ import annotations

import numpy as np
import pytest

from face_helpers import CLOSED_MOUTH, load_portraits, portrait
from facecast import face as F
from facecast import landmarks as L


@pytest.fixture(scope="module")
def tracker():
    with F.MediapipeFaceMesh() as t:
        yield t


@pytest.fixture(scope="module")
def portraits():
    """name -> uint8 RGB image (loaded once per session)."""
    return load_portraits()


def test_landmark_groups_match_mediapipe_topology():
    from mediapipe.python.solutions import face_mesh_connections as conn

    def edges(chain, closed=False):
        pairs = list(zip(chain, chain[1:])) + ([(chain[-1], chain[0])] if closed else [])
        return {frozenset(p) for p in pairs}

    def as_set(connections):
        return {frozenset(c) for c in connections}

    assert edges(L.FACE_OVAL, closed=True) == as_set(conn.FACEMESH_FACE_OVAL)
    lips = edges(L.LIPS_OUTER_UPPER) | edges(L.LIPS_OUTER_LOWER) | edges(L.LIPS_INNER_UPPER) | edges(L.LIPS_INNER_LOWER)
    assert lips == as_set(conn.FACEMESH_LIPS)
    assert edges(L.RIGHT_EYE_UPPER) | edges(L.RIGHT_EYE_LOWER) == as_set(conn.FACEMESH_RIGHT_EYE)
    assert edges(L.LEFT_EYE_UPPER) | edges(L.LEFT_EYE_LOWER) == as_set(conn.FACEMESH_LEFT_EYE)
    assert set(L.LEFT_IRIS[1:]) == {i for c in conn.FACEMESH_LEFT_IRIS for i in c}
    assert set(L.RIGHT_IRIS[1:]) == {i for c in conn.FACEMESH_RIGHT_IRIS for i in c}
    assert edges(L.JAW_LOWER) <= edges(L.FACE_OVAL, closed=True)
    assert L.CHIN in L.JAW_LOWER and L.LIPS_OUTER_UPPER[0] == 61 and L.LIPS_INNER_UPPER[-1] == 308


@pytest.mark.parametrize("name", ["leijun.png", "sadtalker_people0.png"])
def test_landmark_orderings(name, portraits, tracker):
    """The orderings on real faces: chains run left to right in the image (subject's right to
    left), upper chains above lower ones, the jaw below the mouth corners."""
    p = F.find_face(portrait(portraits, name), tracker=tracker).points
    for group in ("LIPS_OUTER_UPPER", "LIPS_OUTER_LOWER", "LIPS_INNER_UPPER", "LIPS_INNER_LOWER",
                  "RIGHT_EYE_UPPER", "RIGHT_EYE_LOWER", "LEFT_EYE_UPPER", "LEFT_EYE_LOWER", "JAW_LOWER"):
        xs = p[list(getattr(L, group)), 0]
        assert (np.diff(xs) > 0).all(), (group, xs)
    for upper, lower in ((L.LIPS_OUTER_UPPER, L.LIPS_OUTER_LOWER), (L.RIGHT_EYE_UPPER, L.RIGHT_EYE_LOWER),
                         (L.LEFT_EYE_UPPER, L.LEFT_EYE_LOWER), (L.LIPS_INNER_UPPER, L.LIPS_INNER_LOWER)):
        gap = p[list(lower[1:-1]), 1] - p[list(upper[1:-1]), 1]
        closed_lips = upper is L.LIPS_INNER_UPPER and name in CLOSED_MOUTH  # they may touch
        assert (gap > (-1.0 if closed_lips else 1.0)).all(), (upper, gap)
    assert p[L.RIGHT_EYE_UPPER[0], 0] < p[L.LEFT_EYE_UPPER[-1], 0]  # subject's right = image left
    assert np.linalg.norm(p[L.RIGHT_IRIS[0], :2] - p[[33, 133], :2].mean(0)) < 0.3 * np.linalg.norm(p[33, :2] - p[133, :2])
    assert (p[list(L.JAW_LOWER), 1] > p[[61, 291], 1].max()).all()
    assert p[L.CHIN, 1] >= p[list(L.JAW_LOWER), 1].max() - 2  # the chin is (about) the lowest
    # The oval is a simple closed loop around the face: positive shoelace area close to its hull.
    oval = p[list(L.FACE_OVAL), :2]
    area = 0.5 * np.sum(oval[:, 0] * np.roll(oval[:, 1], -1) - np.roll(oval[:, 0], -1) * oval[:, 1])
    x0, y0, x1, y1 = oval[:, 0].min(), oval[:, 1].min(), oval[:, 0].max(), oval[:, 1].max()
    assert 0.6 * (x1 - x0) * (y1 - y0) < abs(area) < (x1 - x0) * (y1 - y0)
