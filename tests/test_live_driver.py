"""The asyncio driver and the session factory (facecast.live.driver): idle frames from a silent
source, text and audio mixed in order, real-time barge-in, fragmented MP4 that decodes, JPEG
previews, clear errors for bad source items; the face kind told by the file's content; twins
through the same driver."""

from __future__ import annotations

import asyncio
import io
import math
import shutil

import av
import numpy as np
import pytest

from conftest import media
from facecast.media import fmp4_boxes
from facecast.errors import InputError
from facecast.live.driver import open_session, stream
from facecast.live.messages import INTERRUPT, AudioIn, EndInput, SpeechIn, TextIn
from facecast.live.session import StreamSession
from facecast.live.twin_session import TwinSession
from facecast.options import StreamOptions
from facecast.types import AudioChunk
from live_helpers import FPS, OPEN, ToneVoice, check_contiguous, jfk_speech, pieces, portrait128, still


@pytest.fixture(scope="module")
def portrait():
    return portrait128()


@pytest.fixture(scope="module")
def speech():
    return jfk_speech()


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


@pytest.fixture(scope="module")
def voice():
    from facecast.voice import PiperVoice

    return PiperVoice()


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

    got: list = []

    async def source():
        yield long
        # Let ~1.2 s of the sentence (several open vowels) reach the listener first: counted in
        # frames received, not in wall time (a loaded machine starts the stream later).
        while sum(c.num_frames for c in got) < 1.2 * FPS:
            await asyncio.sleep(0.02)
        yield INTERRUPT
        yield "Okay."

    async def main():
        async for c in stream(portrait, source(), options=StreamOptions(size=128, realtime=True),
                              render=still(portrait), voice=voice):
            got.append(c)
        return got

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
        return [c async for c in stream(portrait, source(), options=StreamOptions(size=128, realtime=False, fmp4=True))]

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


def test_jpeg_previews_one_per_frame(portrait, speech):
    """StreamOptions.preview_jpeg: every chunk carries one JPEG per frame, decoding to that frame."""
    from PIL import Image

    async def source():
        for piece in pieces(speech, 0.04):
            yield piece

    async def main():
        opts = StreamOptions(size=128, realtime=False, fmp4=True, preview_jpeg=90)
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


def test_bad_source_items_give_clear_errors(portrait):
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


def test_typed_source_items_are_the_plain_ones(portrait, speech):
    """A source of typed messages (TextIn, AudioIn, SpeechIn, EndInput) streams exactly as one of
    plain items (str, AudioChunk); EndInput ends the input like the end of the source."""
    short = AudioChunk(speech.samples[:, : int(0.8 * 44100)], 44100)
    said = next(ToneVoice().synthesize("a b"))

    def plain():
        yield from ["Good", " morning"]
        yield from pieces(short, 0.02)
        yield "See you."

    def typed():
        yield from [TextIn("Good"), TextIn(" morning")]
        yield from (AudioIn(p) for p in pieces(short, 0.02))
        yield TextIn("See you.")
        yield EndInput()
        yield TextIn("never said")

    async def main(source):
        return [c async for c in stream(portrait, source, options=StreamOptions(size=128, realtime=False),
                                        render=still(portrait), voice=ToneVoice())]

    a, b = asyncio.run(main(plain())), asyncio.run(main(typed()))
    assert check_contiguous(a) == check_contiguous(b) > 0
    np.testing.assert_array_equal(np.concatenate([c.motion.params for c in a]),
                                  np.concatenate([c.motion.params for c in b]))
    np.testing.assert_array_equal(np.concatenate([c.audio.samples for c in a], axis=1),
                                  np.concatenate([c.audio.samples for c in b], axis=1))
    # Known speech goes in as it is: its phones drive the mouth.
    out = asyncio.run(main([SpeechIn(said.audio, said.phones)]))
    assert check_contiguous(out) == math.ceil(0.6 * FPS)
    assert np.concatenate([c.motion.column("jaw_open") for c in out]).max() > OPEN


def test_a_ready_session_can_be_driven(portrait, speech):
    sess = StreamSession(portrait, StreamOptions(size=128, realtime=False), render=still(portrait))

    async def main():
        return [c async for c in stream(sess, pieces(speech, 0.05), options=StreamOptions(size=128, realtime=False))]

    chunks = asyncio.run(main())
    assert check_contiguous(chunks) == math.ceil(speech.duration * FPS - 1e-9)
    assert sess.closed


# ---------------------------------------------------------------------------------------------
# the factory: what a face is, by content


def test_factory_tells_a_twin_by_its_content(tiny_twin, tmp_path):
    import torch
    from safetensors.torch import save_file

    options = StreamOptions(size=128, realtime=False)
    disguised = tmp_path / "person.png"  # a twin with an image's name is still a twin
    shutil.copy(tiny_twin[0], disguised)
    s = open_session(disguised, options)
    assert isinstance(s, TwinSession) and s.twin.size == (128, 128)
    s.close()
    image = tmp_path / "face.twin"  # an image with a twin's name is an image
    shutil.copy(media("portrait/sam_512.jpg"), image)
    s = open_session(image, options)
    assert isinstance(s, StreamSession) and s.portrait.image.shape == (128, 128, 3)
    s.close()
    # A safetensors file that is not a twin: the twin reader's clear error.
    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.twin"), metadata={"format": "something-else"})
    with pytest.raises(InputError, match="not a facecast twin"):
        open_session(tmp_path / "weights.twin", options)
    # Neither: the image reader's.
    (tmp_path / "notes.twin").write_text("hello there")
    with pytest.raises(InputError, match="text file, not an image"):
        open_session(tmp_path / "notes.twin", options)


# ---------------------------------------------------------------------------------------------
# twins through the same driver


def test_stream_twin_async_text_and_audio(tiny_twin):
    from facecast.audio import load_audio
    from facecast.twin.generate import Twin

    twin = Twin.load(tiny_twin[0], size=128)
    a = load_audio(media("audio/hdtf_radio31_en.wav")).samples[:, :16000]

    async def run():
        return [c async for c in stream(twin, ["Hello there.", AudioChunk(a, 16000, 0.0)],
                                        options=StreamOptions(realtime=False))]

    chunks = asyncio.run(run())
    seconds = sum(c.num_frames for c in chunks) / 25
    assert seconds > 1.4  # the sentence (~0.8 s) and then 1 s of audio
    assert all(c.video.frames.shape[1:] == (128, 128, 3) for c in chunks)


def test_facecast_stream_accepts_a_twin(tiny_twin):
    from facecast.audio import load_audio

    a = load_audio(media("audio/hdtf_radio31_en.wav")).samples[:, :8000]  # 0.5 s

    async def run():
        opts = StreamOptions(size=128, fmp4=True, realtime=False)
        return [c async for c in stream(str(tiny_twin[0]), [AudioChunk(a, 16000, 0.0)], options=opts)]

    chunks = asyncio.run(run())
    assert sum(c.num_frames for c in chunks) == 13  # ceil(0.5 s * 25 fps)
    assert chunks[0].video.frames.shape[1:] == (128, 128, 3) and chunks[0].motion is None
    assert b"".join(c.fmp4 for c in chunks)[4:8] == b"ftyp"


def test_stream_twin_realtime_is_paced_and_idles(tiny_twin):
    """realtime=True: the twin goes through stream()'s clock-driven driver like a portrait - frames
    never run more than max_lead_s ahead of the wall clock, and the avatar keeps going (closed
    mouth, moving background) while the source is silent."""
    from facecast.twin.generate import Twin

    twin = Twin.load(tiny_twin[0], size=128)

    async def source():
        yield "Hello there, this sentence takes about two seconds to say."
        await asyncio.sleep(4.0)

    async def run():
        loop = asyncio.get_running_loop()
        t0, got = loop.time(), []
        async for c in stream(twin, source(), options=StreamOptions(realtime=True, max_lead_s=0.2)):
            got.append((loop.time() - t0, c))
        return got

    got = asyncio.run(run())
    chunks = [c for _, c in got]
    firsts = [c.first_frame for c in chunks]
    assert firsts[0] == 0 and all(b == a.first_frame + a.num_frames for a, b in zip(chunks, firsts[1:]))
    assert sum(c.num_frames for c in chunks) / 25 >= 3.8  # frames through the silence after it too
    for t, c in got:
        assert c.first_frame / 25 <= t + 0.2 + 0.25, (t, c.first_frame)  # lead + scheduling slack
