"""The orchestrator: `say` reads as a list of passes over a stream of segments.

    prepare     portrait -> face landmarks -> framed Portrait -> Renderer
    speak       text -> Voice sentences (audio + exact phones)   |  audio file -> 1 s chunks
    segment     cut the audio into segments of <= segment_max_s at its quietest points, on frame
                boundaries (memory stays flat whatever the input length)
    align       phones for each segment (pocketsphinx; TTS already knows them)
    analyse     per-frame loudness and speech/silence (silero-VAD) on the frame grid
    animate     MotionModel: phones + loudness -> MotionFrames
    render      Renderer: MotionFrames -> VideoFrames (batched)
    encode      H.264 + AAC, on a second thread so rendering and encoding overlap

Frame i is shown at i / fps seconds; a segment [start, end) owns the frames with
start <= i / fps < end, so segments tile the frame grid exactly and the video lasts
ceil(duration * fps) frames: equal to the audio within one frame.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import audio as audio_mod
from .errors import InputError
from .motion import MotionModel
from .options import SayOptions
from .timing import Timings
from .types import ANALYSIS_RATE, AudioChunk, PhoneSpan, Portrait, Speech, VideoFrames

log = logging.getLogger(__name__)

TRANSCRIPT_MAX_S = 60.0  # forced alignment runs over the whole clip (memory grows ~2 MB/s); longer clips use recognition

Progress = Callable[[float, float | None], None]  # (seconds of audio done, total seconds or None)


@dataclass(frozen=True)
class Segment:
    """A stretch of the job's audio and the frames it owns.

    analysis: float32 [n] mono at ANALYSIS_RATE starting at ``start`` seconds.
    output_audio: the original-quality chunks covering it (for the output track).
    phones: known phones (TTS) or None (to be aligned).
    """

    start: float
    end: float
    first_frame: int
    num_frames: int
    analysis: np.ndarray
    output_audio: tuple[AudioChunk, ...]
    phones: tuple[PhoneSpan, ...] | None = None


@dataclass(frozen=True)
class SayChunk:
    """One step of the output stream: frames, the audio that plays with them, and the speech
    analysis that drove them (phones as aligned/recognised, loudness, speech/silence)."""

    video: VideoFrames
    audio: tuple[AudioChunk, ...]
    segment: Segment
    speech: Speech | None = None


def _frames_between(start: float, end: float, fps: float) -> tuple[int, int]:
    a = math.ceil(start * fps - 1e-9)
    b = math.ceil(end * fps - 1e-9)
    return a, max(b - a, 0)


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------

def prepare_portrait(portrait: str | Path | np.ndarray | Portrait, options: SayOptions) -> Portrait:
    """Image path / array -> framed Portrait (landmarks in output pixels)."""
    if isinstance(portrait, Portrait):
        return portrait
    from . import face

    image = face.load_image(portrait)
    source = str(portrait) if not isinstance(portrait, np.ndarray) else "<array>"
    landmarks = face.find_face(image, source=source, face_index=options.face_index)
    return face.frame_portrait(image, landmarks, size=options.size, source=source)


def make_renderer(portrait: Portrait, options: SayOptions):
    """MeshRenderer; on CUDA the same warp replayed from CUDA graphs (render.GraphedRenderer),
    which frees the host (and the GIL) for the encoders."""
    from .device import resolve_device
    from .render import MeshRenderer

    ro = options.render
    if resolve_device(ro.device).type == "cuda" and ro.mouth_interior and ro.backend in ("auto", "torch"):
        from .render import GraphedRenderer

        return GraphedRenderer(portrait, ro)
    return MeshRenderer(portrait, ro)


# --------------------------------------------------------------------------------------------
# speak + segment
# --------------------------------------------------------------------------------------------

def text_segments(text: str, fps: float, voice=None) -> Iterator[Segment]:
    """Synthesise ``text`` sentence by sentence; each sentence is a segment with exact phones."""
    from .voice import check_text, default_voice

    text = check_text(text)
    voice = voice or default_voice()
    resampler = audio_mod.Resampler(ANALYSIS_RATE, mono=True)
    for sentence in voice.synthesize(text):
        a = sentence.audio
        analysis = resampler.feed(a).samples[0]
        f0, n = _frames_between(a.start, a.end, fps)
        yield Segment(a.start, a.end, f0, n, analysis, (a,), sentence.phones)


def audio_segments(path: str | Path, fps: float, segment_max_s: float, first_segment_s: float | None = None) -> Iterator[Segment]:
    """Stream an audio file as segments of at most ``segment_max_s`` (the first one at most
    ``first_segment_s``, so the first frames leave early), cut at the quietest 100 ms in the
    second half of each window and snapped to a frame boundary."""
    source = audio_mod.open_audio(path)
    resampler = audio_mod.Resampler(ANALYSIS_RATE, mono=True)
    buf: list[np.ndarray] = []
    buf_len = 0
    start_sample = 0  # analysis-rate sample index of buf[0]
    pending: list[AudioChunk] = []
    max_n = int(segment_max_s * ANALYSIS_RATE)
    limit = int(min(first_segment_s or segment_max_s, segment_max_s) * ANALYSIS_RATE)

    def cut(data: np.ndarray, final: bool) -> tuple[Segment, np.ndarray]:
        nonlocal start_sample, pending
        if final:
            n = data.shape[0]
        else:
            n = _quiet_cut(data[:limit], ANALYSIS_RATE, fps, start_sample)
        start = start_sample / ANALYSIS_RATE
        end = (start_sample + n) / ANALYSIS_RATE
        f0, nf = _frames_between(start, end, fps)
        # Output audio: chunks that start before the cut go with this segment.
        mine = [c for c in pending if c.start < end or final]
        pending = [c for c in pending if not (c.start < end or final)]
        seg = Segment(start, end, f0, nf, data[:n].copy(), tuple(mine))
        start_sample += n
        return seg, data[n:]

    for chunk in source:
        pending.append(chunk)
        part = resampler.feed(chunk).samples[0]
        buf.append(part)
        buf_len += part.shape[0]
        if buf_len >= limit:
            data = np.concatenate(buf)
            seg, rest = cut(data, final=False)
            buf, buf_len = [rest], rest.shape[0]
            limit = max_n
            yield seg
    buf.append(resampler.flush().samples[0])
    data = np.concatenate(buf)
    if data.shape[0] or pending:
        seg, _ = cut(data, final=True)
        yield seg


def _quiet_cut(x: np.ndarray, rate: int, fps: float, start_sample: int) -> int:
    """Sample count (from the start of x) at which to cut: the quietest 100 ms window centre in
    the second half of x, moved to the nearest frame boundary on the global grid."""
    win = rate // 10
    half = x.shape[0] // 2
    e = np.convolve(x[half:].astype(np.float64) ** 2, np.ones(win), "valid")
    c = half + int(np.argmin(e)) + win // 2
    frame = math.floor((start_sample + c) * fps / rate)  # floor: never past the end of x
    return max(int(round(frame * rate / fps)) - start_sample, 1)


# --------------------------------------------------------------------------------------------
# align + analyse + animate + render
# --------------------------------------------------------------------------------------------

class _Stages:
    """The per-job stage objects (loaded once, used for every segment)."""

    def __init__(self, options: SayOptions, transcript: str | None, need_aligner: bool):
        self.options = options
        self.transcript = transcript
        self.motion = MotionModel(options.motion)
        self.aligner = None
        self.vad = None
        if need_aligner:
            from .align import Aligner

            self.aligner = Aligner()
            self.vad = audio_mod.VoiceActivity()
        self.any_speech = False
        self.gain = LoudnessGain()

    def speech(self, seg: Segment, timings: Timings, phones_future=None) -> Speech:
        """Phones (aligned here, or taken from ``phones_future`` computed by a worker process),
        loudness and speech/silence for one segment."""
        fps = self.options.fps
        with timings.stage("analyse"):
            energy = audio_mod.loudness_envelope(seg.analysis, ANALYSIS_RATE, fps, seg.num_frames, seg.first_frame,
                                                 samples_start=seg.start)
        alt: tuple[PhoneSpan, ...] = ()
        if seg.phones is not None:
            phones = seg.phones
            voiced = np.zeros(seg.num_frames, bool)
            for p in phones:
                if p.phone != "SIL":
                    a, n = _frames_between(p.start, p.end, fps)
                    voiced[max(a - seg.first_frame, 0):max(a - seg.first_frame + n, 0)] = True
        else:
            with timings.stage("align"):
                if phones_future is not None:
                    phones, alt = phones_future.result()
                else:
                    phones, alt = _phones(self.aligner, seg.analysis, seg.start, self.transcript,
                                          self.options.word_timeline)
            with timings.stage("analyse"):
                voiced = self.vad.voiced_frames(seg.analysis, fps, seg.num_frames, seg.first_frame)
        self.any_speech |= bool(voiced.any())
        energy = self.gain(energy, voiced)
        return Speech(tuple(phones), energy, voiced, fps, seg.first_frame, alt)


class LoudnessGain:
    """Slow automatic gain on the per-frame loudness (0..1, a fixed dBFS mapping).

    Recordings differ by ~17 dB in level (a quiet lecture vs a compressed clip), and the jaw
    should open as wide for loud speech in either. The reference is the 90th percentile of voiced
    frames over the last ``memory_frames`` (30 s at 25 fps), so it adapts within a few seconds
    and memory stays bounded; loud speech maps to ~0.9.
    """

    def __init__(self, memory_frames: int = 750, target: float = 0.9, floor: float = 0.5):
        self._hist = np.zeros(0, np.float32)
        self.memory_frames, self.target, self.floor = memory_frames, target, floor
        self._ref: float | None = None  # the percentile of the current history, once computed

    def __call__(self, energy: np.ndarray, voiced: np.ndarray) -> np.ndarray:
        added = energy[voiced]
        if added.size:
            self._hist = np.concatenate([self._hist, added])[-self.memory_frames:]
            self._ref = None
        if self._hist.size < 5:
            return energy
        if self._ref is None:  # live streams call this twice per frame, once with nothing new
            self._ref = max(float(np.percentile(self._hist, 90)), self.floor)
        return np.clip(energy + (self.target - self._ref) * (energy > 0), 0.0, 1.0).astype(np.float32)


def analyse_audio(audio: str | Path, options: SayOptions = SayOptions()) -> Iterator[Speech]:
    """The per-segment Speech (phone timelines, loudness, speech/silence) that `say` animates for
    ``audio``, segment by segment, without rendering: what the motion model sees, for studying
    it against real mouths (scripts/lipsync_lab.py). Raises InputError for unreadable audio."""
    stages = _Stages(options, None, need_aligner=True)
    timings = Timings()
    for seg in audio_segments(audio, options.fps, options.segment_max_s, options.first_segment_s):
        yield stages.speech(seg, timings)


def say_chunks(
    portrait: str | Path | np.ndarray | Portrait,
    *,
    text: str | None = None,
    audio: str | Path | None = None,
    transcript: str | None = None,
    options: SayOptions = SayOptions(),
    progress: Progress | None = None,
    timings: Timings | None = None,
) -> Iterator[SayChunk]:
    """The `say` job as a stream of SayChunks (frames + matching audio), in order.

    Exactly one of ``text`` / ``audio``. Memory is bounded by one segment whatever the input
    length. Raises InputError (no face, unreadable audio, empty text, silent audio ...).
    """
    if (text is None) == (audio is None):
        raise InputError("say: give either text or audio (exactly one). Use --text \"...\" or --audio FILE.")
    timings = timings if timings is not None else Timings()
    torch.set_num_threads(1)  # one core renders while the other encodes (see encode thread)
    with timings.stage("face"):
        prepared = prepare_portrait(portrait, options)
        for note in prepared.notes:
            log.warning("%s: %s", prepared.source, note)
    with timings.stage("setup"):
        renderer = make_renderer(prepared, options)

    fps = options.fps
    if text is not None:
        segments = timings.timed_iter("voice", text_segments(text, fps))
        total = None
    else:
        seg_max = options.segment_max_s
        source_info = audio_mod.open_audio(audio)
        total = source_info.duration
        if transcript is not None:
            if transcript.strip() == "":
                raise InputError("--transcript: the transcript is empty. Give the words spoken, or leave it out.")
            if total is not None and total > TRANSCRIPT_MAX_S:
                log.warning("%s: transcript alignment is limited to %.0f s of audio; this clip is %.0f s, so "
                            "phones are recognised instead", audio, TRANSCRIPT_MAX_S, total)
                transcript = None
            else:
                seg_max = TRANSCRIPT_MAX_S + 1.0
        first = None if transcript is not None else options.first_segment_s
        if options.workers > 0 and transcript is None:
            seg_max = min(seg_max, 4.0)  # more, shorter segments keep every worker busy
        segments = timings.timed_iter("decode", audio_segments(audio, fps, seg_max, first))
    with timings.stage("setup"):
        stages = _Stages(options, transcript, need_aligner=text is None)

    for seg, phones_future in _prefetch_alignment(segments, transcript, options.workers if text is None else 0,
                                                  options.word_timeline):
        speech = stages.speech(seg, timings, phones_future)   # align + analyse
        with timings.stage("motion"):
            motion = stages.motion.frames(speech)  # animate
        with timings.stage("render"):
            video = renderer.render(motion)        # render
        yield SayChunk(video, seg.output_audio, seg, speech)
        if progress:
            progress(seg.end, total)
    if not stages.any_speech:
        src = audio if audio is not None else "--text"
        raise InputError(f"{src}: no speech found (the audio is silent or only noise). Give a recording with speech.")


_worker_aligner = None


def _phones(aligner, samples: np.ndarray, start: float, transcript: str | None, words: bool = True
            ) -> tuple[tuple[PhoneSpan, ...], tuple[PhoneSpan, ...]]:
    """(phones, alternative phones) of a segment. With a transcript: its forced alignment and no
    alternative. Without: recognised phones, and (``words``) recognised words force-aligned as
    the alternative (Speech.alt_phones; the mouth is the mean of both)."""
    chunk = AudioChunk(samples[None, :], ANALYSIS_RATE, start)
    phones = tuple(aligner.align(chunk, transcript))
    alt = () if transcript or not words else tuple(aligner.align_words(chunk))
    return phones, alt


def _align_in_worker(samples: np.ndarray, start: float, transcript: str | None, words: bool
                     ) -> tuple[tuple[PhoneSpan, ...], tuple[PhoneSpan, ...]]:
    global _worker_aligner  # one Aligner per worker process, loaded on first use
    if _worker_aligner is None:
        from .align import Aligner

        _worker_aligner = Aligner()
    return _phones(_worker_aligner, samples, start, transcript, words)


def _prefetch_alignment(segments: Iterator[Segment], transcript: str | None, workers: int, words: bool = True):
    """(segment, future of its phones | None) in order. With workers > 0, phone recognition of the
    next 2*workers segments runs in a process pool while the current one renders (pocketsphinx
    holds the GIL, so threads would not help); the look-ahead bounds memory."""
    if workers <= 0:
        for seg in segments:
            yield seg, None
        return
    import collections
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp

    window: collections.deque = collections.deque()
    pool = _POOLS.get(workers)
    if pool is None:  # kept for the life of the process: spawning and loading models costs ~1 s
        pool = _POOLS[workers] = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
    for seg in segments:
        window.append((seg, pool.submit(_align_in_worker, seg.analysis, seg.start, transcript, words)))
        if len(window) > 2 * workers:
            yield window.popleft()
    while window:
        yield window.popleft()


_POOLS: dict = {}


def say(
    portrait: str | Path | np.ndarray | Portrait,
    output: str | Path,
    *,
    text: str | None = None,
    audio: str | Path | None = None,
    transcript: str | None = None,
    options: SayOptions = SayOptions(),
    progress: Progress | None = None,
    timings: Timings | None = None,
) -> Path:
    """Render a talking-head MP4 (H.264 + AAC) from a portrait and text or audio; returns the
    output path. Nothing is left at ``output`` unless the whole job succeeds."""
    from .encode import check_output_path

    output = check_output_path(output)
    timings = timings if timings is not None else Timings()
    chunks = say_chunks(portrait, text=text, audio=audio, transcript=transcript, options=options, progress=progress,
                        timings=timings)
    first = next(chunks, None)
    if first is None:
        raise InputError("say: nothing to render (the input has no duration).")
    H, W = first.video.frames.shape[1:3]
    ref = first.audio[0] if first.audio else AudioChunk(np.zeros((1, 0), np.float32), 22050)
    with _ThreadedWriter(output, options, W, H, ref.sample_rate, ref.channels, timings) as writer:
        writer.put(first)
        for chunk in chunks:
            writer.put(chunk)
    return output


class _ThreadedWriter:
    """Encodes SayChunks on a background thread (libx264 and the renderer then use both cores).
    A bounded queue keeps memory flat; any error on either side aborts the output file."""

    def __init__(self, path: Path, options: SayOptions, width: int, height: int, rate: int, channels: int,
                 timings: Timings):
        from .encode import Mp4Writer

        enc = options.encode
        self._writer = Mp4Writer(path, fps=options.fps, width=width, height=height, audio_rate=rate,
                                 audio_channels=channels, crf=enc.crf, preset=enc.preset, codec=enc.codec,
                                 workers=enc.workers, segment_frames=max(1, round(enc.segment_s * options.fps)))
        self._q: queue.Queue = queue.Queue(maxsize=2)
        self._timings = timings
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="facecast-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (item := self._q.get()) is not None:
                t = time.perf_counter()
                # CUDA frames stay on the GPU: the writer converts them to yuv420p there and
                # copies half the bytes (encode.to_i420).
                self._writer.write_video(item.video)
                for a in item.audio:
                    self._writer.write_audio(a)
                # Runs on the encode thread, concurrently with rendering: its time overlaps.
                self._timings.add("encode (overlapped)", time.perf_counter() - t)
        except BaseException as exc:  # re-raised on the main thread in close()
            self._error = exc
            while self._q.get() is not None:  # drain so the producer never blocks
                pass

    def put(self, chunk: SayChunk) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(chunk)

    def __enter__(self) -> "_ThreadedWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._q.put(None)
        self._thread.join()
        if exc is None and self._error is None:
            self._writer.close()
            return
        self._writer.abort()
        if exc is None:
            raise self._error
