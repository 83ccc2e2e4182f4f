"""The input tape of a portrait session: every input on one timeline, in two sample buffers.

Input of any rate and channel count goes through a pair of resamplers: to 16 kHz mono for the
analysis (VAD, recogniser, loudness) and to the output rate for the audio handed out with the
frames. One ``Run`` is a contiguous stretch of one source at one rate; ``Region``s say which
source each stretch of the timeline came from (live audio, known speech, or filled silence).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..buffer import SampleBuffer
from ..timing import Timings
from ..types import ANALYSIS_RATE, AudioChunk

__all__ = ["InputTape", "Region", "Run", "Source"]


class Source(Enum):
    """Where a stretch of the timeline came from."""

    MIC = "mic"    # live audio: analysed (VAD, recogniser)
    TTS = "tts"    # speech with known phones: not recognised
    FILL = "fill"  # silence: no input arrived (clock, barge-in)


@dataclass
class Region:
    """Analysis samples [start, end) of one source."""

    source: Source
    start: int
    end: int


class Run:
    """One contiguous run of input of one source/rate through the two resamplers."""

    def __init__(self, source: Source, rate: int, channels: int, a_start: int, o_start: int, out_rate: int,
                 out_ch: int):
        from ..audio import Resampler

        self.source, self.rate, self.channels = source, rate, channels
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


class InputTape:
    """16 kHz mono analysis samples (``ana``) and output samples at ``rate`` (``out``), with the
    ``regions`` that tile them and the resampler ``run`` in progress.

    ``processed`` arguments: analysis samples already consumed by the analysis; snapping a run
    to its exact end never cuts into them.
    """

    def __init__(self, rate: int, channels: int, timings: Timings) -> None:
        self.rate, self.channels = rate, channels
        self.timings = timings
        self.ana = SampleBuffer(1)            # 16 kHz mono analysis audio
        self.out = SampleBuffer(channels)     # output audio at `rate`
        self.run: Run | None = None
        self.regions: list[Region] = []       # contiguous, in order

    @property
    def end(self) -> int:
        """Analysis samples on the timeline so far."""
        return self.ana.end

    def arrived(self) -> int:
        """Analysis samples that arrived, including the ~1 ms a resampler still holds back."""
        return self.run.a_end() if self.run is not None else self.ana.end

    def ingest(self, chunk: AudioChunk, source: Source, processed: int) -> None:
        samples = chunk.samples
        if samples.shape[0] > 2:
            samples = samples.mean(axis=0, keepdims=True, dtype=np.float32)
        samples = samples.astype(np.float32, copy=False)
        channels = samples.shape[0]
        run = self.run
        if run is None or (run.source, run.rate, run.channels) != (source, chunk.sample_rate, channels):
            self.end_run(processed)
            run = self.run = Run(source, chunk.sample_rate, channels, self.ana.end, self.out.end, self.rate,
                                 self.channels)
        with self.timings.stage("resample"):
            c = run.chunk(samples)
            a = run.ana.feed(c).samples
            o = run.out.feed(c).samples
        self.append(source, a, o)

    def append(self, source: Source, a: np.ndarray, o: np.ndarray) -> None:
        if o.shape[0] != self.channels:
            o = np.repeat(o, self.channels, axis=0) if o.shape[0] == 1 else o.mean(axis=0, keepdims=True)
        start = self.ana.end
        self.ana.append(a)
        self.out.append(o)
        if self.regions and self.regions[-1].source == source and self.regions[-1].end == start:
            self.regions[-1].end = self.ana.end
        elif self.ana.end > start:
            self.regions.append(Region(source, start, self.ana.end))

    def end_run(self, processed: int) -> None:
        """Flush the resamplers of the current run and snap both buffers to its exact end."""
        run = self.run
        if run is None:
            return
        self.run = None
        with self.timings.stage("resample"):
            a = run.ana.flush().samples
            o = run.out.flush().samples
        self.append(run.source, a, o)
        a_end, o_end = run.a_end(), run.o_end(self.rate)
        if self.ana.end != a_end:
            self.ana.truncate(max(a_end, processed))
            if self.regions:
                self.regions[-1].end = self.ana.end
        if self.out.end != o_end:
            self.out.truncate(o_end)

    def fill(self, target: int, processed: int) -> None:
        """Silence (no input) up to analysis sample ``target``."""
        self.end_run(processed)
        n = target - self.ana.end
        if n <= 0:
            return
        o_target = round(target * self.rate / ANALYSIS_RATE)
        self.append(Source.FILL, np.zeros((1, n), np.float32),
                    np.zeros((self.channels, max(o_target - self.out.end, 0)), np.float32))

    def cut(self, at: int, out_at: int, processed: int) -> None:
        """Barge-in: drop the run in progress and everything from analysis sample ``at`` (output
        sample ``out_at``) on, or fill silence up to there."""
        self.run = None  # whatever the resamplers hold is dropped with the rest
        end = self.ana.end
        if at < end:
            self.ana.truncate(at)
            self.out.truncate(out_at)
            while self.regions and self.regions[-1].start >= at:
                self.regions.pop()
            if self.regions:
                self.regions[-1].end = at
        elif at > end:
            self.fill(at, processed)
        self.out.truncate(out_at)

    def region_at(self, sample: int) -> Source | None:
        for r in reversed(self.regions):
            if r.start <= sample < r.end:
                return r.source
            if r.end <= sample:
                return None
        return None

    def trim(self, keep: int, out_keep: int, regions_before: int) -> None:
        """Forget analysis samples before ``keep``, output samples before ``out_keep``, and the
        regions that end by ``regions_before`` (the last one always stays)."""
        self.ana.trim(keep)
        self.out.trim(out_keep)
        while len(self.regions) > 1 and self.regions[0].end <= regions_before:
            self.regions.pop(0)
