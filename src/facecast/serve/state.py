"""The server's state, one typed object on ``app.state.facecast`` (``get_state(request)``).

    options   ServeOptions (the settings it was started with)
    store     Store: jobs and faces (SQLite + their folders)
    auth      Auth: the tokens (``security.require_auth`` is the dependency that checks them)
    runner    JobRunner: the job queue and its worker processes
    metrics   Metrics: counters behind GET /metrics
    live      LiveSlots: live-session admission (total ``options.live_streams``, per token
              ``options.max_live_per_token``); the live router calls ``try_open``/``close`` and
              ``metrics.frames_late(n)``

Routers reach it with ``state: ServerState = Depends(get_state)``; it works for HTTP requests
and WebSockets alike.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from .jobs import JobRunner
from .options import ServeOptions
from .security import Auth
from .store import Store

__all__ = ["LiveSlots", "Metrics", "ServerState", "get_state"]


class Metrics:
    """Counters the server keeps in memory (the job counts come from the store): live frames
    sent late, live frames sent. Thread-safe; the live router calls ``frames_late(n)`` and
    ``frames_sent(n)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.late = 0
        self.sent = 0
        self.refused = Counter()  # reason -> requests refused with 429/413

    def frames_late(self, n: int = 1) -> None:
        with self._lock:
            self.late += n

    def frames_sent(self, n: int = 1) -> None:
        with self._lock:
            self.sent += n

    def refusal(self, reason: str) -> None:
        with self._lock:
            self.refused[reason] += 1


class LiveSlots:
    """Admission of live sessions: at most ``total`` at once, ``per_token`` per principal.

        if not state.live.try_open(principal.id): ...refuse (429 / close 1013)...
        try: ...session... finally: state.live.close(principal.id)
    """

    def __init__(self, total: int, per_token: int) -> None:
        self.total, self.per_token = total, per_token
        self._lock = threading.Lock()
        self._open: Counter = Counter()

    def try_open(self, owner: str) -> bool:
        with self._lock:
            if sum(self._open.values()) >= self.total or self._open[owner] >= self.per_token:
                return False
            self._open[owner] += 1
            return True

    def close(self, owner: str) -> None:
        with self._lock:
            if self._open[owner] > 0:
                self._open[owner] -= 1

    @property
    def open_sessions(self) -> int:
        with self._lock:
            return sum(self._open.values())


@dataclass
class ServerState:
    """Everything a route needs; made once by ``create_app`` (see the module docstring)."""

    options: ServeOptions
    store: Store
    auth: Auth
    runner: JobRunner
    metrics: Metrics
    live: LiveSlots


def get_state(conn: HTTPConnection) -> ServerState:
    """FastAPI dependency: the ServerState of the app serving this request or WebSocket."""
    return conn.app.state.facecast
