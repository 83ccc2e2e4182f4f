"""Warm workers: what a batch keeps loaded from one job to the next.

    Portraits (shared by every worker of a process, thread-safe): framed portraits by file, size
        and face index (finding and framing the face: mediapipe, ~0.1-0.3 s a job). A tiny
        interface (``get(path, options) -> Portrait``): benchmarks on the GPU machine (no
        mediapipe) hand in portraits framed elsewhere.
    Worker (one per thread or Ray actor, one job at a time):
        speech models  the aligner (its word decoder ~0.5 s to load) and the speech detector
                       (``speech.SpeechModels``; not thread-safe, hence one set per worker)
        renderers      a portrait's renderer per render options (on CUDA its CUDA graphs)
        twins          loaded .twin files
    Process-wide already: the bundled Piper voice (``voice.default_voice``) and the phone
    recognition worker pool (``speech.prefetch_alignment``).

Every cache is keyed by the file's identity (resolved path, size, modification time), so a file
changed between jobs is read again, and holds at most a few entries (memory stays bounded over a
batch of many faces). Nothing a job computes from its own speech is kept: a warm job's output is
the same file a cold `say` / `dub` writes (tests/test_batch_jobs.py checks it byte for byte).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from pathlib import Path
from typing import Callable, Protocol

from ..options import SayOptions
from ..types import Portrait
from .events import DONE, FAILED, JobResult, one_line, output_duration
from .kinds import KINDS
from .spec import Job

__all__ = ["Portraits", "PortraitCache", "Worker", "Cancelled", "file_key"]


class Cancelled(KeyboardInterrupt):
    """The batch is stopping (Ctrl-C, SIGTERM, a cancelled Ray task): raised inside a running job
    at its next progress step, so its writer removes the partial output."""

CACHE_ENTRIES = 8
"""Most entries each cache holds (least recently used dropped first)."""


def file_key(path: str | Path) -> tuple:
    """A file's identity for caching: resolved path, size, modification time (ns)."""
    p = Path(path).resolve()
    st = p.stat()
    return (str(p), st.st_size, st.st_mtime_ns)


class _Lru:
    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._d: collections.OrderedDict = collections.OrderedDict()
        self.entries = entries

    def get(self, key):
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        return None

    def put(self, key, value) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.entries:
            self._d.popitem(last=False)


class Portraits(Protocol):
    def get(self, path: Path, options: SayOptions) -> Portrait:
        ...


class PortraitCache:
    """Framed portraits by (file, size, face index), shared by threads (``sources.prepare_portrait``
    on a miss; two threads missing the same key at once both prepare it, one result is kept)."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._lru = _Lru(entries)
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, path: Path, options: SayOptions) -> Portrait:
        from ..sources import prepare_portrait

        key = (file_key(path), options.size, options.face_index)
        with self._lock:
            found = self._lru.get(key)
            self.hits += found is not None
        if found is not None:
            return found
        portrait = prepare_portrait(path, options)
        with self._lock:
            self.misses += 1
            self._lru.put(key, portrait)
        return portrait


class Worker:
    """One job at a time, with its models kept warm between jobs (see the module docstring).

    name: shown in progress ("thread 1", "ray pid 4242").  portraits: the shared Portraits.
    """

    def __init__(self, name: str, portraits: Portraits | None = None) -> None:
        self.name = name
        self.pid = os.getpid()
        self.portraits = portraits if portraits is not None else PortraitCache()
        self._speech = None
        self._renderers = _Lru()
        self._twins = _Lru()

    def run(self, job: Job, device: str, progress: Callable[[float, float | None], None]) -> JobResult:
        """Run one job here (on ``device`` unless its line names one): a JobResult whatever
        happens (a failure as its one-line reason), except an interrupt (KeyboardInterrupt and
        its kinds, Cancelled), which propagates."""
        kind = KINDS[job.kind]
        t0 = time.perf_counter()
        try:
            kind.run(kind.with_device(job.request, device), job.output, self, progress)
        except Exception as exc:  # one job's failure, whatever it is, never stops the batch
            return JobResult(job, FAILED, one_line(exc), time.perf_counter() - t0, worker=self.name)
        return JobResult(job, DONE, "", time.perf_counter() - t0, output_duration(job.output), worker=self.name)

    def speech_models(self):
        """The worker's SpeechModels, loaded on first use."""
        if self._speech is None:
            from ..speech import SpeechModels

            self._speech = SpeechModels.load()
        return self._speech

    def face_source(self, face: Path, options: SayOptions):
        """A FaceSource for a job: a twin (told by content, as `say` does) from the loaded twins,
        or a portrait from the shared cache with this worker's renderer for it; the motion
        model is always new (it is seeded per job)."""
        from ..sources import PortraitSource, TwinSource, is_twin_input, load_twin_input, make_renderer

        if is_twin_input(face):
            key = (file_key(face), options.render.device, options.size)
            twin = self._twins.get(key)
            if twin is None:
                twin = load_twin_input(face, options.render.device, options.size)
                self._twins.put(key, twin)
            return TwinSource(twin, options.fps, name=str(face))
        portrait = self.portraits.get(face, options)
        key = (id(portrait), options.render)
        entry = self._renderers.get(key)
        if entry is None or entry[0] is not portrait:
            entry = (portrait, make_renderer(portrait, options))
            self._renderers.put(key, entry)
        return PortraitSource(portrait, options, renderer=entry[1])
