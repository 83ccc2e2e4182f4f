"""Live sessions: speech in as it arrives (PCM chunks or text), video chunks out.

    source      AudioIn (any rate/channels) from a live source, TextIn pieces (an LLM's tokens
                ...), SpeechIn (TTS audio with its phones), or a mix; Interrupt = barge-in
    ingest      audio -> 16 kHz mono analysis buffer + output-quality buffer (48 kHz by default);
                text -> sentences -> Piper (exact phones, no recognition needed)   [audio_in, text]
    analyse     as the audio arrives: silero-VAD (streaming), pocketsphinx allphone recognition
                with *partial* hypotheses (restarted at VAD pauses, so memory stays flat)  [listener]
    animate     one frame per tick: frame f (shown at f / fps) is computed as soon as audio up to
                f / fps + lookahead_s has arrived, by MotionModel over a short window around it
    render      an injected ``render(MotionFrames) -> VideoFrames`` (default MeshRenderer), so a
                batched multi-stream GPU scheduler can take over (live.engine)
    encode      optional fragmented MP4 (H.264 + AAC) for Media Source Extensions players

``Session`` is the protocol every live session implements (``StreamSession`` for a portrait,
``live.twin_session.TwinSession`` for a twin): ``feed(message)``, ``advance_to(t)``, ``poll()``,
``close()``. ``live.driver.stream`` is the asyncio driver around one; ``live.engine.Engine`` runs
many.

Clock. The stream has one timeline (seconds from its start). Input is placed back to back on it
(``AudioChunk.start`` of pushed chunks is ignored); ``advance_to(t)`` says "the clock is at t:
input that has not arrived before t is silence", which keeps the avatar alive (idle frames:
blinks, head drift, closed mouth) when nothing is said. Frame f covers [f/fps, (f+1)/fps) and
comes out with exactly that span of audio.

Look-ahead. Frame f is computed once audio up to f / fps + ``lookahead_s`` (default 0.12 s,
at most 0.2 s) has arrived, or the input ended: the mouth may anticipate the next phone by up to
that much (coarticulation), the recogniser's partial path has mostly settled around the frame, and the
VAD/loudness windows of the frame are complete. Video therefore lags the input audio by
``lookahead_s``; the audio handed out with the frames is delayed to match, so output is in sync.

Barge-in. ``interrupt()`` drops everything not yet turned into frames (audio, phones, queued
text), keeps the clock running, and eases the face from the last frame to what the new input says
(rest, in silence) over ``interrupt_fade_s`` (0.1 s): no pop, mouth closed within ~100 ms.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from ..motion import MotionModel
from ..options import StreamOptions
from ..timing import Timings
from ..types import ANALYSIS_RATE, MOTION_PARAMS, AudioChunk, MotionFrames, PhoneSpan, Portrait, Speech, VideoFrames
from .audio_in import InputTape, Source
from .listener import Listener
from .messages import InputMessage, StreamChunk, apply, check_audio
from .options import check_options
from .pitch import FramePitch
from .text import SentenceSplitter, check_text_piece

__all__ = ["Render", "Session", "StreamSession"]

# swresample holds back up to 32 samples (at 16 kHz; 8 kHz input) of filter delay until more
# input comes; frame analysis stops this far short of frame time + look-ahead so that it never
# waits for them (3 ms).
RESAMPLER_SLACK = 48

Render = Callable[[MotionFrames], VideoFrames]


@runtime_checkable
class Session(Protocol):
    """One live stream: input messages in, StreamChunks out, on one clock. Not thread-safe:
    drive a session from one thread at a time.

    feed(message): AudioIn / TextIn / SpeechIn / Interrupt / EndInput (live.messages).
    advance_to(t): the clock is at ``t`` s; input that has not arrived before t is silence.
    poll(): the chunks whose frames are due ([] when none). close(): end the input and return
    every remaining chunk (the last carries the end of the fMP4); the session is done with.
    """

    fps: float

    @property
    def lookahead_s(self) -> float:
        """Input a frame waits for beyond its own time (the video lags the input by this)."""

    @property
    def input_end(self) -> float:
        """Seconds of input (audio, silence) on the timeline so far."""

    @property
    def done(self) -> bool:
        """Input ended and every frame of it has been returned."""

    @property
    def closed(self) -> bool: ...

    def feed(self, message: InputMessage) -> None: ...

    def advance_to(self, t: float) -> None: ...

    def poll(self) -> list[StreamChunk]: ...

    def close(self) -> list[StreamChunk]: ...


class StreamSession:
    """The synchronous streaming core for one portrait (see the module docstring).

    portrait: a prepared Portrait, or an image path/array (framed at ``options.size``).
    render: ``MotionFrames -> VideoFrames`` (default: ``MeshRenderer(portrait, options.render)``);
        a multi-stream scheduler can pass its own (e.g. one that batches several sessions on a GPU).
    voice: a Voice for ``push_text`` (default: the bundled Piper voice, loaded on first use).

    Calls: ``feed(message)`` or ``push_audio(chunk)``, ``push_text(piece)``,
    ``push_speech(audio, phones)``, ``interrupt()``, ``end_input()``, and ``advance_to(t)`` add
    input or move the clock and compute the motion of every frame that became due; ``poll()``
    renders those frames and returns StreamChunks (in order, contiguous, each at most
    ``options.chunk_frames``). ``close()`` ends the input, returns every remaining chunk
    (ignoring the clock) and finishes the fMP4. Not thread-safe: drive a session from one thread
    at a time.

    ``timings`` (facecast.timing.Timings) accumulates the seconds spent per stage: resample, vad,
    align, motion, render, encode, voice.
    """

    def __init__(
        self,
        portrait: str | Path | np.ndarray | Portrait,
        options: StreamOptions = StreamOptions(),
        *,
        render: Render | None = None,
        voice=None,
    ) -> None:
        from ..sources import prepare_portrait
        from ..speech import LoudnessGain

        self.options = check_options(options)
        self.timings = Timings()
        if not isinstance(portrait, Portrait):
            from ..options import SayOptions

            portrait = prepare_portrait(portrait, SayOptions(size=options.size, face_index=options.face_index))
        self.portrait = portrait
        if render is None:
            from ..render import MeshRenderer

            render = MeshRenderer(portrait, options.render).render
        self._render = render
        self._voice = voice
        self.fps = float(options.fps)
        self._motion = MotionModel(options.motion)
        self._R = options.audio_rate
        self._out_ch = options.audio_channels
        self._tape = InputTape(self._R, self._out_ch, self.timings)
        self._listener = Listener(self._tape, self.fps, options, self.timings)
        self._gain = LoudnessGain()
        self._pitch = FramePitch(self.fps)
        self._splitter = SentenceSplitter()

        self._next_frame = 0                    # next frame whose motion is computed
        self._horizon = 0                       # analysis samples the current frame may use
        self._pending: list[np.ndarray] = []    # motion rows computed, not yet rendered
        self._pending_first = 0                 # frame index of _pending[0]
        self._last_params: np.ndarray | None = None
        self._fade: tuple[float, np.ndarray] | None = None  # (interrupt time, held params)
        self._barrier = 0                       # frames before this are not context (barge-in)
        self._clock: float | None = None
        self._ended = False
        self._closed = False
        self._encoder = None
        self._frame_shape: tuple = (0, 0, 3)
        self.frames_out = 0

    # -- input -------------------------------------------------------------------------------

    def feed(self, message: InputMessage) -> None:
        """Apply one input message (live.messages)."""
        apply(self, message)

    def push_audio(self, chunk: AudioChunk) -> None:
        """Append live audio (any rate, any channels; float samples in [-1, 1]) to the input."""
        self._check_input()
        chunk = check_audio(chunk)
        self._flush_text()
        self._ingest(chunk, Source.MIC)
        self._advance()

    def push_text(self, text: str) -> None:
        """Add a piece of text; each sentence is synthesised (blocking) and queued as soon as it
        completes (a sentence ends at . ! ? ; : followed by white space, or a line break). An
        unfinished sentence is spoken when audio is pushed next or at ``end_input``."""
        self._check_input()
        text = check_text_piece(text)
        for sentence in self._splitter.feed(text):
            self._speak(sentence)

    def push_speech(self, audio: AudioChunk, phones: Sequence[PhoneSpan]) -> None:
        """Append speech whose phones are known (TTS): ``phones`` on the same clock as
        ``audio.start``; no recognition runs on it."""
        self._check_input()
        audio = check_audio(audio)
        self._flush_text()
        self._push_known(audio, phones)
        self._advance()

    def interrupt(self) -> None:
        """Barge-in: drop input not yet turned into frames (audio, phones, unspoken text); the
        clock runs on and the face eases to the new input's pose (rest in silence)."""
        self._check_open()
        self._splitter.clear()
        f = self._next_frame
        self._tape.cut(self._frame_sample(f), self._out_sample(f), self._listener.proc)
        self._listener.interrupt(f)
        if self._last_params is not None:
            self._fade = (f / self.fps, self._last_params.copy())
        self._barrier = f
        self._pitch.reset()

    def advance_to(self, t: float) -> None:
        """The clock is at ``t`` seconds: input that has not arrived before ``t`` is silence
        (idle frames follow), and in paced mode frames up to ``t + max_lead_s`` may be made."""
        self._check_open()
        if not math.isfinite(t):
            raise ValueError(f"advance_to: t must be finite, got {t}")
        self._clock = t if self._clock is None else max(self._clock, t)
        if not self._ended:
            target = math.floor(t * ANALYSIS_RATE)
            while self._tape.end < target:  # a second at a time: a clock jump does not pile up audio
                self._tape.fill(min(target, self._tape.end + ANALYSIS_RATE), self._listener.proc)
                self._advance()
        self._advance()

    def end_input(self) -> None:
        """No more input: speak the rest of the text, settle the last phones; the frames up to
        the end of the input become due (still paced by the clock, if one drives the session)."""
        if self._ended or self._closed:
            return
        self._flush_text()
        self._tape.end_run(self._listener.proc)
        self._ended = True
        self._advance()

    def poll(self) -> list[StreamChunk]:
        """Render the frames that are due; [] when there are none."""
        self._check_open()
        return self._emit(final=False)

    def close(self) -> list[StreamChunk]:
        """End the input and return every remaining chunk (not waiting for the clock); the last
        chunk carries the end of the fMP4 (a chunk without frames if every frame was already
        out). The session cannot be used afterwards."""
        if self._closed:
            return []
        self.end_input()
        self._clock = None
        self._advance()
        chunks = self._emit(final=True)
        if self._encoder is not None:
            with self.timings.stage("encode"):
                tail = self._encoder.close()
            if tail:
                if chunks:
                    last = chunks[-1]
                    chunks[-1] = StreamChunk(last.video, last.audio, (last.fmp4 or b"") + tail, last.motion, last.jpeg)
                else:  # nothing left to render: the tail goes out with an empty chunk
                    import torch

                    empty = VideoFrames(torch.zeros((0, *self._frame_shape), dtype=torch.uint8), self.fps,
                                        self.frames_out)
                    chunks.append(StreamChunk(empty, AudioChunk(np.zeros((self._out_ch, 0), np.float32), self._R,
                                                                self.frames_out / self.fps), tail,
                                              MotionFrames(np.zeros((0, len(MOTION_PARAMS)), np.float32), self.fps,
                                                           self.frames_out),
                                              () if self.options.preview_jpeg else None))
        self._closed = True
        return chunks

    # -- state for drivers -------------------------------------------------------------------

    @property
    def lookahead_s(self) -> float:
        return self.options.lookahead_s

    @property
    def input_end(self) -> float:
        """Seconds of input (audio, text audio, silence) on the timeline so far."""
        return self._tape.end / ANALYSIS_RATE

    @property
    def clock(self) -> float | None:
        return self._clock

    @property
    def done(self) -> bool:
        """Input ended and every frame of it has been returned."""
        return self._ended and self._next_frame >= self._total_frames() and not self._pending

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending_frames(self) -> int:
        return len(self._pending)

    # -- ingest ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this StreamSession is closed")

    def _check_input(self) -> None:
        self._check_open()
        if self._ended:
            raise RuntimeError("input has ended (end_input was called): no more audio or text")

    def _frame_sample(self, f: int) -> int:
        return round(f * ANALYSIS_RATE / self.fps)

    def _out_sample(self, f: int) -> int:
        return round(f * self._R / self.fps)

    def _ingest(self, chunk: AudioChunk, source: Source) -> None:
        if self._ended:
            raise RuntimeError("input has ended (end_input was called): no more audio or text")
        self._tape.ingest(chunk, source, self._listener.proc)

    def _push_known(self, audio: AudioChunk, phones: Sequence[PhoneSpan]) -> None:
        self._tape.end_run(self._listener.proc)
        shift = self._tape.end / ANALYSIS_RATE - audio.start
        for p in phones:
            if not isinstance(p, PhoneSpan):
                raise TypeError(f"phones must be PhoneSpans, got {type(p).__name__}")
        self._listener.final.extend(PhoneSpan(p.phone, p.start + shift, p.end + shift) for p in phones)
        self._ingest(audio, Source.TTS)
        self._tape.end_run(self._listener.proc)  # a sentence is a whole run: its end is exact

    def _speak(self, sentence: str) -> None:
        if self._voice is None:
            from ..voice import PiperVoice

            with self.timings.stage("voice"):
                self._voice = PiperVoice()
        with self.timings.stage("voice"):
            voiced = list(self._voice.synthesize(sentence))
        for v in voiced:
            self._push_known(v.audio, v.phones)
        self._advance()

    def _flush_text(self) -> None:
        for sentence in self._splitter.flush():
            self._speak(sentence)

    # -- frames ------------------------------------------------------------------------------

    def _total_frames(self) -> int:
        return math.ceil(self._tape.end * self.fps / ANALYSIS_RATE - 1e-9)

    def _due_limit(self) -> int:
        """Frames < this may be computed now."""
        # Input that arrived, including the ~1 ms a resampler still holds back (waiting for it
        # would cost a whole push of latency for no information).
        end = self._tape.arrived()
        if self._ended:
            limit = self._total_frames()
        else:
            avail = end / ANALYSIS_RATE - self.options.lookahead_s
            limit = math.floor(avail * self.fps + 1e-9) + 1 if avail >= 0 else 0
        if self._clock is not None:
            limit = min(limit, math.ceil((self._clock + self.options.max_lead_s) * self.fps - 1e-9))
        return limit

    def _advance(self) -> None:
        limit = self._due_limit()
        if self._ended and self._next_frame < limit:
            self._listener.finish()
        L = self.options.lookahead_s
        while self._next_frame < limit:
            f = self._next_frame
            if not self._ended:
                # Analyse up to a point fixed by the frame alone (not by how the input was cut
                # into pushes), so every frame sees the same input whatever the push sizes. The
                # few samples a resampler holds back are left for the next frame.
                point = math.ceil((f / self.fps + L) * ANALYSIS_RATE - 1e-6) - RESAMPLER_SLACK
                if self._tape.end < point:
                    break
                self._listener.process_to(point)
                self._horizon = point
            else:
                self._horizon = self._tape.end
            self._pending.append(self._frame_motion(f))
            if len(self._pending) == 1:
                self._pending_first = f
            self._next_frame = f + 1
        self._trim()

    def _frame_motion(self, f: int) -> np.ndarray:
        """Motion parameters of frame f from the input known now (window around it)."""
        fps = self.fps
        ana = self._tape.ana
        phones_all = self._listener.phones_for(max(f - int(round(0.5 * fps)) - 1, 0) / fps - 1.0,
                                               self._barrier / fps)
        t0 = time.perf_counter()
        ctx = max(int(round(0.5 * fps)), 2)
        ahead = max(int(math.ceil(self.options.lookahead_s * fps)), 1)
        lo = max(f - ctx, self._barrier, 0)
        hi = f + ahead + 1
        n = hi - lo
        a0 = self._frame_sample(lo) - int(0.03 * ANALYSIS_RATE)
        end = self._horizon  # what this frame may see (the same whatever the push sizes)
        a1 = min(self._frame_sample(hi) + int(0.03 * ANALYSIS_RATE), end)
        seg = ana.get(max(a0, ana.base), max(a1, max(a0, ana.base)))[0]
        from ..analysis import loudness_envelope

        energy = loudness_envelope(seg, ANALYSIS_RATE, fps, n, lo, samples_start=max(a0, ana.base) / ANALYSIS_RATE)
        times = (lo + np.arange(n)) / fps
        ends = np.arange(lo, hi)
        energy[(ends * ANALYSIS_RATE / fps) >= end] = 0.0
        phones = phones_all
        voiced = self._listener.voiced(lo, hi, end, phones, times)
        row = f - lo
        self._gain(energy[row:row + 1], voiced[row:row + 1])  # the frame joins the gain's history once
        energy = self._gain(energy, np.zeros(n, bool))
        # Frames past the audio received are not heard yet (their loudness 0 is a placeholder):
        # stresses are judged on the heard ones. Once the input ended, past its end is silence.
        heard = None if self._ended else int(np.count_nonzero(ends * ANALYSIS_RATE / fps < end))
        pitch = self._pitch.window(seg, max(a0, ana.base) / ANALYSIS_RATE, lo, hi, end / ANALYSIS_RATE, self._ended)
        speech = Speech(tuple(phones), energy, voiced, fps, lo, pitch=pitch, heard_frames=heard)
        params = self._motion.frames(speech, now=f / fps).params[row].copy()
        if self._fade is not None:
            ts, held = self._fade
            fade = self.options.interrupt_fade_s
            x = (f / fps - (ts - 1.0 / fps)) / fade if fade > 0 else 1.0
            if x >= 1.0:
                self._fade = None
            else:
                w = 1.0 - max(x, 0.0)  # linear: the smallest largest step over the fade
                params = (w * held + (1 - w) * params).astype(np.float32)
        self._last_params = params
        self.timings.add("motion", time.perf_counter() - t0)
        return params

    def _trim(self) -> None:
        f = self._next_frame
        ctx = int(round(0.5 * self.fps)) + 2
        keep = self._listener.keep_from(self._frame_sample(max(f - ctx, 0)) - int(0.05 * ANALYSIS_RATE))
        self._tape.trim(keep, self._out_sample(self._pending_first if self._pending else f),
                        min(keep, self._frame_sample(max(f - ctx, 0))))
        self._listener.trim(f, ctx)

    # -- output ------------------------------------------------------------------------------

    def _emit(self, final: bool) -> list[StreamChunk]:
        chunks = []
        out = self._tape.out
        while self._pending:
            n = min(len(self._pending), self.options.chunk_frames)
            f0 = self._pending_first
            # Audio of the frames must be there (the resamplers hold back a few samples).
            if not (final or self._ended):
                while n > 0 and self._out_sample(f0 + n) > out.end:
                    n -= 1
                if n == 0:
                    break
            params = np.stack(self._pending[:n])
            del self._pending[:n]
            self._pending_first = f0 + n
            motion = MotionFrames(params, self.fps, f0)
            with self.timings.stage("render"):
                video = self._render(motion)
            if video.num_frames != n or video.first_frame != f0:
                raise RuntimeError(f"render returned frames {video.first_frame}+{video.num_frames}, "
                                   f"expected {f0}+{n}")
            s0, s1 = self._out_sample(f0), self._out_sample(f0 + n)
            audio = AudioChunk(out.get(s0, s1), self._R, s0 / self._R)
            fmp4 = None
            if self.options.fmp4:
                with self.timings.stage("encode"):
                    if self._encoder is None:
                        from ..media import Fmp4SegmentWriter

                        H, W = int(video.frames.shape[1]), int(video.frames.shape[2])
                        enc = self.options.encode
                        self._encoder = Fmp4SegmentWriter(
                            fps=self.fps, width=W, height=H, audio_rate=self._R, audio_channels=self._out_ch,
                            crf=enc.crf, preset=enc.preset, codec=enc.codec,
                            fragment_frames=self.options.fragment_frames, threads=1)
                    # CUDA frames go as they are: the writer converts them to yuv420p on the GPU.
                    fmp4 = self._encoder.write(video, audio)
            jpeg = None
            if self.options.preview_jpeg:
                from ..media import encode_jpeg

                with self.timings.stage("jpeg"):
                    jpeg = tuple(encode_jpeg(video, self.options.preview_jpeg))
            self.frames_out = f0 + n
            self._frame_shape = tuple(video.frames.shape[1:])
            chunks.append(StreamChunk(video, audio, fmp4, motion, jpeg))
            out.trim(self._out_sample(self._pending_first if self._pending else self._next_frame))
        return chunks
