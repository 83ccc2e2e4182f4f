"""facecast.audio: decode, validation and resampling on real media."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from conftest import encode_video, media

from facecast.audio import Resampler, load_audio, open_audio, wav_truncation
from facecast.errors import InputError
from facecast.types import AudioChunk

SR = 16000


def _reference_decode(path: Path) -> np.ndarray:
    """float32 [C, n] decoded by swresample's own format conversion (independent of audio.py)."""
    resampler = av.AudioResampler(format="fltp")
    with av.open(str(path)) as container:
        frames = [out.to_ndarray() for frame in container.decode(audio=0) for out in resampler.resample(frame)]
    return np.concatenate(frames, axis=1)


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


def test_multichannel_downmix_never_clips(tmp_path):
    """A loud 6-channel 96 kHz file (the same tone at -1 dBFS in every channel) downmixed with
    swresample's float weights peaked at +6.7 dBFS (the issue's file +8.7) and clipped in the AAC
    track; the downmix is normalised so that no sample exceeds full scale."""
    path = tmp_path / "six96k.wav"
    rate, n = 96000, 96000
    tone = (np.sin(2 * np.pi * 220 * np.arange(n) / rate) * 0.9 * 32767).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="5.1")
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 6)[None], format="s16", layout="5.1")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    src = open_audio(path)
    audio = np.concatenate([c.samples for c in src], axis=1)
    assert src.channels == 2 and audio.shape == (2, n)
    assert 0.8 < np.abs(audio).max() <= 1.0
    assert np.allclose(audio[0], audio[1], atol=1e-4)


def test_truncated_wav_is_read_as_far_as_it_goes_with_a_warning(tmp_path, caplog):
    """FFmpeg quietly reads a WAV cut mid-file (and reports the shorter duration): the video
    came out shorter without a word. The header's length is checked: a warning (not an error;
    what is there is valid audio) names the file and both lengths, once per file."""
    whole = media("audio/hdtf_radio31_en.wav").read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(whole[: len(whole) * 6 // 10])
    declared, present = wav_truncation(path)
    assert declared == pytest.approx(8.0, abs=0.01) and present == pytest.approx(4.8, abs=0.01)
    src = open_audio(path)
    open_audio(path)
    assert sum(c.num_samples for c in src) / src.sample_rate == pytest.approx(present, abs=0.01)
    warnings = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1 and "cut.wav" in warnings[0] and "8.0 s" in warnings[0] and "4.8 s" in warnings[0]
    assert wav_truncation(media("audio/hdtf_radio31_en.wav")) is None
    assert wav_truncation(media("audio/jfk_en.flac")) is None


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
    grey = np.repeat(40 * np.arange(5, dtype=np.uint8), 64 * 64 * 3).reshape(5, 64, 64, 3)
    path = encode_video(tmp_path / "silent.mp4", grey, options={"crf": "23"})
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


def test_write_wav_round_trips_long_mono_speech(tmp_path):
    """write_wav: 16-bit mono WAV in 10 s blocks; load_audio reads back every sample (within one
    16-bit step), out-of-range samples clipped."""
    from facecast.audio import write_wav

    rate = 16000
    t = np.arange(int(23.5 * rate)) / rate  # more than two 10 s blocks
    x = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    x[100] = 3.0
    path = write_wav(tmp_path / "x.wav", x, rate)
    y = load_audio(path, sample_rate=rate).samples[0]
    assert y.shape == x.shape
    assert abs(y[100] - 32767 / 32768) < 1e-4
    x[100] = 1.0
    assert np.max(np.abs(y - x)) < 2 / 32768
