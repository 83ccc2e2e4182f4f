"""dub's learned mouth (facecast.dubbing.learned): the twin's mouth model trained on the video's
own speech, fused with the phone model. Synthetic speech whose loudness drives a mouth."""

import numpy as np
import pytest

from facecast.dubbing import learned
from facecast.dubbing.calibrate import Calibration
from facecast.dubbing.learned import OwnSpeech, face_mouth, fit_learned
from facecast.face import mouth_metrics
from facecast.landmarks import JAW_LOWER, LIPS_INNER_LOWER, LIPS_OUTER_LOWER
from facecast.segments import Segment
from facecast.types import MOTION_INDEX

FPS = 25.0
RATE = 16000


def face(seed=0):
    """One plausible frontal face [478, 3] (a grid; only eyes and lips matter here) with the
    lower lip and jaw movable."""
    from facecast.landmarks import LEFT_EYE_CORNERS, LIPS_INNER_UPPER, LIPS_OUTER_UPPER, RIGHT_EYE_CORNERS

    rng = np.random.default_rng(seed)
    p = np.zeros((478, 3), np.float32)
    p[:, :2] = rng.uniform(80, 120, (478, 2))
    p[list(RIGHT_EYE_CORNERS), :2] = [[70, 80], [90, 80]]
    p[list(LEFT_EYE_CORNERS), :2] = [[110, 80], [130, 80]]
    for chain, y in ((LIPS_OUTER_UPPER, 138), (LIPS_INNER_UPPER, 141), (LIPS_INNER_LOWER, 142),
                     (LIPS_OUTER_LOWER, 146), (JAW_LOWER, 170)):
        p[list(chain), 0] = np.linspace(82, 118, len(chain))
        p[list(chain), 1] = y
    return p


def speech(seconds, seed):
    """(audio float32 at 16 kHz, per-frame gap in IOD): noise bursts whose loudness the mouth
    follows, 3-5 syllables per second, some pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    env = np.clip(np.convolve(rng.normal(0, 1, n), np.ones(5) / 5, "same"), 0, None)
    env[rng.random(n) < 0.1] = 0
    t = np.arange(int(seconds * RATE)) / RATE
    amp = np.interp(t, np.arange(n) / FPS, env)
    audio = (0.2 * amp * rng.normal(0, 1, len(t)) * (1 + np.sin(2 * np.pi * 180 * t))).astype(np.float32)
    return audio, (0.25 * env / env.max()).astype(np.float32)


def footage(seconds, seed, voiced_s=None):
    audio, gap = speech(seconds, seed)
    base = face()
    iod = 40.0
    pts = np.repeat(base[None], len(gap), 0)
    for chain in (LIPS_INNER_LOWER, LIPS_OUTER_LOWER, JAW_LOWER):
        pts[:, list(chain), 1] += gap[:, None] * iod
    voiced = gap > 0.01
    if voiced_s is not None:
        voiced[int(voiced_s * FPS):] = False
    params = np.random.default_rng(seed + 7).uniform(0, 1, (len(gap), len(MOTION_INDEX))).astype(np.float32)
    return OwnSpeech(params, pts, voiced, audio, FPS), gap


@pytest.fixture
def quick(monkeypatch):
    """A small, short training (the shipped one takes ~30 s or more on 2 cores)."""
    from facecast.twin.mouth import MouthConfig

    monkeypatch.setattr(learned, "learn_config", lambda: MouthConfig(
        steps=80, ensemble=1, num_mels=20, channels=16, hidden=32, batch=8, seq_frames=24, freq_mask=4))


def test_face_mouth_gap_is_the_face_mesh_mouth_opening():
    from facecast.twin.mouth import aperture

    own, gap = footage(4.0, 0)
    got = aperture(face_mouth(own.points))
    want = mouth_metrics(own.points)["mouth_open"]
    assert np.allclose(got, want, atol=1e-4) and np.corrcoef(got, gap)[0, 1] > 0.99


def test_learned_mouth_is_used_where_it_beats_the_phones_and_follows_new_speech(quick):
    own, _ = footage(30.0, 1)
    model, fit = fit_learned(own, Calibration(0.0, 0.8))
    assert fit.used and model is not None, fit.why
    assert fit.r_learned > 0.5 and fit.r_fused >= fit.r_phones + learned.MIN_GAIN and fit.weight > 0
    # New speech, in two contiguous segments: the targets follow its mouth, on this speaker's scale.
    audio, gap = speech(8.0, 2)
    params = np.zeros((len(gap), len(MOTION_INDEX)), np.float32)
    half = len(gap) // 2
    cut = int(half / FPS * RATE)
    parts = [Segment(0.0, half / FPS, 0, half, audio[:cut], ()),
             Segment(half / FPS, 8.0, half, len(gap) - half, audio[cut:], ())]
    targets = np.concatenate([model.targets(s, params[s.first_frame:s.first_frame + s.num_frames]) for s in parts])
    assert targets.shape == (len(gap), 2) and np.isfinite(targets).all()
    assert np.corrcoef(targets[:, 0], gap)[0, 1] > 0.5
    assert 0.0 <= targets[:, 0].min() and targets[:, 0].max() <= 0.3  # within the range it saw
    assert "learned" in fit.text()


def test_too_little_speech_keeps_the_phones(quick):
    own, _ = footage(20.0, 3, voiced_s=6.0)
    model, fit = fit_learned(own, Calibration(0.0, 0.8))
    assert model is None and not fit.used and "needs 10" in fit.why
    assert fit.text().startswith("phone-driven mouth")


def test_eval_links_score_each_step_of_the_chain():
    """quality.dub_eval's links: asked vs real (with its lag), drawn vs asked, measured vs both."""
    from pathlib import Path

    from facecast.quality.dub_eval import Truth, _links

    own, gap = footage(8.0, 4)
    real = mouth_metrics(own.points)["mouth_open"]
    truth = Truth(Path("b.mp4"), FPS, own.points, own.voiced, Path("b.wav"), len(gap))
    asked = np.concatenate([np.full(2, real[0]), real[:-2]])  # the real mouth, 2 frames late
    drawn = asked + np.random.default_rng(0).normal(0, 0.01, len(asked))
    links = _links({"asked": list(asked), "drawn": list(drawn)}, drawn, truth, len(gap))
    assert links["asked_lag"] == 2 and links["asked_corr_best"] > 0.99 > links["asked_corr"]
    assert 0.8 < links["drawn_vs_asked"] < 1.0 and links["rendered_vs_drawn"] > 0.999
