"""Twin mouth model: features, training, round trip, determinism (tiny configs, CPU, fast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import media

from facecast.twin.features import SAMPLE_RATE, audio_features
from facecast.twin.mouth import (
    MouthConfig,
    MouthModel,
    aperture,
    calibrate_gain,
    mouth_width,
    predict_mouth,
    train_mouth,
)

TINY = MouthConfig(num_mels=16, context_s=0.1, lookahead_s=0.1, step_s=0.02, channels=8, hidden=16,
                   num_pca=4, dropout=0.1, batch=4, seq_frames=8, steps=150, lr=1e-2,
                   freq_mask=2, time_mask=1, ensemble=2)


def synthetic_clip(seconds: float, fps: float, seed: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Tone bursts whose loudness opens a fake mouth: audio16k, fps, mouth [T, 53, 2]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    env = np.clip(np.sin(2 * np.pi * 1.7 * t + rng.uniform(0, 6)), 0, None) ** 2
    audio = (0.3 * env * np.sin(2 * np.pi * 220 * t) + 1e-3 * rng.standard_normal(n)).astype(np.float32)
    frames = int(seconds * fps)
    opening = np.interp(np.arange(frames) / fps, t, env)
    base = np.random.default_rng(99).uniform(0.3, 0.7, (53, 2)).astype(np.float32)  # one person
    mouth = np.repeat(base[None], frames, 0)
    mouth[:, 30:40, 1] += 0.1 * opening[:, None]  # inner lower lip drops with loudness
    mouth[:, 40:53, 1] += 0.05 * opening[:, None]  # and the jaw
    return audio, fps, mouth.astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    clips = [synthetic_clip(4.0, 25.0, 0), synthetic_clip(3.0, 30.0, 1)]
    clips[1][2][10:14] = np.nan  # ignored frames (e.g. no face)
    model, stats = train_mouth(clips, TINY, seed=3)
    return clips, model, stats


def test_training_lowers_the_loss_and_predicts_shapes(trained):
    clips, model, stats = trained
    assert stats["loss_last"] < 0.3 * stats["loss_first"]
    assert stats["steps"] == TINY.steps and stats["seconds"] > 0
    assert not model.training
    audio, fps, mouth = clips[0]
    pred = predict_mouth(model, audio, fps, 37)
    assert pred.shape == (37, 53, 2) and pred.dtype == np.float32
    assert np.isfinite(pred).all()
    # it learnt the loudness -> opening relation of the synthetic data
    full = predict_mouth(model, audio, fps, len(mouth))
    assert np.corrcoef(aperture(full), aperture(mouth))[0, 1] > 0.9


def test_state_dict_and_config_round_trip_exactly(trained):
    clips, model, _ = trained
    clone = MouthModel(MouthConfig.from_dict(model.config.to_dict()))
    clone.load_state_dict(model.state_dict())
    clone.eval()
    audio, fps, _ = clips[1]
    np.testing.assert_array_equal(predict_mouth(model, audio, fps, 50), predict_mouth(clone, audio, fps, 50))


def test_training_is_deterministic_for_a_seed():
    clips = [synthetic_clip(2.0, 25.0, 5)]
    a, _ = train_mouth(clips, TINY, steps=5, seed=7)
    b, _ = train_mouth(clips, TINY, steps=5, seed=7)
    c, _ = train_mouth(clips, TINY, steps=5, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_features_are_aligned_to_frame_times(fps):
    """A click at 1.0 s shows in frame i's window at offset 1.0 - i / fps."""
    audio = np.zeros(2 * SAMPLE_RATE, np.float32)
    audio[SAMPLE_RATE - 40: SAMPLE_RATE + 40] = np.random.default_rng(0).standard_normal(80)
    n = int(2 * fps)
    feats = audio_features(audio, fps, n, TINY)
    assert feats.shape == (n, TINY.num_features) and feats.dtype == np.float32
    energy = feats.reshape(n, TINY.num_mels, TINY.num_offsets).mean(1)  # [frames, offsets]
    offsets = np.linspace(-TINY.context_s, TINY.lookahead_s, TINY.num_offsets)
    centre = TINY.num_offsets // 2
    hit = int(round(fps))  # the frame at exactly 1.0 s
    assert int(np.argmax(energy[hit])) == centre
    for i in (hit - 2, hit + 1):
        assert abs(offsets[int(np.argmax(energy[i]))] - (1.0 - i / fps)) <= TINY.step_s / 2 + 1e-6
    far = hit + int(0.5 * fps)  # window ends 0.4 s after the click: silent everywhere
    assert energy[far].max() < energy[hit].max() - 5


def test_aperture_and_width_measure_the_right_points():
    mouth = np.zeros((2, 53, 2), np.float32)
    mouth[1, 33:38, 1] = 0.1  # inner lower, central five (below inner upper 23..27)
    mouth[:, 10, 0] = 0.5  # right corner of the outer lip
    np.testing.assert_allclose(aperture(mouth), [0.0, 0.1], atol=1e-7)
    np.testing.assert_allclose(mouth_width(mouth), [0.5, 0.5], atol=1e-7)


def test_real_speech_features_and_prediction_are_finite(trained):
    from facecast.audio import load_audio

    audio = load_audio(media("audio/jfk_en.flac")).samples[0][: 3 * SAMPLE_RATE]
    _, model, _ = trained
    feats = audio_features(audio, 25.0, 75, model.config)
    assert feats.shape == (75, model.config.num_features) and np.isfinite(feats).all()
    pred = predict_mouth(model, audio, 25.0, 75)
    assert pred.shape == (75, 53, 2) and np.isfinite(pred).all()


def test_gain_scales_the_deviation_from_the_mean_mouth(trained):
    """config.gain multiplies the predicted deviation from the mean mouth (the PCA mean), so the
    lip gap's spread grows by exactly the gain and its shape over time does not change."""
    from dataclasses import replace

    clips, model, _ = trained
    audio, fps, mouth = clips[0]
    base = predict_mouth(model, audio, fps, len(mouth))
    loud = MouthModel(replace(model.config, gain=1.5))
    loud.load_state_dict(model.state_dict())
    boosted = predict_mouth(loud, audio, fps, len(mouth))
    mean = model.pca_mean.reshape(53, 2).numpy()
    np.testing.assert_allclose(boosted - mean, 1.5 * (base - mean), atol=1e-5)
    assert MouthConfig.from_dict(loud.config.to_dict()).gain == 1.5


def test_calibrate_gain_measures_under_articulation_on_held_out_folds():
    """A model trained too briefly to reach the full opening under-articulates on held-out parts;
    calibrate_gain measures that (std ratio > 1) and returns it clipped to [1, max_gain]."""
    clips = [synthetic_clip(4.0, 25.0, 0), synthetic_clip(3.0, 30.0, 1)]
    gain, stats = calibrate_gain(clips, TINY, folds=2, steps=40, seed=0)
    assert stats["folds"] == 2 and stats["frames"] > 100
    assert stats["std_ratio"] > 1.05 and stats["aperture_r"] > 0.5
    assert gain == pytest.approx(min(stats["std_ratio"], 1.6))
    capped, _ = calibrate_gain(clips, TINY, folds=2, steps=40, seed=0, max_gain=1.01)
    assert capped == 1.01
    # Too little footage to hold anything out: no error, the gain stays 1.
    short = [synthetic_clip(0.5, 25.0, 2)]
    gain, stats = calibrate_gain(short, TINY, folds=3, steps=5)
    assert gain == 1.0 and stats["frames"] == 0

