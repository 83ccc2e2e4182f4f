"""A live avatar for frame-based voice frameworks: speech in, one RGB frame with its audio out per
video frame, on a wall clock.

Voice-agent frameworks (pipecat, LiveKit agents ...) move media as *frames*: a picture at a time,
a few milliseconds of PCM at a time. ``AvatarStream`` turns a facecast live session
(``live.open_session``: a portrait's ``StreamSession`` or a twin's ``TwinSession``, echo mode) into
that shape, so each framework's adapter is only glue (``integrations.pipecat``).

    stream = AvatarStream(prepare_face("me.jpg", options), options, audio_rate=24000)
    stream.put(pcm_to_chunk(pcm, 24000, 1))   # the bot's voice (from any thread), applied by tick
    frames = stream.tick(t)                   # t: seconds since the start; frames that became ready
    stream.interrupt(epoch=1)                 # barge-in: drop speech not yet turned into frames
    stream.close()

Input is queued (``put``, thread-safe) and applied by ``tick`` before it moves the clock, so speech
that arrives while a frame is being drawn is never taken for a pause. A ``Mark`` queued between
pieces of speech learns where on the timeline the speech before it ends (a framework holds its
own control frames until the video gets there).

Clock. Frame ``i`` covers [i/fps, (i+1)/fps) of the stream's timeline and carries exactly that
span of audio. ``tick(t)`` says "the clock is at t": input that has not arrived by
``t - jitter_s`` is silence (idle frames: blinks, head drift, closed mouth), and frame ``i`` is
ready from ``ready_at(i)`` (its look-ahead of audio is in). A driver shows frame ``i`` at
``due_at(i) = ready_at(i) + margin_s``; speech fed at wall time w starts on the frame due about
``lookahead + jitter_s + margin_s`` after w.

Not thread-safe: drive one stream from one thread (the session renders on the caller's thread).
"""

from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import OptionError
from ..options import Range, RenderOptions, SayOptions, StreamOptions, check_ranges
from ..types import AudioChunk, Portrait, VideoFrames

__all__ = ["AvatarFrame", "AvatarOptions", "AvatarStream", "EngineStream", "Mark", "check_engine", "pcm_to_chunk",
           "prepare_face"]

# Idle frame i needs its look-ahead of filled silence; tick a hair later than the exact instant
# so that float rounding never leaves it one tick behind (s).
_TICK_SLACK_S = 0.002


def _check_device(value: object) -> None:
    ok = isinstance(value, str) and (value in ("cpu", "cuda", "auto")
                                     or (value.startswith("cuda:") and value[5:].isdigit()))
    if not ok:
        raise OptionError("AvatarOptions.device", value, 'one of "cpu", "cuda", "cuda:N", "auto"')


@dataclass(frozen=True)
class AvatarOptions:
    """One avatar in a voice framework (checked on construction: ``OptionError`` naming the field).

    size: frame width = height in pixels, an even whole number 64 ... 2048, for a portrait given
        as a file or an array (framed at this size); a twin is loaded with its longer side at it;
        a prepared ``Portrait`` keeps its own size.
    fps: frames per second, 1 ... 60 (match the transport's ``video_out_framerate``).
    device: where frames are drawn: "cpu", "cuda", "cuda:N" or "auto".
    face_index: which face of a group photo, 0 ... 99 (None: the largest).
    lookahead_s: s, 0 ... 0.2: a portrait's frame waits for this much audio after it (the mouth
        anticipates the next sound); the video, and the audio passed on with it, lag the bot's
        voice by this much (a twin uses its own mouth model's look-ahead instead).
    jitter_s: s, 0 ... 1: speech may arrive this late before the gap is taken as silence.
    margin_s: s, 0 ... 1: time a frame has to be drawn between being ready and being due.
    audio_rate: Hz of the audio passed on (an AAC rate); None = the pipeline's output rate, or
        48000 when that is not an AAC rate (the transport resamples).
    idle_audio: also pass on silence with the idle frames (audio and video then leave in step
        all the time); False: idle frames go out without audio.
    """

    size: int = 512
    fps: float = 25.0
    device: str = "cpu"
    face_index: int | None = None
    lookahead_s: float = 0.12
    jitter_s: float = 0.02
    margin_s: float = 0.04
    audio_rate: int | None = None
    idle_audio: bool = True

    RANGES: ClassVar[dict] = {
        "size": Range(64, 2048, "pixels", integer=True, step=2),
        "fps": Range(1, 60, "frames per second"),
        "face_index": Range(0, 99, integer=True, optional=True),
        "lookahead_s": Range(0, 0.2, "s"),
        "jitter_s": Range(0, 1, "s"),
        "margin_s": Range(0, 1, "s"),
        "audio_rate": Range(8000, 96000, "Hz", integer=True, optional=True),
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        _check_device(self.device)
        from ..media import AAC_SAMPLE_RATES

        if self.audio_rate is not None and self.audio_rate not in AAC_SAMPLE_RATES:
            raise OptionError("AvatarOptions.audio_rate", self.audio_rate,
                              "an AAC sample rate (" + ", ".join(map(str, AAC_SAMPLE_RATES)) + " Hz)", none_ok=True)
        if not isinstance(self.idle_audio, bool):
            raise OptionError("AvatarOptions.idle_audio", self.idle_audio, "True or False")

    def stream_options(self, audio_rate: int) -> StreamOptions:
        """The live session's options: paced by the clock with no lead (frames are drawn when
        their time comes, so a barge-in changes everything not yet due), no fMP4."""
        return StreamOptions(size=self.size, fps=self.fps, face_index=self.face_index, lookahead_s=self.lookahead_s,
                             realtime=True, max_lead_s=0.0, jitter_s=self.jitter_s, audio_rate=audio_rate,
                             audio_channels=1, render=RenderOptions(device=self.device))


def prepare_face(face, options: AvatarOptions = AvatarOptions()):
    """The face ready to animate: a ``Twin`` for a twin (a loaded one, or a file whose content is a
    twin, loaded on ``options.device`` at ``options.size``), else a ``Portrait`` framed at
    ``options.size`` (an image path or an RGB array; a prepared Portrait as it is).

    Raises InputError naming the file for a missing, unreadable or non-image file, NoFaceError
    when no usable face is found, TypeError for anything else. Takes ~0.2-1 s (face detection or
    loading the twin): call it once and share the result between sessions.
    """
    from ..sources import is_twin_input, load_twin_input, prepare_portrait

    if not isinstance(options, AvatarOptions):
        raise TypeError(f"options must be an AvatarOptions, got {type(options).__name__}")
    if isinstance(face, Portrait):
        return face
    if is_twin_input(face):
        return load_twin_input(face, options.device, options.size)
    if not isinstance(face, (str, os.PathLike, np.ndarray)):
        raise TypeError(f"face must be an image path, an RGB array, a Portrait, a .twin path or a Twin, "
                        f"got {type(face).__name__}")
    return prepare_portrait(face, SayOptions(size=options.size, face_index=options.face_index))


@dataclass(frozen=True)
class AvatarFrame:
    """One video frame and its audio.

    index: the frame's number; it covers [index / fps, (index + 1) / fps) of the timeline.
    image: RGB24 bytes, ``height`` rows of ``width * 3``.
    audio: int16 little-endian PCM of exactly the frame's span, ``channels`` interleaved.
    speech: the span holds speech that was fed (False: silence between utterances).
    """

    index: int
    image: bytes
    width: int
    height: int
    audio: bytes
    channels: int
    speech: bool


def pcm_to_chunk(pcm: bytes, sample_rate: int, channels: int) -> AudioChunk:
    """int16 interleaved PCM -> float AudioChunk [channels, n]; ValueError when it is not that."""
    if not isinstance(pcm, (bytes, bytearray, memoryview)):
        raise TypeError(f"pcm must be bytes, got {type(pcm).__name__}")
    if channels not in (1, 2):
        raise ValueError(f"audio with {channels} channels: give mono or stereo 16-bit PCM")
    if len(pcm) % (2 * channels):
        raise ValueError(f"{len(pcm)} bytes of PCM are not whole 16-bit samples of {channels} channel(s)")
    samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).T.astype(np.float32) / 32768.0
    return AudioChunk(np.ascontiguousarray(samples), int(sample_rate))


class Mark:
    """A place in the queued input: ``position`` (timeline s where the speech queued before it
    ends) is set when ``tick`` reaches it; ``dropped`` when an interruption discarded it first."""

    __slots__ = ("dropped", "position")

    def __init__(self) -> None:
        self.position: float | None = None
        self.dropped = False


def check_engine(engine, size: int) -> None:
    """TypeError / ValueError unless ``engine`` is a live.Engine that hands out RGB frames of
    ``size`` pixels (what an avatar needs)."""
    from ..live.options import EngineOptions

    eo = getattr(engine, "options", None)
    if not isinstance(eo, EngineOptions):
        raise TypeError(f"engine must be a facecast.live.Engine, got {type(engine).__name__}")
    if not eo.frames:
        raise ValueError("EngineOptions.frames is False: the avatar needs the pixels; build the Engine with frames=True")
    if eo.i420 or (eo.i420 is None and eo.device != "cpu"):
        raise ValueError("the avatar needs RGB frames from the Engine: build it with EngineOptions(i420=False)")
    if size != eo.size:
        raise ValueError(f"AvatarOptions.size {size} differs from the Engine's EngineOptions.size {eo.size}: "
                         "use the same size")


class EngineStream:
    """One stream of a shared ``live.Engine`` as the session an AvatarStream drives: many avatars
    then share the engine's batched renderer (one GPU) and motion worker processes. The session
    itself runs in the engine, so its timeline is kept here: input appended back to back, silence
    up to the clock, and a barge-in cut at the first frame not yet due (nothing is drawn ahead of
    the clock: ``max_lead_s`` is 0)."""

    def __init__(self, engine, face, options: StreamOptions) -> None:
        check_engine(engine, options.size)
        self.engine = engine
        self.fps = float(options.fps)
        self.sid = engine.add(face, options)
        self.lookahead_s = engine.lookahead_s(self.sid)
        self._end = 0.0     # input on the timeline (s)
        self._clock = 0.0
        self.closed = False

    @property
    def input_end(self) -> float:
        return self._end

    def push_audio(self, chunk: AudioChunk) -> None:
        from ..live.messages import AudioIn

        self.engine.feed(self.sid, AudioIn(chunk))
        self._end += chunk.duration

    def advance_to(self, t: float) -> None:
        self.engine.advance_to(self.sid, t)
        self._clock = max(self._clock, t)
        self._end = max(self._end, self._clock)

    def interrupt(self) -> None:
        from ..live.messages import Interrupt

        self.engine.feed(self.sid, Interrupt())
        self._end = math.ceil(self._clock * self.fps - 1e-9) / self.fps

    def poll(self) -> list:
        return self.engine.read(self.sid)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.engine.remove(self.sid)


class AvatarStream:
    """A live session as frames for a voice framework (see the module docstring).

    face: what ``prepare_face`` returns (or anything ``live.open_session`` takes).
    audio_rate: Hz of the audio handed out with the frames (an AAC rate).
    engine: a ``live.Engine`` to run in (shared by many avatars: batched rendering, e.g. on one
        GPU; ``EngineOptions(size=options.size, i420=False)``); None: a session of its own,
        drawn on the calling thread.
    """

    def __init__(self, face, options: AvatarOptions, audio_rate: int, *, engine=None) -> None:
        from ..live import open_session

        if not isinstance(options, AvatarOptions):
            raise TypeError(f"options must be an AvatarOptions, got {type(options).__name__}")
        self.options = options
        if engine is None:
            self.session = open_session(face, options.stream_options(audio_rate))
        else:
            self.session = EngineStream(engine, face, options.stream_options(audio_rate))
        self.fps = float(options.fps)
        self.audio_rate = int(audio_rate)
        self.lookahead_s = float(self.session.lookahead_s)
        self._speech: list[list[float]] = []  # [start, end] s of fed speech on the timeline
        self._inbox: deque = deque()  # (epoch, AudioChunk | Mark) queued by put(), applied by tick()
        self._epoch = 0               # interruptions applied so far
        self.frames_made = 0

    # -- timing --------------------------------------------------------------------------------

    def ready_at(self, index: int) -> float:
        """Clock time (s) from which frame ``index`` can be made in silence."""
        return index / self.fps + self.lookahead_s + self.options.jitter_s + _TICK_SLACK_S

    def due_at(self, index: int) -> float:
        """Clock time (s) at which frame ``index`` should be shown."""
        return self.ready_at(index) + self.options.margin_s

    @property
    def speech_end(self) -> float:
        """Where the speech fed so far ends on the timeline (s); 0 before any."""
        return self._speech[-1][1] if self._speech else 0.0

    # -- input ---------------------------------------------------------------------------------

    def feed(self, audio: AudioChunk) -> float:
        """Append speech (any rate and channels) where the timeline has got to; returns
        ``speech_end``."""
        start = self.session.input_end
        self.session.push_audio(audio)
        end = start + audio.duration
        if self._speech and start <= self._speech[-1][1] + 0.01:
            self._speech[-1][1] = max(self._speech[-1][1], start) + audio.duration
        elif audio.duration > 0:
            self._speech.append([start, end])
        return self.speech_end

    def feed_pcm(self, pcm: bytes, sample_rate: int, channels: int) -> float:
        """``feed`` for int16 interleaved PCM (what voice frameworks pass around)."""
        return self.feed(pcm_to_chunk(pcm, sample_rate, channels))

    def put(self, item: AudioChunk | Mark, epoch: int = 0) -> None:
        """Queue speech or a Mark from any thread; ``tick`` applies the queue, in order, before
        it moves the clock. ``epoch``: the number of interruptions the caller had seen when it
        queued the item; items of an older epoch than the stream's are dropped (they came before
        an interruption), those of a newer one wait for ``interrupt(epoch)``."""
        if not isinstance(item, (AudioChunk, Mark)):
            raise TypeError(f"put: expected an AudioChunk or a Mark, got {type(item).__name__}")
        self._inbox.append((epoch, item))

    @property
    def queued(self) -> bool:
        """Input is queued that ``tick`` has not applied yet."""
        return bool(self._inbox)

    def _apply_queue(self) -> None:
        while self._inbox:
            epoch, item = self._inbox[0]
            if epoch > self._epoch:
                break  # after an interruption that is not applied yet
            self._inbox.popleft()
            if isinstance(item, Mark):
                item.dropped = epoch < self._epoch
                item.position = None if item.dropped else self.speech_end
            elif epoch == self._epoch:
                self.feed(item)

    def interrupt(self, epoch: int | None = None) -> int:
        """Barge-in: drop the speech not yet turned into frames (fed or queued before this
        interruption); the face eases to rest. ``epoch``: the caller's count of interruptions
        including this one (default: one more). Returns the first frame made from the new input:
        frames before it were made from the old input (a driver that has not shown them yet
        should mute them)."""
        self._epoch = self._epoch + 1 if epoch is None else max(self._epoch, int(epoch))
        self.session.interrupt()
        cut = self.session.input_end
        while self._speech and self._speech[-1][0] >= cut:
            self._speech.pop()
        if self._speech:
            self._speech[-1][1] = min(self._speech[-1][1], cut)
        self._apply_queue()  # drops what was queued before the interruption, applies what came after
        return int(round(cut * self.fps))

    # -- output --------------------------------------------------------------------------------

    def tick(self, t: float) -> list[AvatarFrame]:
        """The clock is at ``t`` s: the frames that became ready, in order."""
        if not math.isfinite(t):
            raise ValueError(f"tick: t must be finite, got {t}")
        self._apply_queue()
        self.session.advance_to(t - self.options.jitter_s)
        out: list[AvatarFrame] = []
        for chunk in self.session.poll():
            out += self._frames(chunk)
        return out

    def close(self) -> None:
        """End the session (what it had not shown yet is dropped)."""
        if not self.session.closed:
            self.session.close()

    def _is_speech(self, t0: float, t1: float) -> bool:
        for s0, s1 in reversed(self._speech):
            if s1 <= t0:
                return False
            if s0 < t1 and min(s1, t1) - max(s0, t0) > 1e-3:
                return True
        return False

    def _frames(self, chunk) -> list[AvatarFrame]:
        if not isinstance(chunk.video, VideoFrames):
            raise ValueError("the avatar needs RGB frames, got yuv420p: build the Engine with EngineOptions(i420=False)")
        video = chunk.video.frames
        if video.is_cuda:
            video = video.cpu()
        video = video.contiguous().numpy()
        n, h, w = video.shape[:3]
        samples = chunk.audio.samples
        channels = samples.shape[0]
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").T  # [m, channels]
        R, fps = self.audio_rate, self.fps
        base = round(chunk.first_frame * R / fps)
        frames = []
        for k in range(n):
            f = chunk.first_frame + k
            a0, a1 = round(f * R / fps) - base, round((f + 1) * R / fps) - base
            frames.append(AvatarFrame(f, video[k].tobytes(), w, h, pcm[a0:a1].tobytes(), channels,
                                      self._is_speech(f / fps, (f + 1) / fps)))
        self.frames_made = chunk.first_frame + n
        # Speech that every later frame lies after is forgotten (memory stays flat).
        while len(self._speech) > 1 and self._speech[0][1] < self.frames_made / fps - 1.0:
            self._speech.pop(0)
        return frames
