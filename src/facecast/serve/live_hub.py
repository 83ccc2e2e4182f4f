"""The server's side of live avatars: one Engine, the session limits, faces, voices, counters.

A ``LiveHub`` lives as long as the app (created in its lifespan, closed at shutdown). The
multi-stream ``facecast.live.Engine`` inside it starts with the first live session (it spawns
its motion worker and encoder processes: seconds), so a server that never serves live pays
nothing; ``start()`` starts it at once. Everything that blocks (the engine's calls, face
preparation, Piper synthesis) runs on the hub's threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from .live_protocol import CLOSE_BUSY, CLOSE_TOKEN_LIMIT, ProtocolError

__all__ = ["LiveHub", "engine_options"]

log = logging.getLogger(__name__)

_FACE_CACHE = 16  # portraits kept prepared on a CPU engine (a 512 portrait ~1 MB). The Engine keeps every
# twin (its TwinBatch) and, on CUDA, every portrait (its BatchRenderer cannot drop one) it was given,
# so the hub keeps those too: preparing one again would make a second copy there.
OVERLOAD_WINDOW_S = 5.0  # admission looks at the share of late frames sent in this window


def engine_options(size: int, device: str, workers: int | None = None, encoders: int | None = None):
    """EngineOptions for a server: ``workers``/``encoders`` None = sized by the machine (one of
    each on a CPU machine, where the cores are few; on CUDA about a core per three streams'
    motion and one encoder process per four cores, at most 8 and 4)."""
    from ..device import resolve_device
    from ..live.options import EngineOptions

    dev = resolve_device(device)
    cores = os.cpu_count() or 2
    if workers is None:
        workers = 1 if dev.type == "cpu" else max(1, min(8, cores // 3))
    if encoders is None:
        encoders = 1 if dev.type == "cpu" else max(1, min(4, cores // 4))
    return EngineOptions(size=size, device=str(dev), workers=workers, encoders=encoders, frames=False)


class LiveHub:
    """Live sessions of one server (see the module docstring).

    engine_opts: the Engine's (``engine_options``). slots: admission (``state.LiveSlots``:
    ``try_open(owner)``, ``close(owner)``, ``total``, ``per_token``, ``open_sessions``).
    resolve(face_id, owner) -> a path (an uploaded portrait or twin of that owner), raising
    KeyError when there is none and a FacecastError when live cannot use it.
    ``register_face(face_id, prepared)`` adds a prepared Portrait/Twin under an id, for every
    owner (benchmarks on machines without mediapipe). metrics: the server's counters
    (``state.Metrics``: ``frames_sent(n)``, ``frames_late(n)``), fed as frames go out.
    max_late: no new session is admitted while more than this share of the frames sent in the
    last OVERLOAD_WINDOW_S was late (the sessions running already are behind; 1 = never refuse).
    """

    def __init__(self, engine_opts, slots, resolve: Callable[[str, str], Any], metrics=None,
                 max_late: float = 1.0) -> None:
        self.engine_opts = engine_opts
        self.max_late = max_late  # admit no new session while more of the recent frames were late
        self.server_metrics = metrics  # state.Metrics: frames_sent(n), frames_late(n) for /metrics
        self.slots = slots
        self._resolve = resolve
        self._engine = None
        self._engine_lock = threading.Lock()
        self._lock = threading.Lock()
        self._faces: OrderedDict[str, Any] = OrderedDict()
        self._registered: dict[str, Any] = {}
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="facecast-live")
        voices = 1 if engine_opts.device == "cpu" else max(1, min(4, (os.cpu_count() or 2) // 4))
        self.voice_pool = ThreadPoolExecutor(max_workers=voices, thread_name_prefix="facecast-voice")
        self._voices = threading.local()
        self.counters = {"sessions_total": 0, "sessions_refused": 0, "frames_sent": 0, "frames_late": 0,
                         "first_frame_ms_sum": 0.0, "first_frame_count": 0, "errors": 0, "engine_restarts": 0}
        self._closed = False
        self._recent: deque = deque()  # (time, frames sent, frames late) of the last OVERLOAD_WINDOW_S

    # -- engine -----------------------------------------------------------------------------

    @property
    def engine(self):
        """The Engine, started on first use (blocking: call from a hub thread)."""
        with self._engine_lock:
            if self._closed:
                raise RuntimeError("the server is shutting down")
            if self._engine is not None and self._engine.failure is not None:
                # A process of the engine died: its sessions got the error; new ones get a new engine.
                log.error("live engine failed (%s); starting a new one", self._engine.failure)
                broken, self._engine = self._engine, None
                broken.close()
                self.count("engine_restarts")
            if self._engine is None:
                from ..live.engine import Engine

                self._engine = Engine(self.engine_opts)
                # Load the voice now, not on the first sentence (loading it stalls the streams).
                self.voice_pool.submit(self.synthesize, "Hello.")
            return self._engine

    async def call(self, fn, *args):
        """Run a blocking call on the hub's threads."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def start(self) -> None:
        """Start the engine and load the voice now (otherwise the first session does)."""
        _ = self.engine

    def close(self) -> None:
        with self._engine_lock:
            self._closed = True
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.voice_pool.shutdown(wait=False, cancel_futures=True)

    # -- limits -----------------------------------------------------------------------------

    def acquire(self, owner: str) -> None:
        """Admit a new session of ``owner`` or raise ProtocolError (live off, busy, token limit,
        or overloaded: the running sessions are behind real time)."""
        slots = self.slots
        if slots.total <= 0:
            self._refused("live_sessions")
            raise ProtocolError("live_off", "live sessions are off on this server (--live-streams 0)", CLOSE_BUSY)
        if not slots.try_open(owner):
            self._refused("live_sessions")
            if slots.open_sessions >= slots.total:
                raise ProtocolError("busy", f"the server runs its {slots.total} live sessions (--live-streams); "
                                            "try again later", CLOSE_BUSY)
            raise ProtocolError("token_limit", f"this token already holds {slots.per_token} live session(s) "
                                               "(--max-live-per-token); end one first", CLOSE_TOKEN_LIMIT)
        late = self.recent_late_fraction()
        if slots.open_sessions > 1 and late > self.max_late:
            slots.close(owner)
            self._refused("live_overloaded")
            raise ProtocolError("overloaded", f"the live sessions running now are behind real time ({late:.0%} of "
                                              f"their frames late in the last {OVERLOAD_WINDOW_S:.0f} s); try again "
                                              "later", CLOSE_BUSY)
        self.count("sessions_total")

    def _refused(self, reason: str) -> None:
        self.count("sessions_refused")
        if self.server_metrics is not None:
            self.server_metrics.refusal(reason)

    def release(self, owner: str) -> None:
        self.slots.close(owner)

    def count(self, name: str, value: float = 1) -> None:
        with self._lock:
            self.counters[name] += value

    def frames(self, sent: int, late: int) -> None:
        """A session sent ``sent`` frames, ``late`` of them late (counters, /metrics, admission)."""
        now = time.monotonic()
        with self._lock:
            self.counters["frames_sent"] += sent
            self.counters["frames_late"] += late
            self._recent.append((now, sent, late))
            while self._recent and self._recent[0][0] < now - OVERLOAD_WINDOW_S:
                self._recent.popleft()
        if self.server_metrics is not None:
            self.server_metrics.frames_sent(sent)
            if late:
                self.server_metrics.frames_late(late)

    def recent_late_fraction(self) -> float:
        """Share of the frames sent in the last OVERLOAD_WINDOW_S that were late (0 when none)."""
        now = time.monotonic()
        with self._lock:
            rows = [r for r in self._recent if r[0] >= now - OVERLOAD_WINDOW_S]
        sent = sum(r[1] for r in rows)
        return sum(r[2] for r in rows) / sent if sent else 0.0

    def metrics(self) -> dict:
        """The live counters (for /metrics)."""
        with self._lock:
            out = dict(self.counters)
        out["sessions_active"] = self.slots.open_sessions
        out["sessions_limit"] = self.slots.total
        out["engine_running"] = int(self._engine is not None)
        return out

    # -- faces and voices ---------------------------------------------------------------------

    def register_face(self, face_id: str, prepared) -> None:
        """A prepared Portrait (or loaded Twin) usable as ``face_id``."""
        self._registered[face_id] = prepared

    def prepare(self, face_id: str, owner: str):
        """The face ``face_id`` of ``owner`` as the engine renders it (cached; the owner is checked
        every time). ProtocolError: unknown face, or one live sessions cannot use (blocking:
        call from a hub thread)."""
        from ..errors import FacecastError

        if face_id in self._registered:
            return self._registered[face_id]
        try:
            path = self._resolve(face_id, owner)
        except KeyError:
            raise ProtocolError("unknown_face", f"no face {face_id!r} on this server: upload one with POST /v1/faces "
                                                "and use its id (GET /v1/faces lists them)") from None
        except FacecastError as exc:  # the store's own words (e.g. a video face)
            raise ProtocolError("bad_face", f"face {face_id!r}: {exc}") from None
        with self._lock:
            if face_id in self._faces:
                self._faces.move_to_end(face_id)
                return self._faces[face_id]
        try:
            prepared = self.engine.prepare(path)
        except FacecastError as exc:
            raise ProtocolError("bad_face", f"face {face_id!r}: {exc}") from None
        except ValueError as exc:  # e.g. a twin larger than the live size
            raise ProtocolError("bad_face", f"face {face_id!r}: {exc}") from None
        with self._lock:
            self._faces[face_id] = prepared
            if self.engine_opts.device == "cpu":
                from ..types import Portrait

                portraits = [k for k, v in self._faces.items() if isinstance(v, Portrait)]
                for k in portraits[:max(0, len(portraits) - _FACE_CACHE)]:
                    del self._faces[k]
        return prepared

    def synthesize(self, sentence: str) -> list:
        """VoicedSentences of one sentence by the bundled Piper voice (blocking: call on
        ``voice_pool``; each of its threads has its own voice)."""
        voice = getattr(self._voices, "voice", None)
        if voice is None:
            from ..voice import PiperVoice

            voice = self._voices.voice = PiperVoice()
        return list(voice.synthesize(sentence))
