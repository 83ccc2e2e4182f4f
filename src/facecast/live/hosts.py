"""Where an Engine's sessions run: a worker process, or the engine's own process.

A ``SessionHost`` holds sessions whose renderer only *captures* what it is asked to render (the
frame parameters: motion for a portrait, mouth shapes for a twin). Every command (add, feed,
advance the clock, remove) is applied at once, and the frames that became due leave as
``WorkItem``s for the engine's batched renderer. The same host runs in a worker process
(``worker_main``: commands and replies through queues) or in the engine's process (commands
applied in the caller's thread).
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..options import StreamOptions
from ..types import AudioChunk, MotionFrames, Portrait, VideoFrames
from .messages import InputMessage

__all__ = ["AddSession", "Added", "AdvanceTo", "Capture", "Ended", "Failed", "Feed", "HostFailed", "RemoveSession",
           "Replies", "SessionHost", "WorkItem", "worker_main"]


@dataclass(frozen=True)
class WorkItem:
    """Frames first_frame ... + n of ``stream`` that are due: their parameters (motion [n, P] for
    a portrait, mouth [n, 53, 2] for a twin) and exactly their output audio."""

    stream: int
    first_frame: int
    fps: float
    params: np.ndarray
    audio: AudioChunk

    @property
    def num_frames(self) -> int:
        return int(self.params.shape[0])


# Commands: engine -> host.
@dataclass(frozen=True)
class AddSession:
    stream: int
    face: Any  # a Portrait, or a Twin (in the engine's process only)
    options: StreamOptions
    voice: Any = None


@dataclass(frozen=True)
class Feed:
    stream: int
    message: InputMessage


@dataclass(frozen=True)
class AdvanceTo:
    stream: int
    t: float


@dataclass(frozen=True)
class RemoveSession:
    stream: int


# Replies: host -> engine.
@dataclass(frozen=True)
class Added:
    stream: int
    lookahead_s: float


@dataclass(frozen=True)
class Ended:
    """Every frame of ``stream`` has left as WorkItems."""

    stream: int


@dataclass(frozen=True)
class Failed:
    """``stream``'s session raised ``error`` (it is gone)."""

    stream: int
    error: BaseException


@dataclass(frozen=True)
class Replies:
    """A worker's replies to one batch of commands, with its CPU seconds so far."""

    host: int
    replies: tuple
    cpu_s: float
    stopped: bool = False


@dataclass(frozen=True)
class HostFailed:
    """A worker process failed outside any session (traceback text)."""

    host: int
    text: str


class Capture:
    """A render callable that renders nothing: it keeps what it was asked to render for the
    engine's batched renderer, and returns frames without pixels ([n, 0, 0, 3])."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.params: list[np.ndarray] = []

    def motion(self, motion: MotionFrames) -> VideoFrames:
        self.params.append(motion.params)
        return self._blank(motion.num_frames, motion.first_frame)

    def mouth(self, mouth: np.ndarray, first_frame: int) -> VideoFrames:
        self.params.append(np.asarray(mouth, np.float32))
        return self._blank(len(mouth), first_frame)

    def _blank(self, n: int, first_frame: int) -> VideoFrames:
        return VideoFrames(torch.zeros((n, 0, 0, 3), dtype=torch.uint8), self.fps, first_frame)


class SessionHost:
    """Sessions of one host; ``handle(command) -> replies`` (Added / WorkItem / Ended / Failed)."""

    def __init__(self) -> None:
        self._sessions: dict[int, Any] = {}
        self._captures: dict[int, Capture] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def handle(self, cmd) -> list:
        sid = cmd.stream
        try:
            if isinstance(cmd, AddSession):
                return [self._add(cmd)]
            if isinstance(cmd, RemoveSession):
                self._drop(sid)
                return []
            session = self._sessions.get(sid)
            if session is None:
                return []  # removed (or failed) meanwhile
            if isinstance(cmd, Feed):
                session.feed(cmd.message)
            elif isinstance(cmd, AdvanceTo):
                session.advance_to(cmd.t)
            else:
                raise TypeError(f"unknown host command {type(cmd).__name__}")
            return self._poll(sid)
        except Exception as exc:
            self._drop(sid)
            return [Failed(sid, exc)]

    def _add(self, cmd: AddSession) -> Added:
        from .session import StreamSession
        from .twin_session import TwinSession

        cap = Capture(float(cmd.options.fps))
        if isinstance(cmd.face, Portrait):
            session = StreamSession(cmd.face, cmd.options, render=cap.motion, voice=cmd.voice)
        else:
            session = TwinSession.from_options(cmd.face, cmd.options, render=cap.mouth, voice=cmd.voice)
        self._sessions[cmd.stream] = session
        self._captures[cmd.stream] = cap
        return Added(cmd.stream, float(session.lookahead_s))

    def _poll(self, sid: int) -> list:
        session, cap = self._sessions[sid], self._captures[sid]
        chunks = session.poll()
        done = session.done
        if done:
            chunks += session.close()
        if len(chunks) != len(cap.params):
            raise RuntimeError(f"stream {sid}: {len(chunks)} chunks for {len(cap.params)} captured renders")
        out: list = [WorkItem(sid, c.first_frame, session.fps, p, c.audio) for c, p in zip(chunks, cap.params)]
        cap.params.clear()
        if done:
            self._drop(sid)
            out.append(Ended(sid))
        return out

    def _drop(self, sid: int) -> None:
        self._sessions.pop(sid, None)
        self._captures.pop(sid, None)


def worker_main(index: int, cmd_q, out_q) -> None:
    """A motion worker process: apply every queued command, reply once per batch of them. A
    failure outside the sessions is sent as HostFailed: the engine raises it instead of waiting
    for a worker that is gone."""
    try:
        torch.set_num_threads(1)
        host = SessionHost()
        out_q.put(Replies(index, (), time.process_time()))
        while True:
            cmds = [cmd_q.get()]
            while True:  # take whatever else is queued without waiting
                try:
                    cmds.append(cmd_q.get_nowait())
                except queue.Empty:
                    break
            replies: list = []
            stop = False
            for cmd in cmds:
                if cmd is None:
                    stop = True
                    break
                replies += host.handle(cmd)
            out_q.put(Replies(index, tuple(replies), time.process_time(), stopped=stop))
            if stop:
                return
    except BaseException:
        import traceback

        out_q.put(HostFailed(index, traceback.format_exc()))
        raise
