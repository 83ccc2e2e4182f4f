"""The device side of an Engine: due frames of all streams in, batched launches, chunks out.

One thread owns the device. It gathers the WorkItems the session hosts produce (on CUDA for
``tick_s`` after the first, since a launch costs about the same for 1 frame or 100), renders each
renderer's share in one launch (live.batching), and hands the frames to a dispatcher thread
that waits for their copy to the host and passes them to the stream's encoder (live.encoders)
or straight to its outbox. At most ``max_inflight`` launches wait for the encoders: without that
bound an overloaded encoder pool let the queue of frame buffers grow without bound (a 60-minute
run at 8x with too few encoders: RSS 3.3 -> 10 GiB); with it the backlog waits upstream as
motion parameters.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ..types import MOTION_PARAMS, AudioChunk, I420Frames, MotionFrames, VideoFrames
from .batching import TwinBatch
from .encoders import SLOT_FRAMES, Encoded, EncoderPool
from .hosts import Ended, WorkItem
from .messages import StreamChunk
from .options import EngineOptions

__all__ = ["Scheduler", "StreamState"]

_STOP = object()  # the inbox: stop after what is queued


@dataclass
class StreamState:
    """The engine's side of one session: how to render and encode it, and its outbox."""

    stream: int
    fps: float
    fmp4: bool
    renderer: Any                  # PortraitBatch | TwinBatch | VideoBatch
    host: int                      # worker index, or -1: the engine's process
    audio_rate: int
    channels: int
    lookahead_s: float = 0.0
    outbox: collections.deque = field(default_factory=collections.deque)
    waiting: collections.deque = field(default_factory=collections.deque)  # chunks waiting for their fMP4 bytes
    frames_out: int = 0
    frame_shape: tuple = (0, 0, 3)  # of the frames in its chunks
    finished: bool = False         # every chunk is in the outbox
    error: BaseException | None = None


class Scheduler:
    """Streams' outboxes and the render loop (see the module docstring). ``pool``: the encoders
    (None: no fMP4), set before the first stream that asks for it."""

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.pool: EncoderPool | None = None
        self.streams: dict[int, StreamState] = {}
        self.cond = threading.Condition()
        self.failure: BaseException | None = None
        self.cuda = False
        self._unread = 0
        self._inbox: queue.Queue = queue.Queue()
        self._tally = {"launches": 0, "frames": 0, "host_ms": 0.0, "gpu_ms": 0.0, "gpu_n": 0}
        self._events: collections.deque = collections.deque()  # CUDA events of launches in flight
        self._inflight = threading.BoundedSemaphore(options.max_inflight)
        self._dispatcher = ThreadPoolExecutor(1, thread_name_prefix="facecast-dispatch")
        self._thread = threading.Thread(target=self._run, name="facecast-scheduler", daemon=True)
        self._thread.start()

    # -- streams ----------------------------------------------------------------------------

    def register(self, state: StreamState) -> None:
        with self.cond:
            self.streams[state.stream] = state
        self.cuda = self.cuda or state.renderer.cuda

    def forget(self, stream: int) -> StreamState | None:
        with self.cond:
            state = self.streams.pop(stream, None)
            if state is not None:
                self._unread -= len(state.outbox)
        return state

    def state(self, stream: int) -> StreamState:
        state = self.streams.get(stream)
        if state is None:
            raise KeyError(f"no stream {stream} in this engine (removed, or never added)")
        return state

    def read(self, stream: int) -> list[StreamChunk]:
        with self.cond:
            state = self._usable(stream)
            chunks = list(state.outbox)
            state.outbox.clear()
            self._unread -= len(chunks)
            return chunks

    def done(self, stream: int) -> bool:
        with self.cond:
            state = self._usable(stream)
            return state.finished and not state.outbox

    def _usable(self, stream: int) -> StreamState:
        """The stream's state; raises its session's error, or the engine's."""
        if self.failure is not None:
            raise self.failure
        state = self.state(stream)
        if state.error is not None:
            raise state.error
        return state

    def wait(self, timeout: float | None) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self._unread > 0 or self.failure is not None, timeout)

    def fail(self, exc: BaseException, stream: int | None = None) -> None:
        """A stream's session failed (its next read raises), or with no stream: everything did."""
        with self.cond:
            if stream is None:
                self.failure = exc
            elif stream in self.streams:
                self.streams[stream].error = exc
            self.cond.notify_all()

    # -- input from the hosts ---------------------------------------------------------------------

    def put(self, item: WorkItem | Ended) -> None:
        self._inbox.put(item)

    def stop(self, wait: bool = True) -> None:
        """Render and dispatch what is queued, then stop (``wait=False``: drop it)."""
        self._inbox.put(_STOP)
        if wait:
            self._thread.join()
        self._dispatcher.shutdown(wait=wait, cancel_futures=not wait)
        if self.cuda and wait:
            torch.cuda.synchronize()
            self._time_events(wait=True)

    def stats(self) -> dict:
        t = self._tally
        out = {"device": torch.cuda.get_device_name() if self.cuda else "cpu",
               "launches": t["launches"], "frames_rendered": t["frames"],
               "frames_per_launch_mean": t["frames"] / t["launches"] if t["launches"] else 0.0,
               "launch_host_ms_mean": t["host_ms"] / t["launches"] if t["launches"] else None}
        if self.cuda:
            out["gpu_render_ms_mean"] = t["gpu_ms"] / t["gpu_n"] if t["gpu_n"] else None
            out["gpu_render_s"] = t["gpu_ms"] / 1000
            out["peak_vram_gib"] = torch.cuda.max_memory_allocated() / 2**30
        return out

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            msgs = [self._inbox.get()]
            deadline = time.monotonic() + (self.options.tick_s if self.cuda else 0.0)
            while True:
                left = deadline - time.monotonic()
                try:
                    msgs.append(self._inbox.get(timeout=left) if left > 0 else self._inbox.get_nowait())
                except queue.Empty:
                    break
            groups: dict[int, tuple[Any, list]] = {}
            ends = []
            for m in msgs:
                state = None if m is _STOP else self.streams.get(m.stream)
                if state is None:
                    continue  # removed (or the stop mark)
                if isinstance(m, Ended):
                    ends.append(m.stream)
                else:
                    groups.setdefault(id(state.renderer), (state.renderer, []))[1].append(m)
            try:
                for renderer, items in groups.values():
                    for part in _split(items, self.options.max_batch):
                        self._launch(renderer, part)
                for sid in ends:  # after the stream's last frames
                    self._dispatcher.submit(self._end, sid)
            except Exception as exc:  # the device failed: every stream is stuck
                self.fail(exc)
            if any(m is _STOP for m in msgs):
                return

    def _launch(self, renderer, items: list[WorkItem]) -> None:
        """One batched render of ``items``; frames go out when they reach the host (the wait
        happens on the dispatcher thread, never in this loop)."""
        from ..render import PinnedFetcher

        if renderer.cuda:
            ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            ev0.record()
        t = time.perf_counter()
        frames = renderer.render(items)
        self._tally["host_ms"] += (time.perf_counter() - t) * 1000
        self._tally["launches"] += 1
        self._tally["frames"] += sum(it.num_frames for it in items)
        if renderer.cuda:
            ev1.record()
            self._events.append((ev0, ev1))
            self._time_events(wait=False)
        fetched = PinnedFetcher(frames)
        self._inflight.acquire()
        self._dispatcher.submit(self._dispatch, fetched, items, renderer.i420)

    def _time_events(self, wait: bool) -> None:
        """Sum the render times of the launches whose events completed (all of them: ``wait``)."""
        while self._events and (wait or self._events[0][1].query()):
            a, b = self._events.popleft()
            self._tally["gpu_ms"] += a.elapsed_time(b)
            self._tally["gpu_n"] += 1

    # -- the dispatcher thread --------------------------------------------------------------------

    def _dispatch(self, fetched, items: list[WorkItem], i420: bool) -> None:
        try:
            host = fetched.wait()
            i = 0
            for it in items:
                k = it.num_frames
                frames, i = host[i:i + k], i + k
                state = self.streams.get(it.stream)
                if state is None:
                    continue
                step = SLOT_FRAMES if state.fmp4 else k  # an encoder slot holds SLOT_FRAMES frames
                rate = it.audio.sample_rate
                s0 = _sample(it.first_frame, rate, it.fps)
                for a in range(0, k, step):
                    b = min(k, a + step)
                    f0 = it.first_frame + a
                    x0 = _sample(f0, rate, it.fps) - s0
                    x1 = _sample(it.first_frame + b, rate, it.fps) - s0 if b < k else it.audio.num_samples
                    audio = AudioChunk(it.audio.samples[:, x0:x1], rate, f0 / it.fps)
                    self._deliver(state, f0, frames[a:b], it.params[a:b], audio, i420)
        except Exception as exc:
            self.fail(exc)
        finally:
            self._inflight.release()

    def _deliver(self, state: StreamState, first: int, frames: torch.Tensor, params: np.ndarray,
                 audio: AudioChunk, i420: bool) -> None:
        n = frames.shape[0]
        if not self.options.frames:
            video = VideoFrames(torch.zeros((n, 0, 0, 3), dtype=torch.uint8), state.fps, first)
        else:
            video = (I420Frames if i420 else VideoFrames)(frames, state.fps, first)
        motion = MotionFrames(params, state.fps, first) if params.ndim == 2 else None  # a twin's: mouths
        chunk = StreamChunk(video, audio, None, motion)
        state.frames_out, state.frame_shape = first + n, tuple(_video_shape(video)[1:])
        if state.fmp4:
            with self.cond:
                state.waiting.append(chunk)
            self.pool.send(state.stream, first, frames.numpy(), i420, audio.samples, audio.sample_rate)
        else:
            with self.cond:
                self._publish(state, chunk, False)

    def _end(self, sid: int) -> None:
        state = self.streams.get(sid)
        if state is None:
            return
        if state.fmp4:
            self.pool.end(sid)  # its tail comes back after the stream's last frames
        else:
            with self.cond:
                self._publish(state, None, True)

    def encoded(self, result) -> None:
        """The encoders' results (on the pool's thread): fMP4 bytes onto the waiting chunks; the
        tail rides on the last unread chunk, or on an empty one."""
        with self.cond:
            state = self.streams.get(result.stream)
            if state is None:
                return
            if isinstance(result, Encoded):
                chunk = state.waiting.popleft()
                assert chunk.first_frame == result.first_frame, (chunk.first_frame, result.first_frame)
                chunk = replace(chunk, fmp4=result.data)
            elif state.outbox:
                last = state.outbox.pop()
                self._unread -= 1
                chunk = replace(last, fmp4=(last.fmp4 or b"") + result.data)
            else:
                chunk = self._empty_chunk(state, result.data) if result.data else None
            self._publish(state, chunk, not isinstance(result, Encoded))

    def _publish(self, state: StreamState, chunk: StreamChunk | None, finished: bool) -> None:
        """Into the outbox (with ``cond`` held)."""
        if self.streams.get(state.stream) is not state:
            return  # removed meanwhile
        if chunk is not None:
            state.outbox.append(chunk)
            self._unread += 1
        state.finished = state.finished or finished
        self.cond.notify_all()

    @staticmethod
    def _empty_chunk(state: StreamState, fmp4: bytes) -> StreamChunk:
        f = state.frames_out
        video = VideoFrames(torch.zeros((0, *state.frame_shape), dtype=torch.uint8), state.fps, f)
        audio = AudioChunk(np.zeros((state.channels, 0), np.float32), state.audio_rate, f / state.fps)
        motion = (MotionFrames(np.zeros((0, len(MOTION_PARAMS)), np.float32), state.fps, f)
                  if not isinstance(state.renderer, TwinBatch) else None)
        return StreamChunk(video, audio, fmp4, motion)


def _video_shape(video) -> tuple:
    """Shape of the pixels of VideoFrames or I420Frames."""
    return tuple(video.data.shape if isinstance(video, I420Frames) else video.frames.shape)


def _sample(frame: int, rate: int, fps: float) -> int:
    """Output sample where ``frame`` starts (as the sessions cut their audio)."""
    return round(frame * rate / fps)


def _split(items: list[WorkItem], max_frames: int) -> list[list[WorkItem]]:
    """Split work items into groups of at most ``max_frames`` frames (an item is never split)."""
    groups, cur, count = [], [], 0
    for it in items:
        k = it.num_frames
        if cur and count + k > max_frames:
            groups.append(cur)
            cur, count = [], 0
        cur.append(it)
        count += k
    if cur:
        groups.append(cur)
    return groups
