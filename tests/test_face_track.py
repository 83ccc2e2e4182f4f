"""facecast.face.track: tracking a real talking-head video, smoothing, gaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import media
from face_helpers import decode
from facecast import face as F
from facecast.types import VideoFrames


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
