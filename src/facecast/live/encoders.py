"""fMP4 encoder processes for many streams: frames through shared memory, bytes back.

Why processes: libx264 via PyAV releases the GIL while encoding, but the muxing, the AAC encoder
and the per-frame Python around them do not; a GPU process serving dozens of streams cannot
afford them. Frames arrive in a shared-memory ring per encoder process (no pickling of pixels;
a message names the slot), stream s always goes to process s % n (an encoder keeps per-stream
state), and each hand-over's fragmented-MP4 bytes come back as an ``Encoded`` message, handed to
the pool's ``on_result`` callback on the pool's own thread.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

__all__ = ["SLOT_FRAMES", "Encoded", "EncoderPool", "EncoderEnd"]

SLOT_FRAMES = 8  # frames per shared-memory slot: a hand-over carries at most this many


@dataclass(frozen=True)
class Encoded:
    """The fMP4 bytes that became ready with frames first_frame ... + num_frames of ``stream``."""

    stream: int
    first_frame: int
    num_frames: int
    data: bytes


@dataclass(frozen=True)
class EncoderEnd:
    """``stream``'s encoder closed: the last bytes of its fMP4."""

    stream: int
    data: bytes


# Messages between the pool and its processes (this module only).
@dataclass(frozen=True)
class _Open:
    stream: int
    writer: dict  # Fmp4SegmentWriter keyword arguments


@dataclass(frozen=True)
class _Frames:
    slot: int
    stream: int
    first_frame: int
    shape: tuple
    i420: bool
    audio: np.ndarray  # float32 [channels, m]
    rate: int


@dataclass(frozen=True)
class _End:
    stream: int


@dataclass(frozen=True)
class _Drop:
    stream: int


@dataclass(frozen=True)
class _Report:
    """From an encoder process: ready, a result, or stopped, with its CPU seconds so far."""

    encoder: int
    cpu_s: float
    result: Encoded | EncoderEnd | None = None
    stopped: bool = False


def _encoder_main(index: int, shm_name: str, slots: int, slot_bytes: int, in_q, free, res_q) -> None:
    """Encoder process: x264 + AAC + fMP4 muxing per stream, off the GPU process's GIL."""
    from multiprocessing import shared_memory

    from ..media import Fmp4SegmentWriter
    from ..types import AudioChunk, I420Frames, VideoFrames

    torch.set_num_threads(1)
    shm = shared_memory.SharedMemory(name=shm_name)
    ring = np.ndarray((slots, slot_bytes), np.uint8, buffer=shm.buf)
    res_q.put(_Report(index, time.process_time()))
    writers: dict[int, Fmp4SegmentWriter] = {}
    while (msg := in_q.get()) is not None:
        if isinstance(msg, _Frames):
            n = int(np.prod(msg.shape))
            frames = torch.from_numpy(ring[msg.slot, :n].reshape(msg.shape).copy())
            free.release()
            w = writers.get(msg.stream)
            if w is None:  # dropped meanwhile
                continue
            a = AudioChunk(msg.audio, msg.rate, msg.first_frame / w.fps) if msg.audio.shape[1] else None
            video = (I420Frames if msg.i420 else VideoFrames)(frames, w.fps, msg.first_frame)
            data = w.write(video, a)
            res_q.put(_Report(index, time.process_time(), Encoded(msg.stream, msg.first_frame, msg.shape[0], data)))
        elif isinstance(msg, _Open):
            writers[msg.stream] = Fmp4SegmentWriter(**msg.writer)
        elif isinstance(msg, _End):
            w = writers.pop(msg.stream, None)
            data = w.close() if w is not None else b""
            res_q.put(_Report(index, time.process_time(), EncoderEnd(msg.stream, data)))
        elif isinstance(msg, _Drop):
            w = writers.pop(msg.stream, None)
            if w is not None:
                w.close()
    res_q.put(_Report(index, time.process_time(), stopped=True))
    del ring
    shm.close()


class EncoderPool:
    """``n`` encoder processes (at least one); stream s on process s % n.

    frame_bytes: the largest frame handed over (RGB H*W*3, or yuv420p H*W*3/2). open(stream,
    writer) -> send(stream, ...)* -> end(stream) (its tail comes back as EncoderEnd) or
    drop(stream); ``on_result(Encoded | EncoderEnd)`` is called on the pool's thread, in order
    per stream. finish() stops the processes; abort() after a failure elsewhere.
    """

    def __init__(self, ctx, n: int, frame_bytes: int, on_result: Callable, slots: int = 64) -> None:
        from multiprocessing import shared_memory

        self.slots = slots
        self.slot_bytes = SLOT_FRAMES * int(frame_bytes)
        self.on_result = on_result
        self.res_q = ctx.Queue()
        self.shms, self.qs, self.frees, self.rings, self.next, self.procs = [], [], [], [], [], []
        for e in range(max(n, 1)):
            shm = shared_memory.SharedMemory(create=True, size=slots * self.slot_bytes)
            q, free = ctx.Queue(), ctx.Semaphore(slots)
            self.procs.append(ctx.Process(target=_encoder_main, args=(e, shm.name, slots, self.slot_bytes, q, free,
                                                                      self.res_q), daemon=True))
            self.shms.append(shm)
            self.qs.append(q)
            self.frees.append(free)
            self.rings.append(np.ndarray((slots, self.slot_bytes), np.uint8, buffer=shm.buf))
            self.next.append(0)
        for p in self.procs:
            p.start()
        self._cpu0: dict[int, float] = {}
        self._cpu: dict[int, float] = {}
        self._lock = threading.Lock()  # send() may be called from several threads
        self._thread: threading.Thread | None = None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def wait_ready(self, timeout: float = 300) -> None:
        """Wait until every process has loaded its codecs, then start handing results over."""
        deadline = time.monotonic() + timeout
        while len(self._cpu0) < len(self.procs):
            try:
                r = self.res_q.get(timeout=1.0)
            except queue.Empty:
                if not all(p.is_alive() for p in self.procs):
                    raise RuntimeError("an encoder process died while starting") from None
                if time.monotonic() > deadline:
                    raise
                continue
            self._cpu0[r.encoder] = self._cpu[r.encoder] = r.cpu_s
        self._thread = threading.Thread(target=self._collect, name="facecast-encoders", daemon=True)
        self._thread.start()

    def cpu_seconds(self) -> float:
        """CPU seconds of all encoder processes since they were ready (as last reported)."""
        return sum(self._cpu[e] - self._cpu0[e] for e in self._cpu)

    def open(self, stream: int, writer: dict) -> None:
        """A stream's encoder: ``writer`` are Fmp4SegmentWriter keyword arguments."""
        self.qs[stream % len(self.qs)].put(_Open(stream, writer))

    def send(self, stream: int, first_frame: int, frames: np.ndarray, i420: bool, audio: np.ndarray,
             rate: int) -> None:
        """frames uint8 [n <= SLOT_FRAMES, ...] (RGB [n, H, W, 3], or yuv420p [n, H*3/2, W] when
        ``i420``) of ``stream`` from ``first_frame``, with their audio float32 [channels, m] at ``rate``."""
        e = stream % len(self.qs)
        if frames.shape[0] > SLOT_FRAMES:
            raise ValueError(f"{frames.shape[0]} frames in one hand-over; at most {SLOT_FRAMES}")
        flat = np.ascontiguousarray(frames).reshape(-1)
        if flat.size > self.slot_bytes:
            raise ValueError(f"frames of {frames.shape} do not fit the encoders' slots ({self.slot_bytes} bytes)")
        self.frees[e].acquire()  # back-pressure: waits only if the encoder is `slots` items behind
        with self._lock:
            slot = self.next[e] % self.slots
            self.next[e] += 1
        self.rings[e][slot, :flat.size] = flat
        self.qs[e].put(_Frames(slot, stream, first_frame, tuple(frames.shape), i420, audio, rate))

    def end(self, stream: int) -> None:
        self.qs[stream % len(self.qs)].put(_End(stream))

    def drop(self, stream: int) -> None:
        self.qs[stream % len(self.qs)].put(_Drop(stream))

    def _collect(self) -> None:
        stopped = 0
        while stopped < len(self.procs):
            try:
                r = self.res_q.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in self.procs):
                    return
                continue
            self._cpu[r.encoder] = r.cpu_s
            if r.stopped:
                stopped += 1
            elif r.result is not None:
                self.on_result(r.result)

    def finish(self) -> None:
        """Stop the processes once they have encoded everything sent, and free the shared memory."""
        for q in self.qs:
            q.put(None)
        if self._thread is not None:
            self._thread.join(timeout=600)
        for p in self.procs:
            p.join(timeout=30)
        self._free()

    def abort(self) -> None:
        """Stop the encoder processes and free the shared memory (after a failure elsewhere)."""
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.join(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._free()

    def _free(self) -> None:
        """Drop the ring views, then close and unlink the shared memory (once)."""
        self.rings = []
        for shm in self.shms:
            shm.close()
            shm.unlink()
        self.shms = []
