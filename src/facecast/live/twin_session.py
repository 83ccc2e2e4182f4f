"""A live twin stream: the ``Session`` of a twin (facecast.twin), as StreamSession is a portrait's.

The twin's mouth comes from the audio alone (``MouthStream``: a small audio model over log-mel),
so there is no recogniser and no motion parameters: a frame is ready once the mouth model's
look-ahead of audio after it has arrived, and is rendered as the background loop frame for its
time with the lower face redrawn.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..twin.generate import MouthStream, Twin
from ..types import ANALYSIS_RATE, AudioChunk, VideoFrames
from .messages import InputMessage, StreamChunk, apply, check_audio
from .text import SentenceSplitter, check_text_piece

__all__ = ["TwinRender", "TwinSession", "twin_lookahead_s"]

TwinRender = Callable[[np.ndarray, int], VideoFrames]
"""(mouth float32 [n, 53, 2], first frame) -> the n frames from that frame on."""


def twin_lookahead_s(twin: Twin, fps: float) -> float:
    """Audio a frame waits for: the mouth model's feature window plus its smoothing frames."""
    c = twin.mouth_model.config
    return float(c.lookahead_s + c.smooth_frames / fps)


class TwinSession:
    """One live twin stream: push speech as it arrives, take frames (with their audio) as soon as
    their look-ahead has arrived. The twin's answer to ``live.session.StreamSession``.

    Clock: input is placed back to back on the stream's timeline (a chunk's own ``start`` is
    ignored); ``advance_to(t)`` says "nothing more arrived before t" and fills silence, so the
    avatar keeps moving (the background loop, blinks) with a closed mouth while nobody speaks.
    Frame f (shown at f / fps) is ready once audio up to f / fps + ``lookahead_s`` is in.
    ``interrupt()`` (barge-in) drops the audio not yet turned into frames; the mouth then follows
    the new input (or silence) from the next frame. Memory is flat: both audio tapes forget what
    lies behind the model's left context.

    Output audio is the input resampled to ``audio_rate`` (mono); ``poll()`` returns
    ``StreamChunk``s (``motion`` is None: a twin has no motion parameters), with fragmented-MP4
    bytes when ``fmp4`` is set. render: ``(mouth, first_frame) -> VideoFrames`` (default: the
    twin's own renderer), so a multi-stream scheduler can batch several streams. Text
    (``push_text``) is spoken by ``voice`` (default: the bundled Piper voice).
    """

    def __init__(self, twin: Twin, *, fps: float = 25.0, audio_rate: int = 48000, fmp4: bool = False,
                 max_frames: int = 25, max_lead_s: float | None = None, render: TwinRender | None = None,
                 voice=None) -> None:
        from ..audio import Resampler
        from ..buffer import SampleBuffer

        self.twin, self.fps, self.audio_rate = twin, float(fps), int(audio_rate)
        self.lookahead_s = twin_lookahead_s(twin, self.fps)
        self.max_frames = max_frames
        # Paced by a clock (advance_to): frames are made at most max_lead_s ahead of it, as the
        # portrait session does; None: as soon as their audio is in (load tests, files).
        self.max_lead_s = max_lead_s
        self._render = render or (lambda mouth, first: self.twin.render(mouth, first, self.fps))
        self._voice = voice
        self._splitter = SentenceSplitter()
        self._clock: float | None = None
        self._mouth = MouthStream(twin, self.fps)
        self._out = SampleBuffer(1)  # output audio at audio_rate, indexed by stream sample
        self._r16 = Resampler(ANALYSIS_RATE, mono=True)
        self._rout = Resampler(self.audio_rate, mono=True)
        self._t = 0.0  # timeline position of the next input sample (s)
        self._in_rate: int | None = None
        self._next = 0  # next frame to render
        self._ended = False
        self._closed = False
        self._writer = None
        if fmp4:
            from ..media import Fmp4SegmentWriter

            self._writer = Fmp4SegmentWriter(fps=self.fps, width=twin.size[0], height=twin.size[1],
                                             audio_rate=self.audio_rate, fragment_frames=5)

    @classmethod
    def from_options(cls, twin: Twin, options, *, render: TwinRender | None = None, voice=None) -> "TwinSession":
        """The session ``StreamOptions`` ask for: their fps, audio rate and fMP4, paced at most
        ``max_lead_s`` ahead of the clock when ``realtime`` (their lookahead_s does not apply:
        a twin's is its mouth model's)."""
        return cls(twin, fps=options.fps, audio_rate=options.audio_rate, fmp4=options.fmp4,
                   max_lead_s=options.max_lead_s if options.realtime else None, render=render, voice=voice)

    @property
    def input_end(self) -> float:
        """Seconds of input (audio and silence) on the timeline so far."""
        return self._t

    @property
    def done(self) -> bool:
        """Input ended and every frame of it has been returned."""
        return self._ended and self._next >= self._input_frames()

    @property
    def closed(self) -> bool:
        return self._closed

    def _input_frames(self) -> int:
        """Frames the input so far covers (the last one may be partly covered)."""
        return int(np.ceil(self._t * self.fps - 1e-9))

    def feed(self, message: InputMessage) -> None:
        """Apply one input message (live.messages)."""
        apply(self, message)

    def push_text(self, text: str) -> None:
        """Add a piece of text; each sentence is synthesised (blocking) and appended as soon as it
        completes; an unfinished one when audio is pushed next or at ``end_input``."""
        text = check_text_piece(text)
        for sentence in self._splitter.feed(text):
            self._speak(sentence)

    def push_speech(self, audio, phones=()) -> None:
        """Synthesised speech (the driver's text path): the twin's mouth comes from the audio
        alone, so the phones are not needed."""
        self._flush_text()
        self._append(audio)

    def push_audio(self, chunk) -> None:
        """Live PCM (an AudioChunk, any rate, 1-2 channels), appended at the end of the timeline."""
        self._flush_text()
        self._append(chunk)

    def _append(self, chunk) -> None:
        chunk = check_audio(chunk)
        if self._ended:
            raise ValueError("push_audio after end_input()")
        if self._in_rate is not None and chunk.sample_rate != self._in_rate:
            self._flush_resamplers()  # a new source rate starts new resampler runs
        self._in_rate = chunk.sample_rate
        # Back to back on the timeline: the resamplers see one contiguous run per source rate.
        at = AudioChunk(chunk.samples, chunk.sample_rate, self._t)
        a = self._r16.feed(at)
        o = self._rout.feed(at)
        self._mouth.push(a.start, a.samples[0])
        self._put_out(o)
        self._t += chunk.duration

    def _speak(self, sentence: str) -> None:
        if self._voice is None:
            from ..voice import PiperVoice

            self._voice = PiperVoice()
        for v in list(self._voice.synthesize(sentence)):
            self._append(v.audio)

    def _flush_text(self) -> None:
        for sentence in self._splitter.flush():
            self._speak(sentence)

    def _flush_resamplers(self) -> None:
        a, o = self._r16.flush(), self._rout.flush()
        self._mouth.push(a.start, a.samples[0])
        self._put_out(o)

    def _put_out(self, o) -> None:
        self._out.truncate(int(round(o.start * self.audio_rate)))  # pads a gap, cuts an overlap
        self._out.append(o.samples[:1])

    def advance_to(self, t: float) -> None:
        """The clock is at ``t`` s: input that has not arrived before t is silence (until the
        input has ended: then the clock only paces the remaining frames, as in StreamSession)."""
        self._clock = t
        if t > self._t + 1e-9 and not self._ended:
            rate = self._in_rate or ANALYSIS_RATE
            n = int(round((t - self._t) * rate))
            if n > 0:
                self._append(AudioChunk(np.zeros((1, n), np.float32), rate, 0.0))

    def end_input(self) -> None:
        """No more input: the remaining frames are rendered without waiting for look-ahead."""
        if not self._ended:
            self._flush_text()
            self._flush_resamplers()
            self._ended = True

    def interrupt(self) -> None:
        """Barge-in: forget input not yet turned into frames; the timeline resumes there."""
        self._splitter.clear()
        self._flush_resamplers()
        t = self._next / self.fps
        self._mouth.forget_after(t)
        self._out.truncate(min(self._out.end, int(round(t * self.audio_rate))))
        self._t = t

    def ready(self) -> int:
        """Frames that could be rendered now."""
        if self._ended:
            last = self._input_frames()
        else:
            last = int(np.floor((self._t - self.lookahead_s) * self.fps + 1e-9)) + 1
        if self._clock is not None and self.max_lead_s is not None:
            last = min(last, int(np.floor((self._clock + self.max_lead_s) * self.fps + 1e-9)) + 1)
        return max(0, last - self._next)

    def poll(self) -> list[StreamChunk]:
        """Render the ready frames (one batch of at most ``max_frames``) as StreamChunks."""
        out = []
        while (n := min(self.ready(), self.max_frames)) > 0:
            f0 = self._next
            mouth = self._mouth.frames(f0, n)
            video = self._render(mouth, f0)
            i0, i1 = int(round(f0 / self.fps * self.audio_rate)), int(round((f0 + n) / self.fps * self.audio_rate))
            audio = AudioChunk(self._out.get(i0, i1), self.audio_rate, f0 / self.fps)
            self._out.trim(i1)
            fmp4 = self._writer.write(video, audio) if self._writer is not None else None
            self._next += n
            out.append(StreamChunk(video, audio, fmp4, None))
        return out

    def close(self) -> list[StreamChunk]:
        """end_input + the remaining frames; the last chunk carries the end of the fMP4 (a chunk
        without frames when every frame was already out). The stream cannot be used afterwards."""
        from dataclasses import replace as _replace

        if self._closed:
            return []
        self.end_input()
        self._clock = None  # the rest now, not waiting for the clock
        chunks = self.poll()
        if self._writer is not None:
            tail = self._writer.close()
            self._writer = None
            if chunks:
                chunks[-1] = _replace(chunks[-1], fmp4=(chunks[-1].fmp4 or b"") + tail)
            elif tail:
                w, h = self.twin.size
                empty = VideoFrames(torch.zeros((0, h, w, 3), dtype=torch.uint8), self.fps, self._next)
                chunks.append(StreamChunk(empty, AudioChunk(np.zeros((1, 0), np.float32), self.audio_rate,
                                                            self._next / self.fps), tail, None))
        self._closed = True
        return chunks
