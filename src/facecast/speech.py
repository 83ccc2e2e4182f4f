"""align + analyse: what the mouth listens to in each segment (a Speech on the frame grid).

    phones      pocketsphinx: forced alignment with a transcript, or recognised phones plus a
                recognised-word timeline; TTS segments already know theirs
    loudness    per-frame RMS on a fixed dBFS scale, under a slow automatic gain (LoudnessGain)
    voicing     silero-VAD speech/silence per frame

prefetch_alignment runs phone recognition of upcoming segments in worker processes.
first_speech finds where an audio file's speech starts (a streaming pre-scan that stops there),
so a job without any speech is refused before anything is rendered.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from . import analysis as analysis_mod
from .options import SayOptions
from .segments import Segment, audio_segments, frames_between
from .timing import Timings
from .types import ANALYSIS_RATE, AudioChunk, PhoneSpan, Speech

SILENCE_PEAK = 1e-3
"""Without a speech detector (a twin's job), audio needs a sample above this peak level (full
scale 1) somewhere: below it the audio is digital silence."""

TRANSCRIPT_MAX_S = 60.0  # forced alignment runs over the whole clip (memory grows ~2 MB/s); longer clips use recognition


@dataclass
class SpeechModels:
    """The loaded speech models of a job (the phone/word aligner, the speech detector), to reuse
    across jobs: a batch worker keeps one set warm (``models=`` of say / dub). One thread at a
    time: neither model is thread-safe. Loading costs ~0.2 s, the word decoder ~0.5 s more on
    its first use."""

    aligner: object
    vad: analysis_mod.VoiceActivity

    @classmethod
    def load(cls) -> "SpeechModels":
        from .align import Aligner

        return cls(Aligner(), analysis_mod.VoiceActivity())


class SpeechAnalyser:
    """align + analyse: a segment's phones (aligned, recognised, or known from TTS), per-frame
    loudness and speech/silence, as a Speech. Models load once per job, or come warm from
    ``models`` (their stream state is reset here, so a job's result does not depend on what
    ran before)."""

    def __init__(self, options: SayOptions, transcript: str | None, need_aligner: bool,
                 models: SpeechModels | None = None):
        self.options = options
        self.transcript = transcript
        self.aligner = None
        self.vad = None
        if need_aligner:
            models = models if models is not None else SpeechModels.load()
            self.aligner = models.aligner
            self.vad = models.vad
            self.vad.reset()
        self.gain = LoudnessGain()

    def speech(self, seg: Segment, timings: Timings, phones_future=None) -> Speech:
        """Phones (aligned here, or taken from ``phones_future`` computed by a worker process),
        loudness and speech/silence for one segment."""
        fps = self.options.fps
        with timings.stage("analyse"):
            energy = analysis_mod.loudness_envelope(seg.analysis, ANALYSIS_RATE, fps, seg.num_frames, seg.first_frame,
                                                 samples_start=seg.start)
        alt: tuple[PhoneSpan, ...] = ()
        if seg.phones is not None:
            phones = seg.phones
            voiced = np.zeros(seg.num_frames, bool)
            for p in phones:
                if p.phone != "SIL":
                    a, n = frames_between(p.start, p.end, fps)
                    voiced[max(a - seg.first_frame, 0):max(a - seg.first_frame + n, 0)] = True
        else:
            with timings.stage("align"):
                if phones_future is not None:
                    phones, alt = phones_future.result()
                else:
                    phones, alt = segment_phones(self.aligner, seg.analysis, seg.start, self.transcript,
                                          self.options.word_timeline)
            with timings.stage("analyse"):
                voiced = self.vad.voiced_frames(seg.analysis, fps, seg.num_frames, seg.first_frame)
        energy = self.gain(energy, voiced)
        with timings.stage("analyse"):
            pitch = analysis_mod.pitch_track(seg.analysis, ANALYSIS_RATE, fps, seg.num_frames, seg.first_frame,
                                             samples_start=seg.start)
        return Speech(tuple(phones), energy, voiced, fps, seg.first_frame, alt, pitch)


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


def segment_phones(aligner, samples: np.ndarray, start: float, transcript: str | None, words: bool = True
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
    return segment_phones(_worker_aligner(), samples, start, transcript, words)


@functools.lru_cache(maxsize=1)
def _worker_aligner():
    """One Aligner per worker process, loaded on first use."""
    from .align import Aligner

    return Aligner()


def prefetch_alignment(segments: Iterator[Segment], transcript: str | None, workers: int, words: bool = True):
    """(segment, future of its phones | None) in order. With workers > 0, phone recognition of the
    next 2*workers segments runs in a process pool while the current one renders (pocketsphinx
    holds the GIL, so threads would not help); the look-ahead bounds memory."""
    if workers <= 0:
        for seg in segments:
            yield seg, None
        return
    import collections

    from .workers import process_pool

    window: collections.deque = collections.deque()
    with _POOLS_LOCK:  # jobs in threads (a batch) share one pool per size
        pool = _POOLS.get(workers)
        if pool is None:  # kept for the life of the process: spawning and loading models costs ~1 s
            pool = _POOLS[workers] = process_pool(workers)  # its workers die with this process
    for seg in segments:
        window.append((seg, pool.submit(_align_in_worker, seg.analysis, seg.start, transcript, words)))
        if len(window) > 2 * workers:
            yield window.popleft()
    while window:
        yield window.popleft()


_POOLS: dict = {}
_POOLS_LOCK = threading.Lock()



def analyse_audio(audio: str | Path, options: SayOptions = SayOptions()) -> Iterator[Speech]:
    """The per-segment Speech (phone timelines, loudness, speech/silence) that `say` animates for
    ``audio``, segment by segment, without rendering: what the motion model sees, for studying
    it against real mouths. Raises InputError for unreadable audio."""
    analyser = SpeechAnalyser(options, None, need_aligner=True)
    timings = Timings()
    for seg in audio_segments(audio, options.fps, options.segment_max_s, options.first_segment_s):
        yield analyser.speech(seg, timings)


def first_speech(audio: str | Path, vad: analysis_mod.VoiceActivity | None) -> float | None:
    """Seconds into ``audio`` of its first speech, or None when it has none: the first window
    silero-VAD (``vad``) scores as speech as the job's own analysis would, or, without ``vad``,
    the first sample above digital silence (``SILENCE_PEAK``). Streams the file at the analysis
    rate and stops at the first speech: a few milliseconds for a file that starts talking at
    once, a pass of the speech detector alone (no alignment, no rendering) for a silent one;
    memory stays at about one chunk."""
    from . import audio as audio_mod

    resampler = audio_mod.Resampler(ANALYSIS_RATE, mono=True)

    def pieces() -> Iterator[np.ndarray]:
        for chunk in audio_mod.open_audio(audio):
            yield resampler.feed(chunk).samples[0]
        yield resampler.flush().samples[0]

    if vad is not None:
        return vad.first_speech(pieces())
    done = 0
    for x in pieces():
        loud = np.flatnonzero(np.abs(x) > SILENCE_PEAK)
        if loud.size:
            return (done + int(loud[0])) / ANALYSIS_RATE
        done += x.shape[0]
    return None
