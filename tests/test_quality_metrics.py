"""quality.metrics on synthetic data: correlations and lags, mouth-shape distance, blinks,
closed mouth in silence, jitter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facecast import face
from facecast.landmarks import LIPS_INNER_LOWER, LIPS_OUTER_LOWER
from facecast.quality import metrics


def test_lagged_corr_finds_a_known_delay():
    rng = np.random.default_rng(0)
    ref = np.convolve(rng.normal(size=200), np.ones(5) / 5, "same")
    late = np.concatenate([np.zeros(3), ref[:-3]])  # happens 3 frames later
    lag, r = metrics._best_lag(late, ref)
    assert lag == 3 and r > 0.99
    lag, _ = metrics._best_lag(ref, late)
    assert lag == -3


def test_constant_signal_has_no_correlation():
    assert math.isnan(metrics._corr(np.ones(50), np.arange(50.0)))


def _face_points(n: int, seed: int = 0) -> np.ndarray:
    """Mediapipe-like landmark sets from a real photo, with the mouth opening over time."""
    rng = np.random.default_rng(seed)
    base = _astronaut_points()
    pts = np.repeat(base[None], n, axis=0).astype(np.float64)
    opening = np.abs(np.sin(np.arange(n) / 3.0)) * 10
    lower = list(LIPS_INNER_LOWER[1:-1]) + list(LIPS_OUTER_LOWER[1:-1])
    pts[:, lower, 1] += opening[:, None]
    pts += rng.normal(scale=0.05, size=pts.shape)
    return pts.astype(np.float32)


_PTS = {}


def _astronaut_points() -> np.ndarray:
    if "a" not in _PTS:
        from skimage import data

        _PTS["a"] = face.find_face(data.astronaut(), source="astronaut").points
    return _PTS["a"]


def test_lmd_ignores_translation_scale_and_roll_but_sees_mouth_shape():
    pts = _face_points(20)
    moved = pts.copy()
    c = pts[:, :, :2].mean(axis=1, keepdims=True)
    th = 0.2
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    moved[:, :, :2] = ((pts[:, :, :2] - c) @ rot.T) * 1.7 + c + np.array([40.0, -25.0])
    assert metrics.lmd(moved, pts) < 1e-3
    still = np.repeat(pts[:1], 20, axis=0)
    assert metrics.lmd(still, pts) > 0.02


def test_blinks_are_counted_as_events():
    eye = np.full(300, 0.25)
    eye[50:54] = 0.05
    eye[200:205] = 0.04
    eye[120] = 0.2  # a small dip is not a blink
    eye[250:280] = 0.05  # 1.2 s with the eyes down is not a blink either
    assert metrics.blink_events(eye, fps=25.0) == 2
    assert metrics.blink_rate(eye, fps=25.0) == pytest.approx(2 / (300 / 25 / 60))


def test_closed_in_silence_uses_the_real_closed_level():
    real = np.concatenate([np.zeros(20), np.full(80, 0.2)])
    voiced = np.concatenate([np.zeros(20, bool), np.ones(80, bool)])
    assert metrics.closed_in_silence(np.full(100, 0.02), voiced, real) == 1.0
    assert metrics.closed_in_silence(np.full(100, 0.15), voiced, real) == 0.0
    assert math.isnan(metrics.closed_in_silence(np.zeros(100), np.ones(100, bool), real))  # no silence


def test_jitter_is_zero_for_a_still_face_and_grows_with_noise():
    pts = np.repeat(_astronaut_points()[None], 30, axis=0)
    assert metrics.jitter(pts) == pytest.approx(0.0, abs=1e-9)
    noisy = pts + np.random.default_rng(1).normal(scale=1.0, size=pts.shape).astype(np.float32)
    assert metrics.jitter(noisy) > 0.005
