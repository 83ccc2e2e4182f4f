"""facecast.analysis: loudness envelope and voice activity (silero-VAD) on real speech."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conftest import media

from facecast.analysis import VoiceActivity, loudness_envelope
from facecast.audio import load_audio
from facecast.options import LoudnessOptions

SR = 16000


@pytest.fixture(scope="module")
def vad() -> VoiceActivity:
    return VoiceActivity()


@pytest.fixture(scope="module")
def jfk16k() -> np.ndarray:
    return load_audio(media("audio/jfk_en.flac")).samples[0]


# -- loudness -----------------------------------------------------------------------------------


def test_loudness_fixed_mapping():
    t = np.arange(SR * 2) / SR
    opts = LoudnessOptions()
    levels = []
    for dbfs in (-70, -50, -30, -15, -3):
        amp = 10 ** (dbfs / 20) * np.sqrt(2)  # sine RMS = amp / sqrt(2)
        env = loudness_envelope((amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR, 25, 50)
        levels.append(float(np.median(env)))
        expected = np.clip((dbfs - opts.floor_db) / (opts.ceiling_db - opts.floor_db), 0, 1)
        assert np.median(env) == pytest.approx(expected, abs=0.02)
    assert levels[0] == 0.0 and levels[-1] == 1.0
    # A steady tone reads the same at the edges, where half the window is outside the audio.
    steady = loudness_envelope((0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR, 25, 50)
    assert np.ptp(steady) < 0.01
    assert all(a < b for a, b in zip(levels[:-1], levels[1:-1]))
    assert np.all(loudness_envelope(np.zeros(SR, np.float32), SR, 25, 25) == 0.0)


def test_loudness_chunked_equals_whole(jfk16k):
    fps, n = 25.0, 275
    whole = loudness_envelope(jfk16k, SR, fps, n)
    assert whole.dtype == np.float32 and whole.shape == (n,)
    assert whole.max() > 0.8 and whole.min() < 0.5  # speech and pauses both present
    margin = int(0.02 * SR) + 1
    parts = []
    for first in range(0, n, 25):
        count = min(25, n - first)
        lo = max(0, int(first / fps * SR) - margin)
        hi = int((first + count) / fps * SR) + margin
        parts.append(loudness_envelope(jfk16k[lo:hi], SR, fps, count, first, samples_start=lo / SR))
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)
    # Without margins only the frames at chunk edges move, and only a little.
    bare = np.concatenate([
        loudness_envelope(jfk16k[int(f / fps * SR) : int((f + 25) / fps * SR)], SR, fps, min(25, n - f), f,
                          samples_start=int(f / fps * SR) / SR)
        for f in range(0, n, 25)
    ])
    assert np.abs(bare - whole).max() < 0.1
    assert np.mean(np.abs(bare - whole) > 1e-5) < 0.1


def test_loudness_is_louder_where_voiced(vad, jfk16k):
    vad.reset()
    voiced = vad.voiced_frames(jfk16k, 25, 275)
    env = loudness_envelope(jfk16k, SR, 25, 275)
    assert env[voiced].mean() > env[~voiced].mean() + 0.15


# -- VAD ----------------------------------------------------------------------------------------


def test_vad_finds_speech_in_jfk_and_none_in_silence(vad, jfk16k):
    vad.reset()
    voiced = vad.voiced_frames(jfk16k, 25, 275)
    assert voiced.dtype == bool and voiced.shape == (275,)
    assert 0.5 < voiced.mean() < 0.95  # mostly speech, with pauses
    assert not voiced[:5].any()  # jfk starts with ~0.3 s of silence
    vad.reset()
    assert not vad.voiced_frames(np.zeros(SR * 4, np.float32), 25, 100).any()
    vad.reset()
    hiss = np.random.default_rng(0).standard_normal(SR * 4).astype(np.float32) * 0.003
    assert vad.voiced_frames(hiss, 25, 100).mean() < 0.05


def test_vad_probabilities_chunked_equal_whole(vad, jfk16k):
    vad.reset()
    whole = np.concatenate([vad.speech_probability(jfk16k), vad.flush()])
    assert whole.shape == (int(np.ceil(jfk16k.size / 512)),)
    vad.reset()
    parts = [vad.speech_probability(jfk16k[i : i + SR]) for i in range(0, jfk16k.size, SR)]
    chunked = np.concatenate(parts + [vad.flush()])
    np.testing.assert_allclose(chunked, whole, atol=1e-4)
    assert whole.max() > 0.9 and whole.min() < 0.1


def test_vad_voiced_frames_chunked_match_whole(vad):
    x = load_audio(media("audio/hdtf_radio31_en.wav")).samples[0]
    fps = 25
    n = int(x.size / SR * fps)
    vad.reset()
    whole = vad.voiced_frames(x, fps, n)
    vad.reset()
    parts = [vad.voiced_frames(x[i * SR : (i + 1) * SR], fps, 25, i * 25) for i in range(n // 25)]
    chunked = np.concatenate(parts)
    assert chunked.shape == whole.shape
    assert (chunked == whole).mean() >= 0.98
    assert whole.any()


def test_vad_hangover_bridges_short_dips(vad, jfk16k):
    vad.reset()
    voiced = vad.voiced_frames(jfk16k, 25, 275).astype(np.int8)
    edges = np.diff(voiced)
    offs, ons = np.nonzero(edges == -1)[0], np.nonzero(edges == 1)[0]
    # Length of every silent run that sits between two voiced runs.
    gaps = [int(ons[ons > off][0] - off) for off in offs if (ons > off).any()]
    hangover = round(vad.options.hangover_seconds * 25)
    assert all(g > hangover for g in gaps), gaps
    assert len(gaps) >= 2  # jfk has real pauses, so the check above is not vacuous


def test_vad_odd_fps_and_offset_start(vad, jfk16k):
    # 22.13 fps frames and a stream that starts at 2.0 s on the timeline.
    fps = float(Fraction(1350, 61))
    vad.reset(start=2.0)
    late = vad.voiced_frames(jfk16k, fps, int(11 * fps), start_frame=round(2.0 * fps))
    vad.reset()
    early = vad.voiced_frames(jfk16k, fps, int(11 * fps))
    assert (late == early).mean() > 0.95


def test_vad_jit_fallback_matches_onnx(monkeypatch, vad, jfk16k):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # "import onnxruntime" now fails
    jit = VoiceActivity()
    assert jit.backend == "jit" and vad.backend == "onnx"
    x = jfk16k[: 3 * SR]
    vad.reset()
    jit.reset()
    np.testing.assert_allclose(jit.speech_probability(x), vad.speech_probability(x), atol=1e-3)


def test_first_speech_finds_where_speech_starts_and_leaves_the_stream_fresh(vad, jfk16k):
    """The pre-scan `say` runs before rendering: the first window scored as speech (as
    voiced_frames would), None for silence or hiss, in pieces as well as whole, and the
    detector's stream state is as new afterwards."""
    vad.reset()
    t = vad.first_speech([jfk16k])
    assert t is not None and 0.2 < t < 0.6  # jfk starts with ~0.3 s of silence
    assert vad.first_speech(np.array_split(jfk16k, 37)) == t
    vad.reset()
    first_voiced = int(np.argmax(vad.voiced_frames(jfk16k, 25, 275)))
    assert abs(first_voiced / 25 - t) < 0.1
    assert vad.first_speech([np.zeros(SR * 30, np.float32)]) is None
    hiss = np.random.default_rng(0).standard_normal(SR * 4).astype(np.float32) * 0.003
    assert vad.first_speech([hiss]) is None
    vad.first_speech([jfk16k[: SR]])  # stops mid-stream
    vad.reset()
    fresh = vad.voiced_frames(jfk16k, 25, 275)
    vad.reset()
    vad.first_speech([jfk16k])
    np.testing.assert_array_equal(vad.voiced_frames(jfk16k, 25, 275), fresh)


def test_pitch_track_reads_a_voice_and_nothing_in_noise():
    """analysis.pitch_track (issue #17, for brows and nods): a 150 Hz voice-like tone reads about
    7 semitones above 100 Hz on every frame; white noise and silence read no pitch (NaN)."""
    import numpy as np

    from facecast.analysis import pitch_track

    sr = 16000
    t = np.arange(3 * sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 150 * t) + 0.1 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    x[sr:2 * sr] = np.random.default_rng(0).normal(0, 0.05, sr)
    x[2 * sr:] = 0
    p = pitch_track(x, sr, 25.0, 75)
    assert np.all(np.abs(p[1:24] - 12 * np.log2(1.5)) < 0.3)
    assert np.isnan(p[27:49]).mean() > 0.9 and np.isnan(p[52:]).all()
