"""speak + segment: the job's speech as segments of audio that own whole frames.

    text_segments    text -> Piper sentences (audio + exact phones), one segment each
    audio_segments   audio file -> segments of <= segment_max_s, cut at the quietest 100 ms and
                     snapped to frame boundaries (memory stays flat whatever the input length)

Frame i is shown at i / fps seconds; a segment [start, end) owns the frames with
start <= i / fps < end, so segments tile the frame grid exactly and the video lasts
ceil(duration * fps) frames: equal to the audio within one frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from . import audio as audio_mod
from .types import ANALYSIS_RATE, AudioChunk, PhoneSpan


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


def frames_between(start: float, end: float, fps: float) -> tuple[int, int]:
    """(first frame, frame count) of the frames shown in [start, end) seconds: frame i is shown
    at i / fps."""
    a = math.ceil(start * fps - 1e-9)
    b = math.ceil(end * fps - 1e-9)
    return a, max(b - a, 0)


def text_segments(text: str, fps: float, voice=None) -> Iterator[Segment]:
    """Synthesise ``text`` sentence by sentence; each sentence is a segment with exact phones."""
    from .text import check_text
    from .voice import default_voice

    text = check_text(text)
    voice = voice or default_voice()
    resampler = audio_mod.Resampler(ANALYSIS_RATE, mono=True)
    for sentence in voice.synthesize(text):
        a = sentence.audio
        analysis = resampler.feed(a).samples[0]
        f0, n = frames_between(a.start, a.end, fps)
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
            n = quiet_cut(data[:limit], ANALYSIS_RATE, fps, start_sample)
        start = start_sample / ANALYSIS_RATE
        end = (start_sample + n) / ANALYSIS_RATE
        f0, nf = frames_between(start, end, fps)
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


def quiet_cut(x: np.ndarray, rate: int, fps: float, start_sample: int) -> int:
    """Sample count (from the start of x) at which to cut: the quietest 100 ms window centre in
    the second half of x, moved to the nearest frame boundary on the global grid."""
    win = rate // 10
    half = x.shape[0] // 2
    e = np.convolve(x[half:].astype(np.float64) ** 2, np.ones(win), "valid")
    c = half + int(np.argmin(e)) + win // 2
    frame = math.floor((start_sample + c) * fps / rate)  # floor: never past the end of x
    return max(int(round(frame * rate / fps)) - start_sample, 1)
