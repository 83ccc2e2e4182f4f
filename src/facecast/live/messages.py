"""Typed messages into and out of a live session (pipecat's typed frames are the model).

In: what a session is fed (``Session.feed``, ``Engine.feed``, or a ``stream()`` source):

    AudioIn(audio)           live PCM (a microphone, a WebRTC track, a recording), any rate and
                             channels, placed back to back on the session's timeline
    TextIn(text)             text to speak with the session's voice (the bundled Piper voice by
                             default); a sentence is spoken as soon as it is complete
    SpeechIn(audio, phones)  speech whose phones are known (TTS): no recognition runs on it
    Interrupt()              barge-in: drop what is not yet turned into frames
    EndInput()               no more input: the remaining frames become due

Out: ``StreamChunk``, consecutive frames with exactly their audio (and fMP4 bytes, previews).

Every input message is a frozen dataclass; a session dispatches on its type, never on a tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from ..errors import InputError
from ..types import AudioChunk, MotionFrames, PhoneSpan, VideoFrames

__all__ = ["INTERRUPT", "AudioIn", "EndInput", "InputMessage", "Interrupt", "SpeechIn", "StreamChunk", "TextIn",
           "apply", "check_audio"]


@dataclass(frozen=True)
class AudioIn:
    """Live PCM: float samples in [-1, 1], any rate, any channels (``audio.start`` is ignored:
    input is placed back to back on the session's timeline)."""

    audio: AudioChunk


@dataclass(frozen=True)
class TextIn:
    """A piece of text to speak (as small as an LLM token); sentences are synthesised as they
    complete, the unfinished rest when audio follows or the input ends."""

    text: str


@dataclass(frozen=True)
class SpeechIn:
    """Synthesised speech with its phones on the same clock as ``audio.start`` (a portrait's
    mouth follows the phones; a twin's follows the audio alone)."""

    audio: AudioChunk
    phones: tuple[PhoneSpan, ...] = ()


@dataclass(frozen=True)
class Interrupt:
    """Barge-in: drop the input not yet turned into frames; the clock runs on and the face eases
    to the new input's pose (rest, in silence)."""

    def __repr__(self) -> str:
        return "INTERRUPT"


INTERRUPT = Interrupt()


@dataclass(frozen=True)
class EndInput:
    """No more input: speak the rest of the text, settle the last phones; every remaining frame
    becomes due."""


InputMessage = Union[AudioIn, TextIn, SpeechIn, Interrupt, EndInput]


def apply(session: Any, message: InputMessage) -> None:
    """Hand ``message`` to the ``session`` method that takes it: push_audio, push_text,
    push_speech, interrupt or end_input (what ``Session.feed`` does)."""
    if isinstance(message, AudioIn):
        session.push_audio(message.audio)
    elif isinstance(message, TextIn):
        session.push_text(message.text)
    elif isinstance(message, SpeechIn):
        session.push_speech(message.audio, message.phones)
    elif isinstance(message, Interrupt):
        session.interrupt()
    elif isinstance(message, EndInput):
        session.end_input()
    else:
        raise TypeError(f"feed: expected AudioIn, TextIn, SpeechIn, Interrupt or EndInput, got "
                        f"{type(message).__name__}")


@dataclass(frozen=True)
class StreamChunk:
    """Consecutive frames of the stream and everything that goes with them.

    video: uint8 [n, H, W, 3] RGB frames; frame k is shown at (video.first_frame + k) / fps
        seconds on the stream's clock (the pts, in 1/fps units, is first_frame + k). (From an
        Engine: I420Frames when it hands yuv420p to its encoders, or no pixels [n, 0, 0, 3]
        with ``EngineOptions.frames`` off.)
    audio: the output audio of exactly those frames' span [first_frame/fps, (first_frame+n)/fps):
        float32 [audio_channels, m] at ``StreamOptions.audio_rate`` (48 kHz by default: the input
        resampled, not reduced to 16 kHz), ``audio.start`` = first_frame / fps.
    fmp4: with ``StreamOptions.fmp4``: the fragmented-MP4 bytes that became ready with this
        chunk (the init segment in the first chunk, then whole moof+mdat fragments; often b""
        since a fragment spans ``fragment_frames`` frames); None without.
    motion: the animation parameters of these frames (MotionFrames; for tests and debugging);
        None for a twin (it has no motion parameters).
    jpeg: with ``StreamOptions.preview_jpeg``: one JPEG per frame, in order; None without.
    """

    video: VideoFrames
    audio: AudioChunk
    fmp4: bytes | None
    motion: MotionFrames | None
    jpeg: tuple[bytes, ...] | None = None

    @property
    def first_frame(self) -> int:
        return self.video.first_frame

    @property
    def num_frames(self) -> int:
        return self.video.num_frames

    @property
    def start(self) -> float:
        return self.video.first_frame / self.video.fps

    @property
    def end(self) -> float:
        return (self.video.first_frame + self.video.num_frames) / self.video.fps


def check_audio(chunk: Any) -> AudioChunk:
    """``chunk`` if it is usable live input, else TypeError / InputError saying what is wrong."""
    if not isinstance(chunk, AudioChunk):
        raise TypeError(f"audio must be a facecast.types.AudioChunk, got {type(chunk).__name__}")
    s = chunk.samples
    if not isinstance(s, np.ndarray) or not np.issubdtype(s.dtype, np.floating):
        raise InputError(f"audio chunk at {chunk.start:.3f} s: samples must be a float array in [-1, 1], got "
                         f"{getattr(s, 'dtype', type(s).__name__)}. Convert integer PCM first (e.g. int16 / 32768).")
    if not isinstance(chunk.sample_rate, (int, np.integer)) or chunk.sample_rate < 1000 or chunk.sample_rate > 384_000:
        raise InputError(f"audio chunk: sample rate {chunk.sample_rate!r} Hz is not usable; give the real rate in Hz "
                         "(e.g. 16000, 44100, 48000).")
    if s.shape[0] < 1:
        raise InputError("audio chunk: has no channels ([0, n] samples). Give samples as [channels, n].")
    if not np.isfinite(s).all():
        bad = int(np.count_nonzero(~np.isfinite(s)))
        raise InputError(f"audio chunk at {chunk.start:.3f} s: {bad} samples are NaN or infinite. "
                         "Check the audio source (a failed decoder or a division by zero upstream).")
    return chunk
