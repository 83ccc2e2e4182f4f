"""Many live avatars on one machine: a long-lived Engine a server holds.

    engine = Engine(EngineOptions(device="cuda", workers=8, encoders=4))
    sid = engine.add("portrait.jpg", StreamOptions(fmp4=True))   # or a twin, told by content
    engine.feed(sid, AudioIn(chunk))                              # live.messages
    engine.advance_to(sid, t)                                      # the wall clock: idle frames
    for chunk in engine.read(sid): send(chunk.fmp4)                # StreamChunks, in order
    engine.remove(sid)            # or feed EndInput() and read until engine.done(sid)
    engine.close()

Layout (why: Python's GIL). pocketsphinx holds the GIL, so worker *processes* run the per-stream
CPU work of the portrait and video-face sessions (VAD, live phones, coarticulation, look-ahead:
live.hosts); twin sessions, whose mouth model is cheap, run in this process. A video face's
frames (its footage with the mouth redrawn) are drawn on the scheduler thread (live.batching). The scheduler thread owns the
device: it gathers whatever frames are due from *all* sessions into one batched launch
(live.batching: CUDA graphs for portraits) and hands each stream's frames to its own encoder in
the encoder processes (live.encoders: libx264 off this process's GIL); the chunks wait in the
stream's outbox for ``read`` (live.scheduler).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import queue
import threading
from dataclasses import replace

import torch

from ..options import SayOptions, StreamOptions
from ..types import Portrait
from .batching import PortraitBatch, TwinBatch, VideoBatch
from .encoders import EncoderPool
from .hosts import AddSession, Added, AdvanceTo, Ended, Failed, Feed, HostFailed, RemoveSession, SessionHost, \
    WorkItem, worker_main
from .messages import AudioIn, EndInput, InputMessage, Interrupt, SpeechIn, StreamChunk, TextIn, check_audio
from .options import EngineOptions, check_options
from .scheduler import Scheduler, StreamState
from .text import check_text_piece

__all__ = ["Engine"]


class Engine:
    """Many live sessions, their frames rendered in shared batches (see the module docstring).

    add(face, options) -> stream id: a portrait (image path or array, Portrait), a twin (a
    loaded Twin or a twin file) or a video of the person (a video file or a VideoFace), told by
    content, as ``live.driver.open_session`` does.
    feed(id, message), advance_to(id, t): input and the clock (a portrait session's analysis
    runs in its worker). read(id) -> the StreamChunks ready so far; done(id): the input ended and
    every chunk was read; wait(timeout): until some chunk is ready. remove(id): drop a session
    at once. close(): stop everything. Thread-safe. ``cpu_seconds``, ``stats`` and ``pids`` are
    for load tests.
    """

    def __init__(self, options: EngineOptions = EngineOptions()) -> None:
        if not isinstance(options, EngineOptions):
            raise TypeError(f"options must be an EngineOptions, got {type(options).__name__}")
        self.options = options
        self._threads = torch.get_num_threads()
        torch.set_num_threads(options.threads)
        ctx = mp.get_context("spawn")
        self._ids = itertools.count()
        self._closed = False
        self._portraits: PortraitBatch | None = None
        self._twins: dict[int, TwinBatch] = {}
        self._videos: dict[int, VideoBatch] = {}
        self._local = SessionHost()
        self._local_lock = threading.Lock()
        self._adding: dict[int, list] = {}  # stream -> [event, reply] while a worker opens it
        self._sched = Scheduler(options)
        self._workers: list = []
        self._cmd_qs: list = []
        self._worker_cpu: dict[int, list[float]] = {}
        self._out_q = ctx.Queue()
        try:
            if options.encoders > 0:
                self._sched.pool = EncoderPool(ctx, options.encoders, options.size * options.size * 3,
                                               self._sched.encoded)
            for w in range(options.workers):
                q = ctx.Queue()
                p = ctx.Process(target=worker_main, args=(w, q, self._out_q), daemon=True)
                p.start()
                self._workers.append(p)
                self._cmd_qs.append(q)
            while len(self._worker_cpu) < len(self._workers):  # every worker has imported its modules
                try:
                    r = self._out_q.get(timeout=1.0)
                except queue.Empty:
                    if not all(p.is_alive() for p in self._workers):
                        raise RuntimeError("a motion worker process died while starting") from None
                    continue
                if isinstance(r, HostFailed):
                    raise RuntimeError(f"a motion worker failed while starting:\n{r.text}")
                self._worker_cpu[r.host] = [r.cpu_s, r.cpu_s]
            if self._sched.pool is not None:
                self._sched.pool.wait_ready()
        except BaseException:
            self._abort()
            torch.set_num_threads(self._threads)
            raise
        self._relay = threading.Thread(target=self._relay_loop, name="facecast-relay", daemon=True)
        self._relay.start()

    # -- sessions ---------------------------------------------------------------------------

    def prepare(self, face, options: StreamOptions = StreamOptions()):
        """``face`` as the engine renders it: a Twin (loaded on the engine's device), a VideoFace
        (a video of the person, by content: decoded at the engine's size, tracked once) or a
        Portrait framed at the engine's size. Add the result to several streams to prepare it
        once."""
        from ..sources import is_video_input, prepare_portrait
        from .driver import as_twin

        if is_video_input(face):
            from ..dubbing.videoface import VideoFace, open_video_face

            if isinstance(face, VideoFace):
                if max(face.size) > self.options.size:
                    raise ValueError(f"video face frames are {face.size[0]}x{face.size[1]}, larger than "
                                     f"EngineOptions.size {self.options.size}")
                return face
            return open_video_face(face, size=self.options.size, face_index=options.face_index)
        twin = as_twin(face, self.options.device, self.options.size)
        if twin is not None:
            if max(twin.size) > self.options.size:
                raise ValueError(f"twin frames are {twin.size[0]}x{twin.size[1]}, larger than EngineOptions.size "
                                 f"{self.options.size}")
            return twin
        return prepare_portrait(face, SayOptions(size=self.options.size, face_index=options.face_index))

    def add(self, face, options: StreamOptions = StreamOptions(), *, voice=None) -> int:
        """Open a session for ``face``; returns its stream id. ``options``: the session's (fps,
        look-ahead, audio format; ``fmp4`` and ``encode`` for its encoder; the frame size is the
        engine's, ``EngineOptions.size``); ``voice`` speaks its TextIn. Blocks until the session
        is ready (models loaded)."""
        self._check_open()
        options = check_options(options)
        if options.preview_jpeg:
            raise ValueError("Engine: StreamOptions.preview_jpeg is not supported; use fmp4 or the chunks' frames")
        if options.fmp4 and self._sched.pool is None:
            raise ValueError("StreamOptions.fmp4 needs an engine with encoders (EngineOptions.encoders > 0)")
        from ..dubbing.videoface import VideoFace

        face = self.prepare(face, options)
        sid = next(self._ids)
        video = face.portrait if isinstance(face, VideoFace) else None
        if video is not None:  # a VideoFace: the motion runs in a worker, as a portrait's; drawn here
            renderer = self._videos.setdefault(id(face), VideoBatch(face))
            renderer.add(sid, float(options.fps), options.render)
            host = sid % len(self._workers) if self._workers else -1
            (W, H), channels = face.size, options.audio_channels
        elif isinstance(face, Portrait):
            if self._portraits is None:
                o = self.options
                self._portraits = PortraitBatch(o.size, o.device, o.dtype, o.max_batch, o.i420)
            renderer, host = self._portraits, (sid % len(self._workers) if self._workers else -1)
            renderer.add(sid, face, options.render)
            (W, H), channels = (self.options.size, self.options.size), options.audio_channels
        else:  # a twin's session runs here: its mouth model is a few small convolutions
            renderer, host = self._twins.setdefault(id(face), TwinBatch(face)), -1
            (W, H), channels = face.size, 1
        self._sched.register(StreamState(sid, float(options.fps), options.fmp4, renderer, host, options.audio_rate,
                                         channels))
        if options.fmp4:
            enc = options.encode
            self._sched.pool.open(sid, dict(fps=options.fps, width=W, height=H, audio_rate=options.audio_rate,
                                            audio_channels=channels, crf=enc.crf, preset=enc.preset, codec=enc.codec,
                                            fragment_frames=options.fragment_frames, threads=1))
        # A video face's session is a portrait session of its first frame (its frames are drawn
        # by the VideoBatch): what goes to the worker is that small Portrait.
        cmd = AddSession(sid, video if video is not None else face, replace(options, fmp4=False), voice)
        if host < 0:
            with self._local_lock:
                reply = self._local.handle(cmd)[0]
        else:
            waiter = self._adding[sid] = [threading.Event(), None]
            self._cmd_qs[host].put(cmd)
            while not waiter[0].wait(0.5):
                self._check_open()
            reply = waiter[1]
        if isinstance(reply, Failed):
            self._forget(sid)
            raise reply.error
        self._sched.state(sid).lookahead_s = reply.lookahead_s
        return sid

    def feed(self, stream: int, message: InputMessage) -> None:
        """Input for a session (AudioIn, TextIn, SpeechIn, Interrupt, EndInput); checked here, so
        a bad chunk raises at once even when the session runs in a worker."""
        if isinstance(message, (AudioIn, SpeechIn)):
            check_audio(message.audio)
        elif isinstance(message, TextIn):
            check_text_piece(message.text)
        elif not isinstance(message, (Interrupt, EndInput)):
            raise TypeError(f"feed: expected AudioIn, TextIn, SpeechIn, Interrupt or EndInput, got "
                            f"{type(message).__name__}")
        self._command(stream, Feed(stream, message))

    def advance_to(self, stream: int, t: float) -> None:
        """The stream's clock is at ``t`` s: input that has not arrived before t is silence."""
        self._command(stream, AdvanceTo(stream, float(t)))

    def read(self, stream: int) -> list[StreamChunk]:
        """The stream's chunks ready so far, in order ([] when none); raises the session's error."""
        return self._sched.read(stream)

    def done(self, stream: int) -> bool:
        """The input ended and every chunk of the stream has been read."""
        return self._sched.done(stream)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until some stream has a chunk to read (or the engine failed); False on timeout."""
        return self._sched.wait(timeout)

    def lookahead_s(self, stream: int) -> float:
        """How far the stream's video lags its input (a twin's is its mouth model's)."""
        return self._sched.state(stream).lookahead_s

    def remove(self, stream: int) -> None:
        """Drop a session at once (a client went away): its input, frames and fMP4 are discarded."""
        state = self._sched.state(stream)
        self._forget(stream)
        if state.host < 0:
            with self._local_lock:
                self._local.handle(RemoveSession(stream))
        elif not self._closed:
            self._cmd_qs[state.host].put(RemoveSession(stream))

    def warm_up(self) -> None:
        """Capture the CUDA graphs / warm the twins up now, before clients arrive."""
        if self._portraits is not None:
            self._portraits.warm_up()
        for t in self._twins.values():
            t.warm_up()

    @property
    def failure(self) -> BaseException | None:
        """Why the engine stopped working (a worker or encoder process died ...), else None; a
        failed engine only raises that error: close it and start a new one."""
        return self._sched.failure

    @property
    def pids(self) -> list[int]:
        """Process ids of the motion workers and encoders."""
        pool = self._sched.pool
        return [p.pid for p in self._workers] + (pool.pids if pool is not None else [])

    def cpu_seconds(self) -> dict:
        """CPU seconds of the motion workers and of the encoders since they started (as last
        reported: a worker reports with every reply, an encoder with every result)."""
        pool = self._sched.pool
        return {"workers": sum(c - c0 for c0, c in self._worker_cpu.values()),
                "encoders": pool.cpu_seconds() if pool is not None else 0.0}

    def stats(self) -> dict:
        """Device, launches, frames per launch, host ms per launch; on CUDA the render time per
        launch (device events, complete after close) and peak memory."""
        return self._sched.stats()

    def close(self) -> None:
        """Stop the workers, render and encode what is in flight, stop the encoders."""
        if self._closed:
            return
        self._closed = True
        if self._sched.failure is not None:
            self._abort()
        else:
            for q in self._cmd_qs:
                q.put(None)
            for p in self._workers:
                p.join(timeout=30)
            self._relay.join(timeout=30)
            self._sched.stop()
            if self._sched.pool is not None:
                self._sched.pool.finish()
        torch.set_num_threads(self._threads)

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- hosts --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._sched.failure is not None:
            raise self._sched.failure
        if self._closed:
            raise RuntimeError("this Engine is closed")

    def _forget(self, stream: int) -> None:
        state = self._sched.forget(stream)
        if state is None:
            return
        if state.fmp4 and self._sched.pool is not None and not self._closed:
            self._sched.pool.drop(stream)
        if isinstance(state.renderer, (PortraitBatch, VideoBatch)):
            state.renderer.remove(stream)

    def _command(self, stream: int, cmd) -> None:
        self._check_open()
        state = self._sched.state(stream)
        if state.error is not None:
            raise state.error
        if state.host < 0:
            with self._local_lock:
                replies = self._local.handle(cmd)
            self._route(replies)
        else:
            self._cmd_qs[state.host].put(cmd)

    def _route(self, replies) -> None:
        """Host replies: frames to the scheduler, openings to their waiters, errors to the stream."""
        for r in replies:
            if isinstance(r, (WorkItem, Ended)):
                self._sched.put(r)
            elif isinstance(r, (Added, Failed)) and r.stream in self._adding:
                waiter = self._adding.pop(r.stream)
                waiter[1] = r
                waiter[0].set()
            elif isinstance(r, Failed):
                self._sched.fail(r.error, r.stream)

    def _relay_loop(self) -> None:
        """The worker processes' replies -> _route, until every worker has stopped."""
        running = len(self._workers)
        while running:
            try:
                r = self._out_q.get(timeout=1.0)
            except queue.Empty:
                if not self._closed and not all(p.is_alive() for p in self._workers):
                    self._fail(RuntimeError("a motion worker process died"))
                    return
                continue
            if isinstance(r, HostFailed):
                self._fail(RuntimeError(f"a motion worker failed:\n{r.text}"))
                return
            self._worker_cpu[r.host][1] = r.cpu_s
            self._route(r.replies)
            running -= r.stopped

    def _fail(self, exc: BaseException) -> None:
        self._sched.fail(exc)
        for waiter in list(self._adding.values()):
            waiter[1] = Failed(-1, exc)
            waiter[0].set()

    def _abort(self) -> None:
        """After a failure: stop every process and free the shared memory."""
        for p in self._workers:
            p.terminate()
        for p in self._workers:
            p.join(timeout=10)
        if self._sched.pool is not None:
            self._sched.pool.abort()
        self._sched.stop(wait=False)
