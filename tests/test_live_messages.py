"""Typed messages of the live side (facecast.live.messages) and the text splitter (live.text)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facecast.errors import InputError
from facecast.live.messages import (INTERRUPT, AudioIn, EndInput, Interrupt, SpeechIn, StreamChunk, TextIn, apply,
                                    check_audio)
from facecast.live.text import SentenceSplitter, check_text_piece, speakable
from facecast.types import AudioChunk, PhoneSpan, VideoFrames


class Recorder:
    """Stands in for a session: records which method each message reaches."""

    def __init__(self):
        self.calls = []

    def push_audio(self, chunk):
        self.calls.append(("push_audio", chunk))

    def push_text(self, text):
        self.calls.append(("push_text", text))

    def push_speech(self, audio, phones):
        self.calls.append(("push_speech", audio, phones))

    def interrupt(self):
        self.calls.append(("interrupt",))

    def end_input(self):
        self.calls.append(("end_input",))


def test_each_message_reaches_its_method():
    a = AudioChunk(np.zeros((1, 160), np.float32), 16000)
    phones = (PhoneSpan("AA", 0.0, 0.01),)
    r = Recorder()
    for m in (AudioIn(a), TextIn("hi"), SpeechIn(a, phones), INTERRUPT, EndInput()):
        apply(r, m)
    assert r.calls == [("push_audio", a), ("push_text", "hi"), ("push_speech", a, phones), ("interrupt",),
                       ("end_input",)]
    with pytest.raises(TypeError, match="AudioIn, TextIn, SpeechIn, Interrupt or EndInput"):
        apply(r, "hi")
    with pytest.raises(TypeError, match="got tuple"):
        apply(r, ("audio", a))  # no string-tagged tuples


def test_messages_are_frozen_values():
    a = AudioChunk(np.zeros((1, 160), np.float32), 16000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        AudioIn(a).audio = a
    assert Interrupt() == INTERRUPT and repr(INTERRUPT) == "INTERRUPT" and EndInput() == EndInput()
    assert SpeechIn(a).phones == ()
    import torch

    c = StreamChunk(VideoFrames(torch.zeros((5, 2, 2, 3), dtype=torch.uint8), 25.0, 10),
                    AudioChunk(np.zeros((1, 3200), np.float32), 16000, 0.4), None, None)
    assert (c.first_frame, c.num_frames, c.start, c.end) == (10, 5, 0.4, 0.6)


def test_input_checks():
    with pytest.raises(TypeError, match="AudioChunk"):
        check_audio(np.zeros((1, 10), np.float32))
    with pytest.raises(InputError, match="float"):
        check_audio(AudioChunk(np.zeros((1, 10), np.int16), 16000))
    with pytest.raises(InputError, match="sample rate"):
        check_audio(AudioChunk(np.zeros((1, 10), np.float32), 8))
    with pytest.raises(InputError, match="no channels"):
        check_audio(AudioChunk(np.zeros((0, 10), np.float32), 16000))
    with pytest.raises(InputError, match="empty text piece"):
        check_text_piece("")
    with pytest.raises(TypeError, match="str"):
        check_text_piece(b"hi")
    assert speakable("a.") and not speakable(" ... ")


def test_sentences_as_they_complete():
    s = SentenceSplitter(max_chars=30)
    assert s.feed("Hello") == [] and s.pending == "Hello"
    assert s.feed(" there. How") == ["Hello there."]
    assert s.feed(" are you?\nFine") == ["How are you?"]
    assert s.feed(" ... ") == ["Fine ..."] and s.pending == ""
    # No sentence end within max_chars: cut at the last comma, else the last space.
    long = s.feed("one two three four five six seven, eight nine ten eleven twelve")
    assert long == ["one two three four five six", "seven,"] and s.pending == " eight nine ten eleven twelve"
    assert s.flush() == ["eight nine ten eleven twelve"] and s.feed(" ... ") == []
    s.feed("half a sentence")
    s.clear()
    assert s.pending == "" and s.flush() == []
