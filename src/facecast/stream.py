"""Live streaming: speech in as it arrives (PCM chunks or text), video chunks out.

    source      AudioChunks (any rate/channels) from a live source, or text pieces (an LLM's
                tokens ...), or a mix; ``None`` / ``INTERRUPT`` = barge-in
    ingest      audio -> 16 kHz mono analysis buffer + output-quality buffer (48 kHz by default);
                text -> sentences -> Piper (exact phones, no recognition needed)
    analyse     as the audio arrives: silero-VAD (streaming), pocketsphinx allphone recognition
                with *partial* hypotheses (restarted at VAD pauses, so memory stays flat)
    animate     one frame per tick: frame f (shown at f / fps) is computed as soon as audio up to
                f / fps + lookahead_s has arrived, by MotionModel over a short window around it
    render      an injected ``render(MotionFrames) -> VideoFrames`` (default MeshRenderer), so a
                batched multi-stream GPU scheduler can take over
    encode      optional fragmented MP4 (H.264 + AAC) for Media Source Extensions players

The core is the synchronous :class:`StreamSession` (push_audio / push_text / push_speech /
interrupt / advance_to / poll / end_input / close); :func:`stream` is the asyncio driver around it.

Clock. The stream has one timeline (seconds from its start). Input is placed back to back on it
(``AudioChunk.start`` of pushed chunks is ignored); ``advance_to(t)`` says "the clock is at t:
input that has not arrived before t is silence", which keeps the avatar alive (idle frames:
blinks, head drift, closed mouth) when nothing is said. Frame f covers [f/fps, (f+1)/fps) and
comes out with exactly that span of audio.

Look-ahead. Frame f is computed once audio up to f / fps + ``lookahead_s`` (default 0.16 s,
at most 0.2 s) has arrived, or the input ended: the mouth may anticipate the next phone by up to
that much (coarticulation), the recogniser's partial path has mostly settled around the frame, and the
VAD/loudness windows of the frame are complete. Video therefore lags the input audio by
``lookahead_s``; the audio handed out with the frames is delayed to match, so output is in sync.

Barge-in. ``interrupt()`` drops everything not yet turned into frames (audio, phones, queued
text), keeps the clock running, and eases the face from the last frame to what the new input says
(rest, in silence) over ``interrupt_fade_s`` (0.1 s): no pop, mouth closed within ~100 ms.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterable, AsyncIterator, Callable, Iterable, Sequence

import numpy as np

from .buffer import SampleBuffer
from .errors import InputError, ModelError
from .motion import MotionModel
from .options import StreamOptions
from .types import ANALYSIS_RATE, MOTION_PARAMS, AudioChunk, MotionFrames, PhoneSpan, Portrait, Speech, VideoFrames

__all__ = [
    "INTERRUPT",
    "Interrupt",
    "LivePhones",
    "SentenceSplitter",
    "StreamChunk",
    "StreamOptions",
    "StreamSession",
    "stream",
]

log = logging.getLogger(__name__)

MAX_LOOKAHEAD_S = 0.2
# swresample holds back up to 32 samples (at 16 kHz; 8 kHz input) of filter delay until more
# input comes; frame analysis stops this far short of frame time + look-ahead so that it never
# waits for them (3 ms).
_RESAMPLER_SLACK = 48

# Mean cepstrum of speech for pocketsphinx's live cepstral mean normalisation at the start of a
# stream (its built-in "40,3,-1" is far too quiet for normal recording levels, and live CMN only
# adapts after an utterance ends). Measured: speech60s_en.wav decoded whole (full_utt=True),
# Decoder.get_cmn(). With it the streamed mouth-class accuracy goes from 0.59 to 0.72 on jfk_en
# and from 0.62 to 0.75 on hdtf_radio31_en -- see docs/streaming.md.
CMN_INIT = "60.98,5.36,1.58,9.10,1.54,-2.97,-8.67,-2.45,-0.71,-4.17,-0.15,-5.22,2.77"


# --------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------


class Interrupt:
    """Barge-in marker for :func:`stream` sources (``None`` means the same)."""

    def __repr__(self) -> str:
        return "INTERRUPT"


INTERRUPT = Interrupt()


@dataclass(frozen=True)
class StreamChunk:
    """Consecutive frames of the stream and everything that goes with them.

    video: uint8 [n, H, W, 3] RGB frames; frame k is shown at (video.first_frame + k) / fps
        seconds on the stream's clock (the pts, in 1/fps units, is first_frame + k).
    audio: the output audio of exactly those frames' span [first_frame/fps, (first_frame+n)/fps):
        float32 [audio_channels, m] at ``StreamOptions.audio_rate`` (48 kHz by default: the input
        resampled, not reduced to 16 kHz), ``audio.start`` = first_frame / fps.
    fmp4: with ``StreamOptions.encode``: the fragmented-MP4 bytes that became ready with this
        chunk (the init segment in the first chunk, then whole moof+mdat fragments; often b""
        since a fragment spans ``fragment_frames`` frames); None without encoding.
    motion: the animation parameters of these frames (MotionFrames; for tests and debugging).
    jpeg: with ``StreamOptions.preview_jpeg``: one JPEG per frame, in order; None without.
    """

    video: VideoFrames
    audio: AudioChunk
    fmp4: bytes | None
    motion: MotionFrames
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


def check_options(options: StreamOptions) -> StreamOptions:
    """ValueError naming the field unless ``options`` make sense."""
    from .media import AAC_SAMPLE_RATES

    if not isinstance(options, StreamOptions):
        raise TypeError(f"options must be a StreamOptions, got {type(options).__name__}")
    if not (0.0 <= options.lookahead_s <= MAX_LOOKAHEAD_S):
        raise ValueError(f"StreamOptions.lookahead_s must be within 0 ... {MAX_LOOKAHEAD_S} s, got {options.lookahead_s}")
    if not (options.fps > 0 and math.isfinite(options.fps)):
        raise ValueError(f"StreamOptions.fps must be > 0, got {options.fps}")
    if options.size is not None and (options.size < 16 or options.size % 2):
        raise ValueError(f"StreamOptions.size must be an even number >= 16 (or None), got {options.size}")
    for name in ("max_lead_s", "jitter_s", "interrupt_fade_s"):
        if getattr(options, name) < 0:
            raise ValueError(f"StreamOptions.{name} must be >= 0, got {getattr(options, name)}")
    if options.max_buffer_s <= 0 or options.max_utterance_s < 1.0:
        raise ValueError("StreamOptions.max_buffer_s must be > 0 and max_utterance_s >= 1 s")
    if options.chunk_frames < 1 or options.fragment_frames < 1:
        raise ValueError("StreamOptions.chunk_frames and fragment_frames must be >= 1")
    if options.audio_rate not in AAC_SAMPLE_RATES:
        raise ValueError(f"StreamOptions.audio_rate must be an AAC rate {AAC_SAMPLE_RATES}, got {options.audio_rate}")
    if options.audio_channels not in (1, 2):
        raise ValueError(f"StreamOptions.audio_channels must be 1 or 2, got {options.audio_channels}")
    if not 0 <= options.preview_jpeg <= 100:
        raise ValueError(f"StreamOptions.preview_jpeg must be 0 (off) or a JPEG quality 1 ... 100, "
                         f"got {options.preview_jpeg}")
    lead = float(getattr(options.motion, "lead_s", 0.0))
    if options.lookahead_s < lead:
        raise ValueError(f"StreamOptions.lookahead_s ({options.lookahead_s} s) must be at least MotionOptions.lead_s "
                         f"({lead} s): the mouth shows the speech lead_s ahead of the frame")
    if options.motion.drive not in ("phones", "loudness"):
        raise ValueError(f"MotionOptions.drive must be 'phones' or 'loudness', got {options.motion.drive!r}")
    return options


# --------------------------------------------------------------------------------------------
# Text: sentences as they complete
# --------------------------------------------------------------------------------------------


class SentenceSplitter:
    """Collects text pieces and hands out sentences as soon as they are complete.

    A sentence ends at . ! ? ; or : followed by white space, or at a line break. A run of more
    than ``max_chars`` without one is cut at its last comma (or space), so a long unpunctuated
    stream still starts speaking. Pieces with nothing speakable ("...", " ") are dropped.
    """

    _END = re.compile(r"[.!?;:\u3002\uff01\uff1f]+[\"')\]\u201d\u2019]*\s+|\n+")

    def __init__(self, max_chars: int = 200) -> None:
        self.max_chars = max_chars
        self._buf = ""

    def feed(self, text: str) -> list[str]:
        self._buf += text
        out = []
        while True:
            m = self._END.search(self._buf)
            if m is None:
                break
            out.append(self._buf[:m.end()])
            self._buf = self._buf[m.end():]
        while len(self._buf) > self.max_chars:
            cut = self._buf.rfind(",", 0, self.max_chars)
            cut = cut if cut > 0 else self._buf.rfind(" ", 0, self.max_chars)
            cut = cut + 1 if cut > 0 else self.max_chars
            out.append(self._buf[:cut])
            self._buf = self._buf[cut:]
        return [s.strip() for s in out if _speakable(s)]

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, ""
        return [rest.strip()] if _speakable(rest) else []

    def clear(self) -> None:
        self._buf = ""

    @property
    def pending(self) -> str:
        return self._buf


def _speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _check_text_piece(text: Any) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if text == "":
        raise InputError("stream text: got an empty text piece. Send the words to speak (white space between "
                         "words is fine), or send nothing.")
    return text


# --------------------------------------------------------------------------------------------
# Live phone recognition
# --------------------------------------------------------------------------------------------


class LivePhones:
    """Incremental phone recognition of a live 16 kHz stream (pocketsphinx allphone search).

    pocketsphinx 5.1's ``process_raw(..., full_utt=False)`` decodes as audio arrives and
    ``seg()`` mid-utterance gives the best path so far: measured on jfk/radio/lecture, the phone
    of a 10 ms frame read 160 ms after it equals the end-of-utterance result for 94-96 % of
    frames, read 300 ms after it for > 99 %. Cepstral normalisation is "live" (starts from ``CMN_INIT``
    and adapts at every utterance end). The caller starts an utterance at speech onsets and ends
    it at pauses (``start``/``end``), which keeps the decoder's memory flat.
    Same decoder settings as :class:`facecast.align.Aligner`'s recogniser.
    """

    def __init__(self, options=None, cmn_init: str = CMN_INIT) -> None:
        import pocketsphinx

        from .options import AlignOptions

        self.options = options or AlignOptions()
        model_dir = self.options.model_dir or pocketsphinx.get_model_path()
        hmm = os.path.join(model_dir, "en-us", "en-us")
        phone_lm = os.path.join(model_dir, "en-us", "en-us-phone.lm.bin")
        for path in (hmm, phone_lm):
            if not os.path.exists(path):
                raise ModelError(f"{path}: pocketsphinx model file missing; reinstall the pocketsphinx wheel "
                                 "(pip install --force-reinstall pocketsphinx)")
        try:
            self._dec = pocketsphinx.Decoder(
                hmm=hmm, lm=None, dict=None, allphone=phone_lm, allphone_ci=True,
                lw=self.options.lw, beam=self.options.beam, pbeam=self.options.pbeam,
                ds=self.options.downsample, bestpath=False, cmninit=cmn_init,
                loglevel=self.options.sphinx_loglevel,
            )
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{model_dir}: cannot load the pocketsphinx models ({exc})") from exc
        self.active = False
        self.start_sample = 0  # analysis-rate sample index of the utterance start
        self.fed = 0           # samples fed in this utterance
        self._levels: list[np.ndarray] = []  # dBFS per 10 ms frame
        self._rest = np.zeros(0, np.float32)  # < 160 samples not yet in _levels

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.fed

    def start(self, at_sample: int) -> None:
        self._dec.start_utt()
        self.active = True
        self.start_sample, self.fed = int(at_sample), 0
        self._levels, self._rest = [], np.zeros(0, np.float32)

    def feed(self, samples: np.ndarray) -> None:
        from .align import frame_db, to_pcm16

        if not self.active or samples.size == 0:
            return
        self._dec.process_raw(to_pcm16(samples), no_search=False, full_utt=False)
        self.fed += samples.shape[0]
        data = np.concatenate([self._rest, samples]) if self._rest.size else samples
        n = (data.shape[0] // 160) * 160
        if n:
            self._levels.append(frame_db(data[:n]))
        self._rest = data[n:].astype(np.float32, copy=True)

    def partial(self) -> list[PhoneSpan]:
        """The best phone path so far (absolute seconds), up to the last decoded frame."""
        return self._spans(final=False) if self.active else []

    def end(self) -> list[PhoneSpan]:
        """End the utterance; its final phones (absolute seconds, covering it exactly)."""
        if not self.active:
            return []
        self._dec.end_utt()
        out = self._spans(final=True)
        self.active = False
        return out

    def abort(self) -> None:
        if self.active:
            self._dec.end_utt()
            self.active = False

    def _spans(self, final: bool) -> list[PhoneSpan]:
        from .align import phone, quiet_frames, timeline

        if self._dec.hyp() is None:
            raw: list[tuple[str, int, int]] = []
        else:
            raw = [(phone(s.word), s.start_frame, s.end_frame + 1) for s in self._dec.seg()]
        t0 = self.start_sample / ANALYSIS_RATE
        level = np.concatenate(self._levels) if self._levels else np.zeros(0)
        if final:
            num = -(-self.fed // 160)
            end = self.end_sample / ANALYSIS_RATE
        else:  # stop where the decoder's path stops: what lies beyond is not known yet
            num = max((e for _, _, e in raw), default=0)
            end = t0 + num / 100
        if num <= 0:
            return []
        lv = np.full(num, 0.0)
        lv[:min(num, level.size)] = level[:num]
        quiet = quiet_frames(lv, self.options.silence_dbfs,
                              max(1, round(self.options.min_silence_s * 100)))
        if not final:
            quiet[level.size:] = False
        return timeline(raw, quiet, num, t0, end)


# --------------------------------------------------------------------------------------------
# Buffers
# --------------------------------------------------------------------------------------------


class _Run:
    """One contiguous run of input of one kind/rate through the two resamplers."""

    def __init__(self, kind: str, rate: int, channels: int, a_start: int, o_start: int, out_rate: int, out_ch: int):
        from .audio import Resampler

        self.kind, self.rate, self.channels = kind, rate, channels
        self.a_start, self.o_start = a_start, o_start  # analysis / output sample index of its start
        self.fed = 0
        self.ana = Resampler(ANALYSIS_RATE, mono=True)
        self.out = Resampler(out_rate, mono=(out_ch == 1))

    def chunk(self, samples: np.ndarray) -> AudioChunk:
        c = AudioChunk(samples, self.rate, self.fed / self.rate)
        self.fed += samples.shape[1]
        return c

    def a_end(self) -> int:
        return self.a_start + round(self.fed * ANALYSIS_RATE / self.rate)

    def o_end(self, out_rate: int) -> int:
        return self.o_start + round(self.fed * out_rate / self.rate)


# --------------------------------------------------------------------------------------------
# The session
# --------------------------------------------------------------------------------------------

Render = Callable[[MotionFrames], VideoFrames]


class StreamSession:
    """The synchronous streaming core for one portrait (see the module docstring).

    portrait: a prepared Portrait, or an image path/array (framed at ``options.size``).
    render: ``MotionFrames -> VideoFrames`` (default: ``MeshRenderer(portrait, options.render)``);
        a multi-stream scheduler can pass its own (e.g. one that batches several sessions on a GPU).
    voice: a Voice for ``push_text`` (default: the bundled Piper voice, loaded on first use).

    Calls: ``push_audio(chunk)``, ``push_text(piece)``, ``push_speech(audio, phones)``,
    ``interrupt()``, ``advance_to(t)`` add input or move the clock and compute the motion of every
    frame that became due; ``poll()`` renders those frames and returns StreamChunks (in order,
    contiguous, each at most ``options.chunk_frames``). ``end_input()`` says no more input will
    come; ``close()`` ends the input, returns every remaining chunk (ignoring the clock) and
    finishes the fMP4. Not thread-safe: drive a session from one thread at a time.

    ``timings`` (pipeline.Timings) accumulates the seconds spent per stage: resample, vad, align,
    motion, render, encode, voice.
    """

    def __init__(
        self,
        portrait: str | Path | np.ndarray | Portrait,
        options: StreamOptions = StreamOptions(),
        *,
        render: Render | None = None,
        voice=None,
    ) -> None:
        from .analysis import VoiceActivity
        from .sources import prepare_portrait
        from .speech import LoudnessGain
        from .timing import Timings

        self.options = check_options(options)
        self.timings = Timings()
        if not isinstance(portrait, Portrait):
            from .options import SayOptions

            portrait = prepare_portrait(portrait, SayOptions(size=options.size, face_index=options.face_index))
        self.portrait = portrait
        if render is None:
            from .render import MeshRenderer

            render = MeshRenderer(portrait, options.render).render
        self._render = render
        self._voice = voice
        self.fps = float(options.fps)
        self._motion = MotionModel(options.motion)
        self._vad = VoiceActivity()
        self._phones_rec = LivePhones() if options.motion.drive == "phones" else None
        self._gain = LoudnessGain()
        self._splitter = SentenceSplitter()
        self._R = options.audio_rate
        self._out_ch = options.audio_channels

        self._ana = SampleBuffer(1)                 # 16 kHz mono analysis audio
        self._out = SampleBuffer(self._out_ch)      # output audio at audio_rate
        self._run: _Run | None = None
        self._regions: list[list] = []          # [kind, a_start, a_end], contiguous, in order
        self._proc = 0                          # analysis samples processed by VAD/recogniser
        self._vad_origin: int | None = None     # analysis index where the VAD stream (re)started
        self._vad_windows = 0                   # VAD windows completed since then
        self._vad_flushed = False
        self._quiet_run = 0                     # samples of low speech probability in an utterance
        self._last_utt_end = 0
        self._vdec: dict[int, bool] = {}        # VAD decision per frame (mic input)
        self._vdec_next = 0                     # next frame to decide
        self._last_mic_voiced = False
        self._final: list[PhoneSpan] = []       # settled phones (TTS, ended utterances)
        self._partial_cache: tuple[int, list[PhoneSpan]] | None = None

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

    def push_audio(self, chunk: AudioChunk) -> None:
        """Append live audio (any rate, any channels; float samples in [-1, 1]) to the input."""
        self._check_input()
        chunk = _check_audio(chunk)
        self._flush_text()
        self._ingest(chunk, "mic")
        self._advance()

    def push_text(self, text: str) -> None:
        """Add a piece of text; each sentence is synthesised (blocking) and queued as soon as it
        completes (a sentence ends at . ! ? ; : followed by white space, or a line break). An
        unfinished sentence is spoken when audio is pushed next or at ``end_input``."""
        self._check_input()
        text = _check_text_piece(text)
        for sentence in self._splitter.feed(text):
            self._speak(sentence)

    def push_speech(self, audio: AudioChunk, phones: Sequence[PhoneSpan]) -> None:
        """Append speech whose phones are known (TTS): ``phones`` on the same clock as
        ``audio.start``; no recognition runs on it."""
        self._check_input()
        audio = _check_audio(audio)
        self._flush_text()
        self._push_known(audio, phones)
        self._advance()

    def interrupt(self) -> None:
        """Barge-in: drop input not yet turned into frames (audio, phones, unspoken text); the
        clock runs on and the face eases to the new input's pose (rest in silence)."""
        self._check_open()
        self._splitter.clear()
        f = self._next_frame
        t_samples = self._frame_sample(f)
        if self._run is not None:
            self._run = None  # whatever the resamplers hold is dropped with the rest
        if self._phones_rec is not None:
            self._phones_rec.abort()
        end = self._ana.end
        if t_samples < end:
            self._ana.truncate(t_samples)
            self._out.truncate(self._out_sample(f))
            while self._regions and self._regions[-1][1] >= t_samples:
                self._regions.pop()
            if self._regions:
                self._regions[-1][2] = t_samples
        elif t_samples > end:
            self._fill(t_samples)
        self._out.truncate(self._out_sample(f))
        self._proc = min(self._proc, self._ana.end)
        self._vad_origin = None
        self._final = [p for p in self._final if p.start < f / self.fps]
        self._vdec = {g: v for g, v in self._vdec.items() if g < f}
        self._vdec_next = min(self._vdec_next, f)
        self._partial_cache = None
        self._last_utt_end = self._ana.end
        if self._last_params is not None:
            self._fade = (f / self.fps, self._last_params.copy())
        self._barrier = f

    def advance_to(self, t: float) -> None:
        """The clock is at ``t`` seconds: input that has not arrived before ``t`` is silence
        (idle frames follow), and in paced mode frames up to ``t + max_lead_s`` may be made."""
        self._check_open()
        if not math.isfinite(t):
            raise ValueError(f"advance_to: t must be finite, got {t}")
        self._clock = t if self._clock is None else max(self._clock, t)
        if not self._ended:
            target = math.floor(t * ANALYSIS_RATE)
            while self._ana.end < target:  # a second at a time: a clock jump does not pile up audio
                self._fill(min(target, self._ana.end + ANALYSIS_RATE))
                self._advance()
        self._advance()

    def end_input(self) -> None:
        """No more input: speak the rest of the text, settle the last phones; the frames up to
        the end of the input become due (still paced by the clock, if one drives the session)."""
        if self._ended or self._closed:
            return
        self._flush_text()
        self._end_run()
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
    def input_end(self) -> float:
        """Seconds of input (audio, text audio, silence) on the timeline so far."""
        return self._ana.end / ANALYSIS_RATE

    @property
    def clock(self) -> float | None:
        return self._clock

    @property
    def done(self) -> bool:
        """Input ended and every frame of it has been returned."""
        return self._ended and self._next_frame >= self._total_frames() and not self._pending

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

    def _ingest(self, chunk: AudioChunk, kind: str) -> None:
        if self._ended:
            raise RuntimeError("input has ended (end_input was called): no more audio or text")
        samples = chunk.samples
        if samples.shape[0] > 2:
            samples = samples.mean(axis=0, keepdims=True, dtype=np.float32)
        samples = samples.astype(np.float32, copy=False)
        channels = samples.shape[0]
        run = self._run
        if run is None or (run.kind, run.rate, run.channels) != (kind, chunk.sample_rate, channels):
            self._end_run()
            run = self._run = _Run(kind, chunk.sample_rate, channels, self._ana.end, self._out.end, self._R,
                                   self._out_ch)
        with self.timings.stage("resample"):
            c = run.chunk(samples)
            a = run.ana.feed(c).samples
            o = run.out.feed(c).samples
        self._append(kind, a, o)

    def _append(self, kind: str, a: np.ndarray, o: np.ndarray) -> None:
        if o.shape[0] != self._out_ch:
            o = np.repeat(o, self._out_ch, axis=0) if o.shape[0] == 1 else o.mean(axis=0, keepdims=True)
        start = self._ana.end
        self._ana.append(a)
        self._out.append(o)
        if self._regions and self._regions[-1][0] == kind and self._regions[-1][2] == start:
            self._regions[-1][2] = self._ana.end
        elif self._ana.end > start:
            self._regions.append([kind, start, self._ana.end])

    def _end_run(self) -> None:
        """Flush the resamplers of the current run and snap both buffers to its exact end."""
        run = self._run
        if run is None:
            return
        self._run = None
        with self.timings.stage("resample"):
            a = run.ana.flush().samples
            o = run.out.flush().samples
        self._append(run.kind, a, o)
        a_end, o_end = run.a_end(), run.o_end(self._R)
        if self._ana.end != a_end:
            self._ana.truncate(max(a_end, self._proc))
            if self._regions:
                self._regions[-1][2] = self._ana.end
        if self._out.end != o_end:
            self._out.truncate(o_end)

    def _fill(self, target: int) -> None:
        """Silence (no input) up to analysis sample ``target``."""
        self._end_run()
        n = target - self._ana.end
        if n <= 0:
            return
        o_target = round(target * self._R / ANALYSIS_RATE)
        self._append("fill", np.zeros((1, n), np.float32),
                      np.zeros((self._out_ch, max(o_target - self._out.end, 0)), np.float32))

    def _push_known(self, audio: AudioChunk, phones: Sequence[PhoneSpan]) -> None:
        self._end_run()
        shift = self._ana.end / ANALYSIS_RATE - audio.start
        for p in phones:
            if not isinstance(p, PhoneSpan):
                raise TypeError(f"phones must be PhoneSpans, got {type(p).__name__}")
        self._final.extend(PhoneSpan(p.phone, p.start + shift, p.end + shift) for p in phones)
        self._ingest(audio, "tts")
        self._end_run()  # a sentence is a whole run: its end is exact

    def _speak(self, sentence: str) -> None:
        if self._voice is None:
            from .voice import PiperVoice

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

    # -- analysis ----------------------------------------------------------------------------

    def _region_at(self, sample: int) -> str | None:
        for kind, a, b in reversed(self._regions):
            if a <= sample < b:
                return kind
            if b <= sample:
                return None
        return None

    def _process_to(self, target: int) -> None:
        """Run VAD and the recogniser over analysis samples [_proc, target)."""
        target = min(target, self._ana.end)
        while self._proc < target:
            kind, r_end = None, target
            for k, a, b in self._regions:
                if a <= self._proc < b:
                    kind, r_end = k, min(b, target)
                    break
            if kind is None:  # should not happen: regions tile the input
                self._proc = target
                break
            if kind == "mic":
                self._process_mic(self._proc, r_end)
            else:
                self._mic_gap(self._proc)
            self._proc = r_end
        self._decide_voiced()

    def _process_mic(self, a: int, b: int) -> None:
        x = self._ana.get(a, b)[0]
        if self._vad_origin is None or self._vad_flushed:
            self._vad.reset(a / ANALYSIS_RATE)
            self._vad_origin, self._vad_windows, self._vad_flushed = a, 0, False
            self._last_mic_voiced = False
            self._vdec_next = max(self._vdec_next, math.ceil(a * self.fps / ANALYSIS_RATE - 1e-9))
        with self.timings.stage("vad"):
            probs = self._vad.speech_probability(x)
        self._vad_windows += probs.size
        rec = self._phones_rec
        if rec is None:
            return
        with self.timings.stage("align"):
            if not rec.active:
                if probs.size and probs.max() >= 0.5:
                    # Speech onset: start the utterance a little before it (pre-roll), never
                    # before the previous utterance's end or this run of live input.
                    region_start = next(r[1] for r in reversed(self._regions) if r[1] <= a)
                    start = max(b - int(0.3 * ANALYSIS_RATE), self._last_utt_end, region_start, self._ana.base)
                    rec.start(start)
                    rec.feed(self._ana.get(start, b)[0])
                    self._quiet_run = 0
                    self._partial_cache = None
                return
            rec.feed(x)
            self._partial_cache = None
            low = (probs.size == 0 and self._quiet_run > 0) or (probs.size > 0 and probs.max() < 0.35)
            self._quiet_run = self._quiet_run + (b - a) if low else 0
            if self._quiet_run >= int(0.3 * ANALYSIS_RATE):
                self._end_utterance()
            elif rec.fed >= self.options.max_utterance_s * ANALYSIS_RATE:
                self._end_utterance()
                rec.start(b)
                self._quiet_run = 0

    def _end_utterance(self) -> None:
        rec = self._phones_rec
        if rec is None or not rec.active:
            return
        self._final.extend(rec.end())
        self._last_utt_end = rec.end_sample
        self._partial_cache = None

    def _mic_gap(self, at: int) -> None:
        """Input that is not live audio starts at ``at``: close the live analysis."""
        with self.timings.stage("align"):
            self._end_utterance()
        if self._vad_origin is not None and not self._vad_flushed:
            with self.timings.stage("vad"):
                self._vad_windows += self._vad.flush().size
            self._vad_flushed = True
            self._decide_voiced(upto=at)
        self._last_utt_end = max(self._last_utt_end, at)

    def _decide_voiced(self, upto: int | None = None) -> None:
        """VAD decisions for the frames whose windows are complete."""
        if self._vad_origin is None:
            return
        complete = self._vad_origin + self._vad_windows * self._vad.window
        if self._vad_flushed:
            complete = max(complete, upto or 0)
        while True:
            g = self._vdec_next
            t = g * ANALYSIS_RATE / self.fps
            if t >= self._proc and not self._vad_flushed:
                break
            if t + 0.5 * ANALYSIS_RATE / self.fps > complete and not (self._vad_flushed and t < complete):
                break
            if t >= self._ana.end:
                break
            if self._region_at(int(t)) == "mic" and t >= self._vad_origin:
                v = bool(self._vad.voiced_frames(np.zeros(0, np.float32), self.fps, 1, g)[0])
                self._vdec[g] = v
                self._last_mic_voiced = v
            self._vdec_next = g + 1

    # -- frames ------------------------------------------------------------------------------

    def _total_frames(self) -> int:
        return math.ceil(self._ana.end * self.fps / ANALYSIS_RATE - 1e-9)

    def _due_limit(self) -> int:
        """Frames < this may be computed now."""
        # Input that arrived, including the ~1 ms a resampler still holds back (waiting for it
        # would cost a whole push of latency for no information).
        end = self._run.a_end() if self._run is not None else self._ana.end
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
            self._process_to(self._ana.end)
            with self.timings.stage("align"):
                self._end_utterance()
            if self._vad_origin is not None and not self._vad_flushed:
                self._mic_gap(self._ana.end)
        L = self.options.lookahead_s
        while self._next_frame < limit:
            f = self._next_frame
            if not self._ended:
                # Analyse up to a point fixed by the frame alone (not by how the input was cut
                # into pushes), so every frame sees the same input whatever the push sizes. The
                # few samples a resampler holds back are left for the next frame.
                point = math.ceil((f / self.fps + L) * ANALYSIS_RATE - 1e-6) - _RESAMPLER_SLACK
                if self._ana.end < point:
                    break
                self._process_to(point)
                self._horizon = point
            else:
                self._horizon = self._ana.end
            self._pending.append(self._frame_motion(f))
            if len(self._pending) == 1:
                self._pending_first = f
            self._next_frame = f + 1
        self._trim()

    def _frame_motion(self, f: int) -> np.ndarray:
        """Motion parameters of frame f from the input known now (window around it)."""
        fps = self.fps
        phones_all = self._phones_for(max(f - int(round(0.5 * fps)) - 1, 0) / fps - 1.0)
        t0 = time.perf_counter()
        ctx = max(int(round(0.5 * fps)), 2)
        ahead = max(int(math.ceil(self.options.lookahead_s * fps)), 1)
        lo = max(f - ctx, self._barrier, 0)
        hi = f + ahead + 1
        n = hi - lo
        a0 = self._frame_sample(lo) - int(0.03 * ANALYSIS_RATE)
        end = self._horizon  # what this frame may see (the same whatever the push sizes)
        a1 = min(self._frame_sample(hi) + int(0.03 * ANALYSIS_RATE), end)
        seg = self._ana.get(max(a0, self._ana.base), max(a1, max(a0, self._ana.base)))[0]
        from .analysis import loudness_envelope

        energy = loudness_envelope(seg, ANALYSIS_RATE, fps, n, lo, samples_start=max(a0, self._ana.base) / ANALYSIS_RATE)
        times = (lo + np.arange(n)) / fps
        ends = np.arange(lo, hi)
        energy[(ends * ANALYSIS_RATE / fps) >= end] = 0.0
        phones = phones_all
        voiced = np.zeros(n, bool)
        mic_hold = self._last_mic_voiced
        for k, g in enumerate(range(lo, hi)):
            s = g * ANALYSIS_RATE / fps
            kind = self._region_at(int(s)) if s < end else None
            if kind == "mic":
                voiced[k] = self._vdec.get(g, mic_hold)
            elif kind == "tts":
                voiced[k] = _speaking_at(phones, times[k])
        row = f - lo
        self._gain(energy[row:row + 1], voiced[row:row + 1])  # the frame joins the gain's history once
        energy = self._gain(energy, np.zeros(n, bool))
        speech = Speech(tuple(phones), energy, voiced, fps, lo)
        params = self._motion.frames(speech).params[row].copy()
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

    def _phones_for(self, since: float) -> list[PhoneSpan]:
        barrier_t = self._barrier / self.fps
        out = [p for p in self._final if p.end > since and p.start >= barrier_t - 1e-9]
        rec = self._phones_rec
        if rec is not None and rec.active:
            key = rec.fed
            if self._partial_cache is None or self._partial_cache[0] != key:
                with self.timings.stage("align"):
                    self._partial_cache = (key, rec.partial())
            out += [p for p in self._partial_cache[1] if p.start >= barrier_t - 1e-9]
        out.sort(key=lambda p: p.start)
        return out

    def _trim(self) -> None:
        f = self._next_frame
        ctx = int(round(0.5 * self.fps)) + 2
        keep = self._frame_sample(max(f - ctx, 0)) - int(0.05 * ANALYSIS_RATE)
        if self._phones_rec is not None and not self._phones_rec.active:
            keep = min(keep, self._proc - int(0.35 * ANALYSIS_RATE))
        keep = min(keep, self._proc)
        self._ana.trim(keep)
        self._out.trim(self._out_sample(self._pending_first if self._pending else f))
        while len(self._regions) > 1 and self._regions[0][2] <= min(keep, self._frame_sample(max(f - ctx, 0))):
            self._regions.pop(0)
        horizon = max(f - ctx, 0) / self.fps - 1.5
        if self._final and self._final[0].end < horizon:
            self._final = [p for p in self._final if p.end >= horizon]
        if self._vdec and min(self._vdec) < f - ctx - 2:
            self._vdec = {g: v for g, v in self._vdec.items() if g >= f - ctx - 2}

    # -- output ------------------------------------------------------------------------------

    def _emit(self, final: bool) -> list[StreamChunk]:
        chunks = []
        while self._pending:
            n = min(len(self._pending), self.options.chunk_frames)
            f0 = self._pending_first
            # Audio of the frames must be there (the resamplers hold back a few samples).
            if not (final or self._ended):
                while n > 0 and self._out_sample(f0 + n) > self._out.end:
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
            audio = AudioChunk(self._out.get(s0, s1), self._R, s0 / self._R)
            fmp4 = None
            if self.options.encode:
                with self.timings.stage("encode"):
                    if self._encoder is None:
                        from .media import Fmp4SegmentWriter

                        H, W = int(video.frames.shape[1]), int(video.frames.shape[2])
                        enc = self.options.encoding
                        self._encoder = Fmp4SegmentWriter(
                            fps=self.fps, width=W, height=H, audio_rate=self._R, audio_channels=self._out_ch,
                            crf=enc.crf, preset=enc.preset, codec=enc.codec,
                            fragment_frames=self.options.fragment_frames, threads=1)
                    # CUDA frames go as they are: the writer converts them to yuv420p on the GPU.
                    fmp4 = self._encoder.write(video, audio)
            jpeg = None
            if self.options.preview_jpeg:
                from .media import encode_jpeg

                with self.timings.stage("jpeg"):
                    jpeg = tuple(encode_jpeg(video, self.options.preview_jpeg))
            self.frames_out = f0 + n
            self._frame_shape = tuple(video.frames.shape[1:])
            chunks.append(StreamChunk(video, audio, fmp4, motion, jpeg))
            self._out.trim(self._out_sample(self._pending_first if self._pending else self._next_frame))
        return chunks


def _speaking_at(phones: list[PhoneSpan], t: float) -> bool:
    for p in phones:
        if p.start <= t < p.end:
            return p.phone != "SIL"
    return False


def _check_audio(chunk: Any) -> AudioChunk:
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


# --------------------------------------------------------------------------------------------
# asyncio driver
# --------------------------------------------------------------------------------------------

def _as_twin(portrait, options: StreamOptions):
    """A Twin when ``portrait`` is one or names a .twin file, else None."""
    from .twin.generate import Twin

    if isinstance(portrait, Twin):
        return portrait
    if isinstance(portrait, (str, Path)) and str(portrait).endswith(".twin"):
        from .device import resolve_device

        return Twin.load(portrait, device=resolve_device(options.render.device), size=options.size or 512)
    return None


_END = object()
_TEXT_IDLE_S = 0.5  # stream(): speak an unfinished sentence after this long without more text


async def stream(
    portrait: str | Path | np.ndarray | Portrait,
    source: AsyncIterable | Iterable,
    *,
    options: StreamOptions = StreamOptions(),
    render: Render | None = None,
    voice=None,
) -> AsyncIterator[StreamChunk]:
    """Stream a talking head: yields StreamChunks (frames with pts, matching audio, optional fMP4)
    while ``source`` delivers speech.

    portrait: a portrait (image path, array, Portrait) - or a twin (a ``.twin`` path or a loaded
        ``facecast.twin.generate.Twin``), which streams through ``facecast.twin.live.TwinStream``
        (same chunks and driver, ``motion`` None; its look-ahead is the mouth model's, 0.28 s at
        25 fps, not ``options.lookahead_s``; mono output audio).

    source: an async iterable (a plain iterable works too) of
        * ``AudioChunk`` -- live PCM, any rate/channels, placed back to back on the timeline;
        * ``str`` -- text pieces; each sentence is synthesised (Piper, in a background thread) as
          soon as it is complete, the rest when the source ends or audio follows;
        * ``None`` or ``INTERRUPT`` -- barge-in: drop what is not yet said, ease the mouth to rest.
    options: StreamOptions (``realtime=True``: paced by the wall clock, idle frames when the source
        is silent; ``encode=True``: fMP4 bytes on the chunks).
    render, voice: see StreamSession.

    The heavy work (analysis, rendering, encoding) runs on a worker thread, synthesis on another,
    so the event loop stays free. The stream ends when the source is exhausted and its last
    frame is out. Errors (bad items, empty text, NaN audio) are raised from the iterator.
    """
    import torch

    options = check_options(options)
    twin = _as_twin(portrait, options)
    if twin is None:
        # One thread per stream, as `say` does: a frame at a time renders several times faster on
        # one thread than on a pool that has to wake up for it (and streams are run side by side).
        torch.set_num_threads(1)
    loop = asyncio.get_running_loop()
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facecast-stream")
    speaker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facecast-voice")

    def call(fn, *args):
        return loop.run_in_executor(worker, fn, *args)

    voice_box: list = [voice]

    def synthesize(sentence: str) -> list[tuple[AudioChunk, tuple[PhoneSpan, ...]]]:
        if voice_box[0] is None:
            from .voice import PiperVoice

            voice_box[0] = PiperVoice()
        return [(v.audio, v.phones) for v in voice_box[0].synthesize(sentence)]

    inbox: asyncio.Queue = asyncio.Queue(maxsize=64)

    async def read() -> None:
        try:
            if hasattr(source, "__aiter__"):
                async for item in source:
                    await inbox.put(item)
            else:
                for item in source:
                    await inbox.put(item)
                    await asyncio.sleep(0)
            await inbox.put(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer
            await inbox.put(exc)

    session = None  # a StreamSession, or a TwinStream for a twin (same methods)
    reader: asyncio.Task | None = None
    getter: asyncio.Task | None = None
    try:
        if twin is not None:  # same driver, the twin's session (its mouth comes from the audio)
            from .twin.live import TwinStream

            session = await call(lambda: TwinStream(twin, fps=options.fps, audio_rate=options.audio_rate,
                                                    encode=options.encode,
                                                    max_lead_s=options.max_lead_s if options.realtime else None))
        else:
            session = await call(lambda: StreamSession(portrait, options, render=render, voice=voice))
        if isinstance(source, (str, AudioChunk)):
            source = [source]
        reader = asyncio.create_task(read())
        splitter = SentenceSplitter()
        ops: deque = deque()  # ("audio", chunk) | ("speech", future) | ("interrupt",) | ("end",)
        source_done = False
        last_text = 0.0  # loop time of the last text piece
        t0 = loop.time()
        frame_dt = 1.0 / options.fps

        def speak(sentences: list[str]) -> None:
            for s in sentences:
                ops.append(("speech", asyncio.wrap_future(speaker.submit(synthesize, s))))

        while True:
            # 1. apply the input that is ready, in order
            while ops:
                op = ops[0]
                if op[0] == "speech":
                    if not op[1].done():
                        break
                    for audio, phones in op[1].result():
                        await call(session.push_speech, audio, phones)
                elif op[0] == "audio":
                    await call(session.push_audio, op[1])
                elif op[0] == "interrupt":
                    await call(session.interrupt)
                elif op[0] == "end":
                    await call(session.end_input)
                ops.popleft()
            # 2. the clock, 3. frames
            if options.realtime:
                await call(session.advance_to, loop.time() - t0 - options.jitter_s)
            chunks = await call(session.poll)
            if session.done:
                # The last frames and the end of the fMP4 leave together.
                tail = await call(session.close)
                if chunks and len(tail) == 1 and tail[0].num_frames == 0:
                    last = chunks[-1]
                    chunks[-1] = StreamChunk(last.video, last.audio, (last.fmp4 or b"") + (tail[0].fmp4 or b""),
                                             last.motion, last.jpeg)
                else:
                    chunks += tail
            for chunk in chunks:
                yield chunk
            if session.done:
                break
            # 4. wait for input, a synthesised sentence, or the next frame time
            waits = set()
            full = options.realtime and session.input_end - (loop.time() - t0) > options.max_buffer_s
            if not source_done and not full:
                if getter is None:
                    getter = asyncio.ensure_future(inbox.get())
                waits.add(getter)
            if ops and ops[0][0] == "speech" and not ops[0][1].done():
                waits.add(ops[0][1])
            timeout = frame_dt if options.realtime else None
            if splitter.pending and _speakable(splitter.pending):
                # An unfinished sentence is spoken once no more text came for a while.
                idle = last_text + _TEXT_IDLE_S - loop.time()
                if idle <= 0:
                    speak(splitter.flush())
                    continue
                timeout = idle if timeout is None else min(timeout, idle)
            if not waits:
                if ops:
                    continue  # ready input left: apply it
                if options.realtime:
                    await asyncio.sleep(frame_dt)  # the clock moves the stream on
                    continue
                break  # input over and applied: close() hands out the rest
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if getter is not None and getter in done:
                item, getter = getter.result(), None
                while True:
                    if item is _END:
                        source_done = True
                        speak(splitter.flush())
                        ops.append(("end",))
                        break
                    if isinstance(item, BaseException):
                        raise item
                    if item is None or item is INTERRUPT or isinstance(item, Interrupt) or item is Interrupt:
                        for op in ops:
                            if op[0] == "speech":
                                op[1].cancel()
                        ops.clear()
                        splitter.clear()
                        ops.append(("interrupt",))
                    elif isinstance(item, str):
                        speak(splitter.feed(_check_text_piece(item)))
                        last_text = loop.time()
                    elif isinstance(item, AudioChunk):
                        _check_audio(item)
                        speak(splitter.flush())
                        ops.append(("audio", item))
                    else:
                        raise TypeError(f"stream source items must be AudioChunk, str, None or INTERRUPT; got "
                                        f"{type(item).__name__}")
                    try:  # take whatever else is already queued without waiting
                        item = inbox.get_nowait()
                    except asyncio.QueueEmpty:
                        break
        if not session._closed:
            for chunk in await call(session.close):
                yield chunk
    finally:
        for task in (getter, reader):
            if task is not None:
                task.cancel()
        if session is not None and not session._closed:
            try:
                await call(session.close)
            except Exception:  # already failing or abandoned: the original error matters
                pass
        worker.shutdown(wait=False)
        speaker.shutdown(wait=False, cancel_futures=True)
