"""Live streaming: contiguous frames whatever the push size, the look-ahead, idle frames in
silence, barge-in, text input, fragmented MP4 that decodes, and clear errors for bad input.

Most tests inject a cheap renderer (the portrait repeated): they check timing, audio and motion,
which do not depend on the pixels. The fMP4 and text tests render for real at 128x128.
No test asserts on wall-clock speed."""

from __future__ import annotations

import asyncio
import io
import math

import av
import numpy as np
import pytest
import torch

from conftest import media
from facecast.audio import load_audio
from facecast.media import fmp4_boxes
from facecast.errors import InputError
from facecast.stream import INTERRUPT, SentenceSplitter, StreamOptions, StreamSession, stream
from facecast.types import AudioChunk, MotionFrames, VideoFrames

FPS = 25.0
LOOKAHEAD = StreamOptions().lookahead_s
OPEN = 0.15  # jaw_open of a clearly open mouth (MotionOptions.jaw_scale 0.65: vowels reach ~0.3-0.6)


@pytest.fixture(scope="module")
def portrait():
    from facecast import face

    path = media("portrait/sam_512.jpg")
    image = face.load_image(path)
    return face.frame_portrait(image, face.find_face(image, source=str(path)), size=128, source=str(path))


@pytest.fixture(scope="module")
def speech():
    """2.4 s of real speech (JFK), as 44.1 kHz stereo: exercises resampling and down-mixing."""
    a = load_audio(media("audio/jfk_en.flac"), sample_rate=44100, mono=False)
    n = int(2.4 * 44100)
    return AudioChunk(np.ascontiguousarray(a.samples[:, :n]), 44100)


def still(portrait):
    """A renderer that returns the portrait itself: fast, and the right shape."""
    image = torch.from_numpy(portrait.image.copy())

    def render(motion: MotionFrames) -> VideoFrames:
        return VideoFrames(image[None].expand(motion.num_frames, -1, -1, -1).clone(), motion.fps, motion.first_frame)

    return render


def session(portrait, **kw):
    render = kw.pop("render", None) or still(portrait)
    return StreamSession(portrait, StreamOptions(size=128, realtime=False, **kw), render=render)


def pieces(audio: AudioChunk, seconds: float):
    hop = max(1, round(seconds * audio.sample_rate))
    for i in range(0, audio.num_samples, hop):
        yield AudioChunk(audio.samples[:, i:i + hop], audio.sample_rate)


def check_contiguous(chunks, rate=48000):
    """Frames tile the timeline from 0 (pts +1 each, no gaps/duplicates) and each chunk's audio
    covers exactly its frames' span."""
    nxt = 0
    for c in chunks:
        assert c.first_frame == nxt, f"gap or overlap at frame {nxt}: chunk starts at {c.first_frame}"
        assert c.motion.first_frame == c.first_frame and c.motion.num_frames == c.num_frames
        np.testing.assert_allclose(c.video.pts_seconds, (nxt + np.arange(c.num_frames)) / FPS)
        assert c.audio.sample_rate == rate
        assert c.audio.start == pytest.approx(c.first_frame / FPS)
        assert c.audio.num_samples == round((c.first_frame + c.num_frames) / FPS * rate) - round(c.first_frame / FPS * rate)
        nxt += c.num_frames
    return nxt


def run(sess, audio, hop_s):
    chunks = []
    for piece in pieces(audio, hop_s):
        sess.push_audio(piece)
        chunks += sess.poll()
    return chunks + sess.close()


# ---------------------------------------------------------------------------------------------


def test_push_size_does_not_change_the_frames(portrait, speech):
    expected = math.ceil(speech.duration * FPS - 1e-9)
    motions = {}
    for hop in (0.01, 0.02, 0.137, 1.0):
        chunks = run(session(portrait), speech, hop)
        assert check_contiguous(chunks) == expected, hop
        motions[hop] = np.concatenate([c.motion.params for c in chunks])
        audio = np.concatenate([c.audio.samples for c in chunks], axis=1)
        assert np.abs(audio).max() > 0.05  # the speech comes back out
    # Each frame is computed from the same stretch of input whatever the push size, so the
    # motion is identical.
    for hop in (0.01, 0.137, 1.0):
        np.testing.assert_allclose(motions[hop], motions[0.02], atol=1e-6)
    jaw = motions[0.02][:, 0]
    assert jaw.max() > OPEN, "the mouth should open for speech"


def test_lookahead_is_respected(portrait, speech):
    sess = session(portrait)
    pushed = 0.0
    out = 0
    for piece in pieces(speech, 0.02):
        sess.push_audio(piece)
        pushed += piece.duration
        for c in sess.poll():
            last_t = (c.first_frame + c.num_frames - 1) / FPS
            assert last_t + LOOKAHEAD <= pushed + 1e-6, f"frame at {last_t:.2f}s out with only {pushed:.3f}s of audio"
            out += c.num_frames
        # ... and no later than needed: every frame whose look-ahead has arrived is out.
        due = pushed - LOOKAHEAD
        assert out == (math.floor(due * FPS + 1e-6) + 1 if due >= 0 else 0)
    rest = sess.close()
    assert out + sum(c.num_frames for c in rest) == math.ceil(speech.duration * FPS - 1e-9)


def test_silence_keeps_the_avatar_alive(portrait):
    # Driven by a clock alone: idle frames, mouth closed, blinks, head drifting.
    sess = session(portrait, lookahead_s=0.1)
    chunks = []
    for k in range(1, 151):
        sess.advance_to(k * 0.2)
        chunks += sess.poll()
    assert check_contiguous(chunks) == math.floor((30.0 - 0.1) * FPS + 1e-6) + 1
    params = np.concatenate([c.motion.params for c in chunks])
    motion = MotionFrames(params, FPS, 0)
    assert np.abs(motion.column("jaw_open")).max() < 0.02
    assert np.abs(motion.column("lip_close")).max() < 0.02
    blinks = np.diff((motion.column("blink") > 0.8).astype(int)).clip(0).sum()
    assert blinks >= 3, f"only {blinks} blinks in 30 s of idling"
    assert np.ptp(motion.column("head_yaw")) > 0.005 and np.ptp(motion.column("head_pitch")) > 0.003
    assert np.abs(np.diff(params, axis=0)[:, 7:]).max() < 0.01  # drift, not jumps
    audio = np.concatenate([c.audio.samples for c in chunks], axis=1)
    assert not audio.any()
    # Silent audio pushed as input gives the same closed mouth.
    sess = session(portrait)
    quiet = run(sess, AudioChunk(np.zeros((1, 16000 * 3), np.float32), 16000), 0.02)
    assert np.abs(np.concatenate([c.motion.column("jaw_open") for c in quiet])).max() < 0.02


def test_async_stream_does_not_freeze_on_a_silent_source(portrait):
    async def silent():
        await asyncio.sleep(0.8)
        if False:
            yield None

    async def main():
        got = []
        loop = asyncio.get_running_loop()
        async for c in stream(portrait, silent(), options=StreamOptions(size=128, realtime=True, jitter_s=0.05,
                                                                           lookahead_s=0.1), render=still(portrait)):
            got.append((loop.time(), c))
        return got

    got = asyncio.run(main())
    chunks = [c for _, c in got]
    n = check_contiguous(chunks)
    assert n >= 5, f"only {n} idle frames during 0.8 s of silence"
    # They came out over time, not all at the end.
    assert got[-1][0] - got[0][0] > 0.3


def test_barge_in_returns_the_mouth_to_rest_smoothly(portrait, speech):
    sess = session(portrait)
    chunks = []
    # Speak until the mouth is clearly open, then interrupt.
    for piece in pieces(speech, 0.02):
        sess.push_audio(piece)
        chunks += sess.poll()
        if chunks and chunks[-1].motion.params[-1, 0] > OPEN and chunks[-1].end > 0.6:
            break
    else:
        pytest.fail("the mouth never opened")
    cut = sess._next_frame  # first frame not computed yet: the interrupt happens here
    jaw_before = chunks[-1].motion.params[-1, 0]
    sess.interrupt()
    for k in range(1, 26):  # the clock goes on, in silence
        sess.advance_to(cut / FPS + k * 0.02)
        chunks += sess.poll()
    chunks += sess.poll()
    n = check_contiguous(chunks)
    assert n >= cut + 8
    params = np.concatenate([c.motion.params for c in chunks])
    jaw = params[:, 0]
    after = np.arange(n) / FPS
    settled = after >= (cut - 1) / FPS + 0.1  # 100 ms after the last frame before the interrupt
    assert np.abs(jaw[settled]).max() < 0.03, jaw[cut - 1:cut + 6]
    assert np.abs(jaw[cut:cut + 1] - jaw_before) < 0.5 * jaw_before + 1e-6  # eased, not cut
    steps = np.abs(np.diff(params[cut - 1:cut + 6], axis=0))
    assert steps.max() <= 0.45 * max(jaw_before, 0.1), steps.max(axis=0)  # at least 3 steps down: no pop
    # What was pushed but not yet shown is gone: silence after the interrupt point.
    audio = np.concatenate([c.audio.samples for c in chunks], axis=1)
    assert not audio[:, round(cut / FPS * 48000):].any()
    # A new utterance after the barge-in speaks again, on the same clock.
    more = run(sess, speech, 0.02)
    assert more[0].first_frame == n
    assert np.concatenate([c.motion.column("jaw_open") for c in more]).max() > OPEN


def test_text_in_pieces_speaks_sentence_by_sentence(portrait):
    sess = StreamSession(portrait, StreamOptions(size=128, realtime=False))
    chunks = []
    for piece in ["Hello", " there.", " How are", " you", " today?"]:
        sess.push_text(piece)
        chunks += sess.poll()
    assert chunks, "the first sentence should be spoken before the text ends"
    chunks += sess.close()
    n = check_contiguous(chunks)
    assert n == math.ceil(sess.input_end * FPS - 1e-9) and n > 25
    assert chunks[0].video.frames.shape[1:] == (128, 128, 3)
    jaw = np.concatenate([c.motion.column("jaw_open") for c in chunks])
    assert jaw.max() > OPEN
    assert SentenceSplitter().feed("One. Two") == ["One."]


@pytest.fixture(scope="module")
def voice():
    from facecast.voice import PiperVoice

    return PiperVoice()


class ToneVoice:
    """A stand-in voice: 0.3 s of a 220 Hz tone per word, one open vowel per word (Piper varies
    its timing from run to run, which would blur an exact check)."""

    sample_rate = 22050

    def synthesize(self, text):
        from facecast.types import PhoneSpan
        from facecast.voice import VoicedSentence

        words = text.split()
        n = int(0.3 * self.sample_rate)
        tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / self.sample_rate)).astype(np.float32)
        audio = np.tile(tone, len(words))[None]
        phones = tuple(PhoneSpan("AA", 0.3 * i + 0.05, 0.3 * i + 0.25) for i in range(len(words)))
        yield VoicedSentence(AudioChunk(audio, self.sample_rate, 0.0), phones, text)


def test_async_text_and_audio_mixed_in_order(portrait, speech):
    short = AudioChunk(speech.samples[:, : int(0.8 * 44100)], 44100)

    async def source():
        for piece in ["Good", " morning", " to you"]:  # no sentence end: spoken when audio comes
            yield piece
        for piece in pieces(short, 0.02):
            yield piece
        yield "See you."

    async def main():
        return [c async for c in stream(portrait, source(), options=StreamOptions(size=128, realtime=False),
                                        render=still(portrait), voice=ToneVoice())]

    chunks = asyncio.run(main())
    n = check_contiguous(chunks)
    assert n == math.ceil((1.2 + short.duration + 0.6) * FPS - 1e-6)
    audio = np.concatenate([c.audio.samples for c in chunks], axis=1)[0]
    from facecast.audio import Resampler

    def same(a, b):
        k = min(a.size, b.size)
        return np.corrcoef(a[200:k - 200], b[200:k - 200])[0, 1] > 0.99

    tone = Resampler(48000).feed(next(ToneVoice().synthesize("a b c d")).audio).samples[0]
    rec = Resampler(48000).feed(short).samples[0]
    assert same(audio[: round(1.2 * 48000)], tone)                          # "Good morning to you"
    assert same(audio[round(1.2 * 48000): round((1.2 + short.duration) * 48000)], rec)  # the recording
    assert same(audio[round((1.2 + short.duration) * 48000):], tone[: round(0.6 * 48000)])  # "See you."
    jaw = np.concatenate([c.motion.column("jaw_open") for c in chunks])
    assert jaw[: int(1.2 * FPS)].max() > OPEN  # the known phones drive the mouth


def test_realtime_barge_in_cuts_a_long_sentence(portrait, voice):
    long = "This is a rather long sentence, and it would take quite a few seconds to say out loud."
    full = sum(v.audio.duration for v in voice.synthesize(long))

    async def source():
        yield long
        await asyncio.sleep(1.6)  # let ~1 s of the sentence (several open vowels) play first
        yield INTERRUPT
        yield "Okay."

    async def main():
        return [c async for c in stream(portrait, source(), options=StreamOptions(size=128, realtime=True),
                                        render=still(portrait), voice=voice)]

    chunks = asyncio.run(main())
    n = check_contiguous(chunks)
    assert n / FPS < full, "the interrupted sentence was played to its end"
    jaw = np.concatenate([c.motion.column("jaw_open") for c in chunks])
    assert jaw.max() > OPEN
    # Between the cut-off sentence and "Okay." the mouth comes to rest.
    assert (jaw[int(0.5 * FPS):] < 0.03).any()


def test_fragmented_mp4_decodes_with_the_right_frames(portrait, speech):
    async def source():
        for piece in pieces(speech, 0.02):
            yield piece

    async def main():
        return [c async for c in stream(portrait, source(), options=StreamOptions(size=128, realtime=False, encode=True))]

    chunks = asyncio.run(main())
    n = check_contiguous(chunks)
    assert n == math.ceil(speech.duration * FPS - 1e-9)
    assert all(c.num_frames for c in chunks)  # the end of the fMP4 rides on the last frames
    first = chunks[0].fmp4
    assert [b for b, _ in fmp4_boxes(first)][:2] == ["ftyp", "moov"]
    data = b"".join(c.fmp4 for c in chunks)
    kinds = [b for b, _ in fmp4_boxes(data)]
    assert sum(len(c.fmp4) for c in chunks) == sum(size for _, size in fmp4_boxes(data))  # whole boxes only
    assert kinds[:2] == ["ftyp", "moov"] and set(kinds[2:]) == {"moof", "mdat"}
    assert kinds.count("moof") == math.ceil(n / 12) and "moov" not in kinds[2:]
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"
        keys = [round(float(p.pts * p.time_base) * FPS) for p in c.demux(c.streams.video[0])
                if p.pts is not None and p.is_keyframe]
    assert keys == list(range(0, n, 12))  # a player can start at any fragment
    with av.open(io.BytesIO(data)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == n and (frames[0].width, frames[0].height) == (128, 128)
    assert [round(f.time * FPS) for f in frames] == list(range(n))
    with av.open(io.BytesIO(data)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(samples / 48000 - n / FPS) < 0.05


def test_buffers_stay_bounded_on_a_long_stream(portrait, speech):
    sess = session(portrait, max_utterance_s=1.0)
    clip = AudioChunk(speech.samples[:, : int(2.0 * 44100)], 44100)
    longest = 0
    for _ in range(6):  # 12 s of speech, then 30 s of idling
        for piece in pieces(clip, 0.1):
            sess.push_audio(piece)
            sess.poll()
            longest = max(longest, sess._phones_rec.fed)
    assert longest <= 1.15 * 16000  # the recogniser restarts (memory stays flat in long speech)
    t = sess.input_end
    for k in range(1, 151):
        sess.advance_to(t + k * 0.2)
        sess.poll()
    assert sess._ana._n < 2 * 16000 and sess._out._n < 48000
    assert len(sess._regions) <= 3 and len(sess._final) < 60 and len(sess._vdec) < 40
    assert sess._vad._hist.size < 100 and not sess._pending


def test_bad_inputs_give_clear_errors(portrait):
    sess = session(portrait)
    with pytest.raises(TypeError, match="AudioChunk"):
        sess.push_audio(np.zeros((1, 320), np.float32))
    bad = np.zeros((1, 320), np.float32)
    bad[0, 7] = np.nan
    with pytest.raises(InputError, match="NaN"):
        sess.push_audio(AudioChunk(bad, 16000))
    with pytest.raises(InputError, match="float"):
        sess.push_audio(AudioChunk(np.zeros((1, 320), np.int16), 16000))
    with pytest.raises(InputError, match="sample rate"):
        sess.push_audio(AudioChunk(np.zeros((1, 320), np.float32), 0))
    with pytest.raises(InputError, match="empty"):
        sess.push_text("")
    with pytest.raises(TypeError, match="str"):
        sess.push_text(b"hello")
    with pytest.raises(ValueError, match="lookahead_s"):
        StreamSession(portrait, StreamOptions(lookahead_s=0.5))
    sess.close()
    with pytest.raises(RuntimeError, match="closed"):
        sess.push_audio(AudioChunk(np.zeros((1, 320), np.float32), 16000))

    async def consume(items):
        return [c async for c in stream(portrait, items, options=StreamOptions(size=128, realtime=False),
                                        render=still(portrait))]

    with pytest.raises(TypeError, match="AudioChunk, str, None or INTERRUPT"):
        asyncio.run(consume([AudioChunk(np.zeros((1, 3200), np.float32), 16000), 42]))
    with pytest.raises(InputError, match="empty"):
        asyncio.run(consume(["Hello", ""]))
    # Barge-in markers are fine anywhere, even first.
    out = asyncio.run(consume([INTERRUPT, None, AudioChunk(np.zeros((1, 8000), np.float32), 16000)]))
    assert check_contiguous(out) == math.ceil(0.5 * FPS)


def test_jpeg_previews_one_per_frame(portrait, speech):
    """StreamOptions.preview_jpeg: every chunk carries one JPEG per frame, decoding to that frame."""
    from PIL import Image

    async def source():
        for piece in pieces(speech, 0.04):
            yield piece

    async def main():
        opts = StreamOptions(size=128, realtime=False, encode=True, preview_jpeg=90)
        return [c async for c in stream(portrait, source(), options=opts)]

    chunks = asyncio.run(main())
    n = check_contiguous(chunks)
    assert sum(len(c.jpeg) for c in chunks) == n and all(len(c.jpeg) == c.num_frames for c in chunks)
    for c in (chunks[0], chunks[-1]):
        img = np.asarray(Image.open(io.BytesIO(c.jpeg[-1])).convert("RGB")).astype(float)
        assert img.shape == (128, 128, 3)
        assert np.abs(img - c.video.frames[-1].numpy()).mean() < 3
    with pytest.raises(ValueError, match="preview_jpeg"):
        StreamSession(portrait, StreamOptions(size=128, preview_jpeg=101))
