"""A live twin stream (facecast.live.twin_session): frames once their look-ahead has arrived,
silence keeps the avatar going, barge-in, fMP4; the Session protocol's typed messages and text."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import media
from facecast.live.messages import AudioIn, EndInput, Interrupt, TextIn
from facecast.live.session import Session
from facecast.live.twin_session import TwinSession, twin_lookahead_s
from facecast.types import AudioChunk
from live_helpers import ToneVoice, check_contiguous


@pytest.fixture(scope="module")
def twin(tiny_twin):
    from facecast.twin.generate import Twin

    return Twin.load(tiny_twin[0], size=128)


def test_twin_stream_chunks_silence_and_barge_in(twin):
    from facecast.audio import load_audio

    a = load_audio(media("audio/hdtf_radio31_en.wav"), sample_rate=22050).samples  # not 16 kHz on purpose
    s = TwinSession(twin, fmp4=True)
    chunks = []
    step = 441  # 20 ms
    for i in range(0, 2 * 22050, step):  # 2 s of speech in 20 ms pieces
        s.push_audio(AudioChunk(a[:, i : i + step], 22050, 123.0))  # its own start is ignored
        chunks += s.poll()
        # A frame leaves only once its look-ahead has arrived.
        if chunks:
            assert chunks[-1].end <= s.input_end - s.lookahead_s + 1.0 / 25 + 1e-6
    s.advance_to(3.0)  # a second of silence: the avatar keeps going
    chunks += s.poll()
    s.interrupt()  # barge-in: what was not rendered yet is dropped
    cut = s.input_end
    chunks += s.close()
    firsts = [c.first_frame for c in chunks]
    assert firsts[0] == 0 and all(b == a_.first_frame + a_.num_frames for a_, b in zip(chunks, firsts[1:]))
    total = sum(c.num_frames for c in chunks)
    assert total == int(np.ceil(cut * 25 - 1e-9)) and cut < 3.0
    for c in chunks:  # each chunk carries exactly its frames' audio
        assert c.audio.sample_rate == 48000
        assert abs(c.audio.num_samples - c.num_frames * 48000 / 25) <= 1 and c.audio.start == c.start
    data = b"".join(c.fmp4 for c in chunks)
    assert data[4:8] == b"ftyp" and b"moof" in data


def test_twin_session_takes_typed_messages_and_text(twin):
    """The same Session protocol as a portrait's: feed(TextIn) speaks with the session's voice
    (sentence by sentence), AudioIn appends, Interrupt drops what is not yet shown, EndInput
    ends; the rendered frames come from an injectable render."""
    calls = []

    def render(mouth, first):
        calls.append((first, len(mouth)))
        return twin.render(mouth, first, 25.0)

    s = TwinSession(twin, render=render, voice=ToneVoice())
    assert isinstance(s, Session) and s.lookahead_s == pytest.approx(twin_lookahead_s(twin, 25.0))
    s.feed(TextIn("one two"))  # no sentence end yet: waits
    assert s.input_end == 0.0
    s.feed(TextIn(" three. four"))
    assert s.input_end == pytest.approx(0.9)  # "one two three." spoken (0.3 s a word)
    chunks = s.poll()
    s.feed(AudioIn(AudioChunk(np.zeros((1, 8000), np.float32), 16000)))  # "four" is spoken first
    assert s.input_end == pytest.approx(0.9 + 0.3 + 0.5)
    chunks += s.poll()
    s.feed(Interrupt())
    s.feed(EndInput())
    chunks += s.close()
    n = check_contiguous(chunks, motion=False)
    assert n == int(np.ceil(s.input_end * 25 - 1e-9)) and all(c.motion is None for c in chunks)
    assert [f for f, _ in calls] == [c.first_frame for c in chunks] and s.closed and s.done


def test_the_clock_after_the_end_of_input(twin):
    """advance_to after end_input paces the remaining frames and adds no silence (it raised
    "push_audio after end_input()" before, whenever the driver's clock passed the end of the
    input between the source's end and the stream's last frame)."""
    s = TwinSession(twin, max_lead_s=0.2)
    s.push_audio(AudioChunk(np.zeros((1, 16000), np.float32), 16000))
    s.advance_to(0.5)
    chunks = s.poll()
    s.end_input()
    s.advance_to(2.0)  # past the end of the input
    chunks += s.poll()
    assert s.done and s.input_end == 1.0
    assert check_contiguous(chunks + s.close(), motion=False) == 25
