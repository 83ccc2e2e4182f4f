"""facecast.audio: decode, validation, resampling, loudness and VAD on real media."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import media

from facecast.audio import (
    LoudnessOptions,
    Resampler,
    VoiceActivity,
    load_audio,
    loudness_envelope,
    open_audio,
)
from facecast.errors import InputError
from facecast.types import AudioChunk

SR = 16000


def _reference_decode(path: Path) -> np.ndarray:
    """float32 [C, n] decoded by swresample's own format conversion (independent of audio.py)."""
    resampler = av.AudioResampler(format="fltp")
    with av.open(str(path)) as container:
        frames = [out.to_ndarray() for frame in container.decode(audio=0) for out in resampler.resample(frame)]
    return np.concatenate(frames, axis=1)


@pytest.fixture(scope="module")
def vad() -> VoiceActivity:
    return VoiceActivity()


@pytest.fixture(scope="module")
def jfk16k() -> np.ndarray:
    return load_audio(media("audio/jfk_en.flac")).samples[0]


# -- open_audio ---------------------------------------------------------------------------------


def test_lecture_metadata_chunks_and_samples():
    path = media("audio/lecture_en.wav")
    src = open_audio(path)
    assert (src.sample_rate, src.channels) == (44100, 2)
    assert src.duration == pytest.approx(21.339, abs=0.01)
    chunks = list(src)
    assert all(c.samples.dtype == np.float32 and c.channels == 2 and c.sample_rate == 44100 for c in chunks)
    assert all(c.num_samples == 44100 for c in chunks[:-1])
    # Starts are exact and contiguous.
    for prev, cur in zip(chunks, chunks[1:]):
        assert cur.start == pytest.approx(prev.end, abs=1e-9)
    whole = np.concatenate([c.samples for c in chunks], axis=1)
    ref = _reference_decode(path)
    assert whole.shape == ref.shape == (2, 941056)
    np.testing.assert_allclose(whole, ref, atol=1e-6)


def test_flac_s32_scaling_and_reiteration():
    path = media("audio/jfk_en.flac")
    src = open_audio(path, chunk_seconds=0.25)
    first = list(src)
    second = list(src)  # re-iterable: reopens the file
    assert len(first) == len(second) == 44
    assert all(c.num_samples == 11025 for c in first[:-1])
    a = np.concatenate([c.samples for c in first], axis=1)
    b = np.concatenate([c.samples for c in second], axis=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, _reference_decode(path), atol=1e-6)
    assert 0.3 < np.abs(a).max() <= 1.0


def test_audio_track_of_a_video():
    src = open_audio(media("video/may_en.mp4"))
    assert (src.sample_rate, src.channels) == (48000, 2)
    assert src.start == 0.0
    total = sum(c.num_samples for c in src)
    assert total == pytest.approx(5.0 * 48000, abs=1024)


def test_multichannel_is_downmixed_to_stereo(tmp_path):
    path = tmp_path / "surround.wav"
    n = 16000
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="5.1")
        tone = (np.sin(2 * np.pi * 440 * np.arange(n) / 16000) * 8000).astype(np.int16)
        inter = np.zeros((n, 6), np.int16)
        inter[:, 0] = tone  # front-left only
        frame = av.AudioFrame.from_ndarray(inter.reshape(1, -1), format="s16", layout="5.1")
        frame.sample_rate = 16000
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    src = open_audio(path)
    assert src.channels == 2
    audio = np.concatenate([c.samples for c in src], axis=1)
    assert audio.shape == (2, n)
    # The front-left tone lands in the left channel, not the right.
    assert np.abs(audio[0]).max() > 0.1
    assert np.abs(audio[1]).max() < 0.01


# -- validation ---------------------------------------------------------------------------------


def _expect_input_error(path: Path, *fragments: str, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        open_audio(path, **kwargs)
    msg = str(info.value)
    assert path.name in msg
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


def test_missing_file(tmp_path):
    _expect_input_error(tmp_path / "nope.wav", "not found")


def test_directory(tmp_path):
    folder = tmp_path / "clips.wav"
    folder.mkdir()
    _expect_input_error(folder, "directory")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    _expect_input_error(path, "empty")


def test_random_bytes_named_wav(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    _expect_input_error(path, "not a readable audio file", "Convert")


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is a shopping list, not a recording\n" * 20)
    _expect_input_error(path, "not a readable")


def test_png_image_given_as_audio(tmp_path):
    path = tmp_path / "face.png"
    path.write_bytes(media("portrait/leijun.png").read_bytes())
    _expect_input_error(path, "no audio stream", "image")


def test_silent_video_has_no_audio_stream(tmp_path):
    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    _expect_input_error(path, "no audio stream", "video")


def test_too_long(tmp_path):
    msg = _expect_input_error(media("audio/jfk_en.flac"), "limit", "Split", max_seconds=5)
    assert "11" in msg or "0.2 min" in msg


def test_truncated_file_fails_while_decoding(tmp_path):
    path = tmp_path / "cut.flac"
    path.write_bytes(media("audio/jfk_en.flac").read_bytes()[:300_000])
    src = open_audio(path)  # the header and the first frames are fine
    with pytest.raises(InputError) as info:
        for _ in src:
            pass
    assert "cut.flac" in str(info.value) and "damaged or truncated" in str(info.value)


# -- Resampler ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["audio/lecture_en.wav", "audio/jfk_en.flac", "video/retalking_face1_en.mp4"])
def test_resampler_counts_and_starts_add_up(name):
    src = open_audio(media(name))
    rs = Resampler(SR)
    outs = [rs.feed(c) for c in src] + [rs.flush()]
    n_in = sum(c.num_samples for c in src)
    total = sum(o.num_samples for o in outs)
    assert abs(total - round(n_in / src.sample_rate * SR)) <= 1
    assert all(o.channels == 1 and o.sample_rate == SR for o in outs)
    t = 0.0
    for o in outs:
        assert o.start == pytest.approx(t, abs=1e-9)
        t += o.duration


def test_resampler_chunked_equals_whole_and_is_aligned():
    src = open_audio(media("audio/lecture_en.wav"))
    chunks = list(src)
    rs = Resampler(SR)
    chunked = np.concatenate([rs.feed(c).samples for c in chunks] + [rs.flush().samples], axis=1)
    whole_in = AudioChunk(np.concatenate([c.samples for c in chunks], axis=1), src.sample_rate, 0.0)
    rs2 = Resampler(SR)
    whole = np.concatenate([rs2.feed(whole_in).samples, rs2.flush().samples], axis=1)
    assert chunked.shape == whole.shape
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    # The resampled signal lines up with the original in time (filter delay compensated).
    direct = whole_in.mono()[:: 441][: 16000 // 160 * 20]
    resampled = whole[0][::160][: direct.shape[0]]
    assert np.corrcoef(direct, resampled)[0, 1] > 0.95


def test_resampler_impulse_stays_in_place():
    x = np.zeros((1, 3 * 44100), np.float32)
    x[0, 44100] = 1.0  # 1.000 s
    rs = Resampler(SR)
    parts = [
        rs.feed(AudioChunk(x[:, i : i + 10000], 44100, i / 44100)).samples for i in range(0, x.shape[1], 10000)
    ]
    y = np.concatenate(parts + [rs.flush().samples], axis=1)[0]
    assert abs(int(np.argmax(np.abs(y))) - SR) <= 1


def test_resampler_stereo_and_identity_rate():
    src = open_audio(media("audio/hdtf_radio31_en.wav"))  # already 16 kHz stereo
    rs = Resampler(SR, mono=False)
    chunks = list(src)
    out = np.concatenate([rs.feed(c).samples for c in chunks] + [rs.flush().samples], axis=1)
    np.testing.assert_array_equal(out, np.concatenate([c.samples for c in chunks], axis=1))


def test_resampler_rejects_a_jump():
    rs = Resampler(SR)
    rs.feed(AudioChunk(np.zeros((1, 4410), np.float32), 44100, 0.0))
    with pytest.raises(ValueError, match="contiguous"):
        rs.feed(AudioChunk(np.zeros((1, 4410), np.float32), 44100, 0.5))


def test_load_audio():
    clip = load_audio(media("audio/jfk_en.flac"))
    assert clip.samples.shape == (1, 176000) and clip.sample_rate == SR
    stereo = load_audio(media("audio/lecture_en.wav"), sample_rate=22050, mono=False)
    assert stereo.channels == 2 and abs(stereo.num_samples - round(941056 * 22050 / 44100)) <= 1


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
