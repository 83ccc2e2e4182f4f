"""Wall-clock seconds per stage, accumulated over a job."""

from __future__ import annotations

import time
from typing import Callable


class Timings:
    """Wall-clock seconds spent per stage (voice, decode, align, analyse, motion, render,
    encode), accumulated over a job; read by `facecast bench`. On CUDA the render stage is
    timed by the bench with device events instead (wall time there would only see launches)."""

    def __init__(self, on_stage: Callable[[str], None] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.on_stage = on_stage
        """Called with a stage's name each time it starts (a CLI shows what a job is doing)."""

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def stage(self, name: str):
        return StageClock(self, name)

    def timed_iter(self, name: str, it):
        """Yield from ``it``, charging the time spent producing each item to ``name``."""
        it = iter(it)
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.add(name, time.perf_counter() - t)
                return
            self.add(name, time.perf_counter() - t)
            yield item


class StageClock:
    def __init__(self, timings: Timings, name: str):
        self.timings, self.name = timings, name

    def __enter__(self):
        if self.timings.on_stage is not None:
            self.timings.on_stage(self.name)
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.timings.add(self.name, time.perf_counter() - self.t)
