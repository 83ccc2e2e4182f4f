"""Many live avatars on one machine, and the load test that proves how many.

Layout (why: Python's GIL). pocketsphinx holds the GIL, so each worker *process* runs the
per-stream CPU work of its share of the streams: audio arrives in 20 ms chunks at wall-clock pace,
a `StreamSession` per stream turns it into motion (VAD, live phones, coarticulation, look-ahead).
The parent process owns the GPU: one scheduler loop gathers whatever motion is ready from *all*
sessions into one `BatchRenderer.render` launch, copies frames back through pinned memory, and
hands each stream's frames to its own encoder (libx264 via PyAV, which releases the GIL while
encoding) on a pool of encoder threads.

`run_loadtest` simulates N clients feeding real speech in real time and measures, per stream,
frames per second, late frames (delivered after their audio time + look-ahead + budget),
latency, and time to first frame from the first audio chunk.
"""

from __future__ import annotations

import collections
import multiprocessing as mp
import os
import queue
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .sysinfo import rss_mib
from .types import AudioChunk, FaceLandmarks, I420Frames, MotionFrames, Portrait, VideoFrames


@dataclass(frozen=True)
class LoadTestOptions:
    """streams: simulated clients. seconds: how long each talks. workers: motion processes.
    encoders: encoder processes. chunk_s: client audio chunk length. lookahead_s: stream look-ahead.
    budget_s: a frame is late when delivered later than its audio time + lookahead_s + budget_s.
    max_batch: most frames per GPU launch (bounds memory when work piles up).
    tick_s: the GPU scheduler gathers ready work for this long after the first item before one
        launch (a launch costs ~10 ms however few frames it has, so batching across streams is
        what lets one GPU serve many).
    encode: H.264 per stream (libx264 `preset`), else frames are only rendered and fetched.
    speed: the clients' clock runs this many times faster than the wall clock (1 = real time);
        for hour-long memory runs in minutes. Latencies are then in wall seconds of the faster
        clock and say nothing about real-time delivery.
    memory_every_s: sample RSS (this process and its workers) and VRAM every this many wall
        seconds into ``result["memory"]`` (0 = off).
    i420: hand frames to the encoders as yuv420p converted where they were rendered (None: on
        CUDA only; on a CPU swscale inside the encoder is faster, True there tests the path)."""

    streams: int = 2
    seconds: float = 10.0
    size: int = 512
    fps: float = 25.0
    device: str = "cpu"
    dtype: str = "float16"
    workers: int = 1
    encoders: int = 2
    chunk_s: float = 0.02
    lookahead_s: float = 0.1
    budget_s: float = 0.15
    encode: bool = True
    preset: str = "ultrafast"
    stagger_s: float = 1.0
    max_batch: int = 256
    tick_s: float = 0.025
    speed: float = 1.0
    memory_every_s: float = 0.0
    i420: bool | None = None
    verbose: bool = False


def portraits_from_npz(path) -> list[Portrait]:
    """Pre-framed portraits saved as img0/pts0, img1/pts1, ... (machines without mediapipe)."""
    z = np.load(path)
    out, i = [], 0
    while f"img{i}" in z:
        img, pts = z[f"img{i}"], z[f"pts{i}"].astype(np.float32)
        out.append(Portrait(img, FaceLandmarks(pts, (img.shape[1], img.shape[0])), f"portrait{i}"))
        i += 1
    return out


# ----------------------------------------------------------------------------------------------
# worker process: live audio -> motion
# ----------------------------------------------------------------------------------------------

class _Capture:
    """A render callable that renders nothing: it keeps the MotionFrames for the GPU process."""

    def __init__(self):
        self.motions: list[MotionFrames] = []

    def __call__(self, motion: MotionFrames) -> VideoFrames:
        self.motions.append(motion)
        return VideoFrames(torch.zeros((motion.num_frames, 1, 1, 3), dtype=torch.uint8), motion.fps, motion.first_frame)


def _stream_options(opts: LoadTestOptions):
    """Each simulated client's StreamOptions (checked: ValueError naming the bad field)."""
    from .options import StreamOptions
    from .stream import check_options

    return check_options(StreamOptions(size=opts.size, fps=opts.fps, lookahead_s=opts.lookahead_s, realtime=False,
                                       encode=False, audio_rate=16000, chunk_frames=5))


def _motion_worker(stream_ids, portraits, audio, offsets, start_q, opts: LoadTestOptions, out_q) -> None:
    """Feed each stream's audio in real time from t0 + offset (t0 arrives on ``start_q`` once
    every worker is loaded); send (id, first_frame, params, audio samples, audio_rate) for every
    chunk of frames that became due. A failure is sent as ("error", text): the parent raises it
    instead of waiting for a worker that is gone."""
    try:
        _motion_loop(stream_ids, portraits, audio, offsets, start_q, opts, out_q)
    except BaseException:
        import traceback

        out_q.put(("error", traceback.format_exc()))
        raise


def _motion_loop(stream_ids, portraits, audio, offsets, start_q, opts: LoadTestOptions, out_q) -> None:
    torch.set_num_threads(1)
    from .stream import StreamSession

    so = _stream_options(opts)
    caps = {s: _Capture() for s in stream_ids}
    sessions = {s: StreamSession(portraits[s], so, render=caps[s]) for s in stream_ids}
    out_q.put(("ready", stream_ids))
    t0 = start_q.get()
    cpu0 = time.process_time()  # model loading before the clock is not per-stream cost
    n_chunk = int(round(opts.chunk_s * 16000))
    pos = {s: 0 for s in stream_ids}
    live = set(stream_ids)
    step = 0
    while live:
        step += 1
        now = time.monotonic()
        for s in list(live):
            due = int((now - (t0 + offsets[s])) * opts.speed / opts.chunk_s)  # chunks that have "arrived"
            sess = sessions[s]
            while due > pos[s] // n_chunk and pos[s] < len(audio[s]):
                piece = audio[s][pos[s]:pos[s] + n_chunk]
                sess.push_audio(AudioChunk(piece[None, :], 16000, pos[s] / 16000))
                pos[s] += len(piece)
            if pos[s] >= len(audio[s]):
                chunks = sess.close()
                live.discard(s)
            else:
                chunks = sess.poll()
            for ch, mo in zip(chunks, caps[s].motions[-len(chunks):] if chunks else []):
                out_q.put((s, mo.first_frame, mo.params, ch.audio.samples, ch.audio.sample_rate))
            caps[s].motions.clear()
        time.sleep(max(0.0, opts.chunk_s / 2 / opts.speed - (time.monotonic() - now)))
    out_q.put(("done", stream_ids, time.process_time() - cpu0))


# ----------------------------------------------------------------------------------------------
# parent: one batched GPU launch per tick for all streams, encoders on threads
# ----------------------------------------------------------------------------------------------

class _StreamOut:
    """Delivery bookkeeping and the fMP4 encoder of one stream (lives in an encoder process)."""

    def __init__(self, opts: LoadTestOptions):
        self.frames = 0
        self.first_delivery: float | None = None
        self.latencies: list[float] = []
        self.late = 0
        self.bytes = 0
        self.writer = None
        if opts.encode:
            from .media import Fmp4SegmentWriter

            # One thread per encoder: the streams are already spread over encoder processes.
            self.writer = Fmp4SegmentWriter(fps=opts.fps, width=opts.size, height=opts.size, audio_rate=16000,
                                            audio_channels=1, preset=opts.preset, fragment_frames=5, threads=1)

    def deliver(self, first: int, frames: torch.Tensor, i420: bool, audio: np.ndarray, rate: int,
                t_audio0: float, opts: LoadTestOptions) -> None:
        """Encode frames (RGB [n, H, W, 3], or yuv420p [n, H*3/2, W] when ``i420``); t_audio0: wall
        time at which this stream's audio time 0 arrived, so frame k's latency is
        now - (t_audio0 + its time / speed)."""
        if self.writer is not None:
            a = AudioChunk(audio, rate, first / opts.fps) if audio.shape[1] else None
            video = I420Frames(frames, opts.fps, first) if i420 else VideoFrames(frames, opts.fps, first)
            self.bytes += len(self.writer.write(video, a))
        t = time.monotonic()
        for k in range(frames.shape[0]):
            lat = t - (t_audio0 + (first + k) / opts.fps / opts.speed)
            self.latencies.append(lat)
            self.late += lat > opts.lookahead_s + opts.budget_s
        self.frames += frames.shape[0]
        if self.first_delivery is None:
            self.first_delivery = t

    def summary(self) -> dict:
        if self.writer is not None:
            self.bytes += len(self.writer.close())
        return {"frames": self.frames, "first_delivery": self.first_delivery, "latencies": self.latencies,
                "late": self.late, "bytes": self.bytes}


_SLOT_FRAMES = 8  # frames per shared-memory slot (work items carry <= 5: chunk_frames)


def _frame_shape(size: int, i420: bool) -> tuple[int, ...]:
    """One frame in the shared-memory ring: yuv420p rows (GPU-converted) or RGB."""
    return (size * 3 // 2, size) if i420 else (size, size, 3)


def _encoder_main(shm_name: str, slots: int, i420: bool, opts: LoadTestOptions, in_q, free, res_q) -> None:
    """Encoder process: frames arrive in a shared-memory ring (no pickling of pixels), messages
    name the slot; x264 + AAC + fMP4 muxing per stream, off the GPU process's GIL."""
    from multiprocessing import shared_memory

    torch.set_num_threads(1)
    shm = shared_memory.SharedMemory(name=shm_name)
    ring = np.ndarray((slots, _SLOT_FRAMES) + _frame_shape(opts.size, i420), np.uint8, buffer=shm.buf)
    from .media import Fmp4SegmentWriter  # noqa: F401  (import before saying ready)

    res_q.put("ready")
    t_audio0 = in_q.get()  # {stream: wall time of its audio time 0}
    cpu0 = time.process_time()
    outs: dict[int, _StreamOut] = {}
    while (msg := in_q.get()) is not None:
        slot, s, first, n, audio, rate = msg
        frames = torch.from_numpy(ring[slot, :n].copy())
        free.release()
        if s not in outs:
            outs[s] = _StreamOut(opts)
        outs[s].deliver(first, frames, i420, audio, rate, t_audio0[s], opts)
    res_q.put(({s: o.summary() for s, o in outs.items()}, time.process_time() - cpu0))
    del ring
    shm.close()


class _EncoderPool:
    """Encoder processes, stream s always on process s % n (an encoder keeps per-stream state)."""

    def __init__(self, ctx, n: int, opts: LoadTestOptions, i420: bool, slots: int = 64):
        from multiprocessing import shared_memory

        self.opts, self.slots = opts, slots
        shape = _frame_shape(opts.size, i420)
        frame = int(np.prod(shape))
        self.res_q = ctx.Queue()
        self.shms, self.qs, self.frees, self.rings, self.next = [], [], [], [], []
        self.procs = []
        for _ in range(max(n, 1)):
            shm = shared_memory.SharedMemory(create=True, size=slots * _SLOT_FRAMES * frame)
            q, free = ctx.Queue(), ctx.Semaphore(slots)
            self.procs.append(ctx.Process(target=_encoder_main, args=(shm.name, slots, i420, opts, q, free, self.res_q),
                                          daemon=True))
            self.shms.append(shm)
            self.qs.append(q)
            self.frees.append(free)
            self.rings.append(np.ndarray((slots, _SLOT_FRAMES) + shape, np.uint8, buffer=shm.buf))
            self.next.append(0)
        for p in self.procs:
            p.start()

    def wait_ready(self) -> None:
        for _ in self.procs:
            msg = self.res_q.get(timeout=300)
            assert msg == "ready", msg

    def start(self, t_audio0: dict[int, float]) -> None:
        for q in self.qs:
            q.put(t_audio0)

    def send(self, s: int, first: int, frames: np.ndarray, audio: np.ndarray, rate: int) -> None:
        """frames uint8 [n <= 8, ...] (the ring's frame shape) of stream s from frame ``first``."""
        e = s % len(self.qs)
        if frames.shape[0] > _SLOT_FRAMES:
            raise ValueError(f"{frames.shape[0]} frames in one item; at most {_SLOT_FRAMES}")
        self.frees[e].acquire()  # back-pressure: waits only if the encoder is 64 items behind
        slot = self.next[e] % self.slots
        self.next[e] += 1
        self.rings[e][slot, :frames.shape[0]] = frames
        self.qs[e].put((slot, s, first, frames.shape[0], audio, rate))

    def abort(self) -> None:
        """Stop the encoder processes and free the shared memory (after a failure elsewhere)."""
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.join(timeout=10)
        self._free()

    def finish(self) -> dict[int, dict]:
        for q in self.qs:
            q.put(None)
        results: dict[int, dict] = {}
        self.cpu_s = 0.0  # CPU seconds of all encoder processes
        for _ in self.procs:
            summary, cpu = self.res_q.get(timeout=600)
            results.update(summary)
            self.cpu_s += cpu
        for p in self.procs:
            p.join(timeout=30)
        self._free()
        return results

    def _free(self) -> None:
        """Drop the ring views, then close and unlink the shared memory (once)."""
        self.rings = []
        for shm in self.shms:
            shm.close()
            shm.unlink()
        self.shms = []


def _memory_sample(wall_s: float, speed: float, children: list[int], cuda: bool) -> dict:
    """RSS of the scheduler and of its worker processes, and the GPU memory the engine holds."""
    row = {"wall_s": round(wall_s, 2), "stream_min": round(max(wall_s, 0.0) * speed / 60, 3),
           "rss_main_mib": round(rss_mib(), 1), "rss_workers_mib": round(sum(rss_mib(p) for p in children), 1)}
    if cuda:
        row["vram_allocated_mib"] = round(torch.cuda.memory_allocated() / 2**20, 1)
        row["vram_reserved_mib"] = round(torch.cuda.memory_reserved() / 2**20, 1)
    return row


def _stop(procs: list, encoders: _EncoderPool) -> None:
    """After a worker failed: stop the other workers and the encoders, free shared memory."""
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(timeout=10)
    encoders.abort()


def _split(work: list, max_frames: int) -> list[list]:
    """Split work items into groups of at most ``max_frames`` frames (an item is never split)."""
    groups, cur, count = [], [], 0
    for it in work:
        k = it[2].shape[0]
        if cur and count + k > max_frames:
            groups.append(cur)
            cur, count = [], 0
        cur.append(it)
        count += k
    if cur:
        groups.append(cur)
    return groups


def run_loadtest(portraits: list[Portrait], speech: np.ndarray, opts: LoadTestOptions) -> dict:
    """Simulate ``opts.streams`` clients, each talking ``opts.seconds`` of real speech (16 kHz
    float32 ``speech``, each client starting at a different point), and measure delivery."""
    from .render import BatchRenderer, GraphedBatchRenderer, PinnedFetcher, image_dtype
    from .media import to_i420

    n = opts.streams
    _stream_options(opts)  # invalid stream settings fail here, before any process is spawned
    for name in ("seconds", "chunk_s", "speed"):
        if not getattr(opts, name) > 0:
            raise ValueError(f"LoadTestOptions.{name} must be > 0, got {getattr(opts, name)}")
    torch.set_num_threads(1)  # the other cores belong to the motion workers and encoders
    engine = BatchRenderer((opts.size, opts.size), device=opts.device, dtype=image_dtype(opts.dtype))
    cuda = engine.device.type == "cuda"
    if cuda:
        faces = [engine.add(portraits[i % len(portraits)]) for i in range(n)]
        # Frames leave the GPU as yuv420p (converted inside the graph): half the bytes of RGB
        # through pinned and shared memory, and no swscale in the encoder processes.
        i420 = opts.size % 4 == 0 if opts.i420 is None else opts.i420
        graphed = GraphedBatchRenderer(engine, buckets=tuple(b for b in (8, 16, 32, 64, 128, 256) if b <= opts.max_batch),
                                       i420=i420)
    else:
        # On a CPU, batching across streams buys nothing and the per-portrait renderer has the
        # OpenCV fast path; the batched engine is the GPU's.
        from .render import MeshRenderer

        cpu_renderers = [MeshRenderer(portraits[i % len(portraits)]) for i in range(n)]
        i420 = bool(opts.i420)  # default off: swscale in the encoder is faster than torch on a CPU
    rng = np.random.default_rng(0)
    L = int(opts.seconds * 16000)
    audio = {}
    for s in range(n):
        start = int(rng.integers(0, max(len(speech) - 1, 1)))
        audio[s] = np.roll(np.tile(speech, int(np.ceil(L / len(speech))) + 1), -start)[:L].astype(np.float32)
    offsets = {s: float(rng.uniform(0, opts.stagger_s)) for s in range(n)}
    if cuda:  # capture every bucket's graph before the clock starts
        for b in graphed.buckets:
            graphed.render(torch.zeros(b, dtype=torch.long), torch.zeros(b, 10))

    # Each worker is one core's worth of work: keep BLAS/OpenMP/onnxruntime pools from spawning a
    # thread per core in every process (12 processes x 16 spinning threads starve the GPU loop).
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    cpu0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    ctx = mp.get_context("spawn")
    out_q, start_q = ctx.Queue(), ctx.Queue()
    encoders = _EncoderPool(ctx, opts.encoders, opts, i420)
    groups = [g for g in (list(range(n))[w::opts.workers] for w in range(opts.workers)) if g]
    procs = [ctx.Process(target=_motion_worker, args=(g, {s: portraits[s % len(portraits)] for s in g},
                                                     {s: audio[s] for s in g}, {s: offsets[s] for s in g},
                                                     start_q, opts, out_q), daemon=True) for g in groups]
    for p in procs:
        p.start()
    for _ in procs:  # the clock starts once every worker has loaded its models
        msg = out_q.get(timeout=300)
        if msg[0] != "ready":
            _stop(procs, encoders)
            raise RuntimeError(f"a motion worker failed while loading:\n{msg[1]}")
    encoders.wait_ready()
    t0 = time.monotonic() + 0.2
    for _ in procs:
        start_q.put(t0)
    encoders.start({s: t0 + offsets[s] for s in range(n)})
    dispatcher = ThreadPoolExecutor(1)  # waits for device->host copies off the scheduling loop
    # Back-pressure: at most this many launches wait for the encoders. Without it an overloaded
    # encoder pool let the dispatcher's queue of frame buffers grow without bound (a 60-minute
    # run at 8x with too few encoders: parent RSS 3.3 -> 10 GiB); with it the backlog waits
    # upstream as motion parameters (~13 KB per 5 frames instead of ~2 MB of pixels).
    inflight = threading.BoundedSemaphore(8)
    memory: list[dict] = []
    next_sample = time.monotonic()
    children = [p.pid for p in procs] + [p.pid for p in encoders.procs]
    launches = 0
    tally = {"frames": 0, "host_ms": 0.0, "calls": 0}  # running sums: nothing grows with stream length
    gpu = {"ms": 0.0, "n": 0}  # render time from CUDA events, summed as the events complete
    pending_events: collections.deque = collections.deque()
    done_workers = 0
    cpu_motion = 0.0  # CPU seconds of the motion workers, as they report when done

    def _launch(work) -> int:
        """One batched render of ``work`` items; frames go to the encoders when they reach the
        host (the wait happens on an encoder thread, never in this loop)."""
        ids = torch.cat([torch.full((it[2].shape[0],), faces[it[0]], dtype=torch.long) for it in work])
        params = torch.from_numpy(np.concatenate([it[2] for it in work]))
        ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ev0.record()
        t_launch = time.perf_counter()
        frames = graphed.render(ids, params)
        tally["host_ms"] += (time.perf_counter() - t_launch) * 1000
        tally["calls"] += 1
        ev1.record()
        pending_events.append((ev0, ev1))
        while pending_events and pending_events[0][1].query():  # done: no wait, no growing list
            a, b = pending_events.popleft()
            gpu["ms"] += a.elapsed_time(b)
            gpu["n"] += 1
        fetched = PinnedFetcher(frames)
        tally["frames"] += int(ids.shape[0])

        def dispatch(fetched=fetched, work=work):
            try:
                host = fetched.wait().numpy()
                i = 0
                for s, first, p, a, rate in work:
                    k = p.shape[0]
                    encoders.send(s, first, host[i:i + k], a, rate)
                    i += k
            finally:
                inflight.release()

        inflight.acquire()
        dispatcher.submit(dispatch)
        return 1

    while done_workers < len(procs):
        if opts.memory_every_s > 0 and time.monotonic() >= next_sample:
            memory.append(_memory_sample(time.monotonic() - t0, opts.speed, children, cuda))
            memory[-1]["frames_rendered"] = tally["frames"]
            if opts.verbose:
                print("memory", memory[-1], flush=True)
            next_sample += opts.memory_every_s
        items = []
        try:
            items.append(out_q.get(timeout=0.05))
            deadline = time.monotonic() + (opts.tick_s if cuda else 0.0)
            while True:
                left = deadline - time.monotonic()
                items.append(out_q.get(timeout=left) if left > 0 else out_q.get_nowait())
        except queue.Empty:
            pass
        work = []
        for it in items:
            if it[0] == "error":
                dispatcher.shutdown(wait=True)
                _stop(procs, encoders)
                raise RuntimeError(f"a motion worker failed:\n{it[1]}")
            if it[0] == "done":
                done_workers += 1
                cpu_motion += it[2]
            else:
                work.append(it)
        if not work:
            continue
        if opts.verbose and launches % 100 == 0:
            print(f"t={time.monotonic() - t0:6.2f}s launch {launches}: {sum(it[2].shape[0] for it in work)} frames",
                  flush=True)
        if not cuda:
            t_launch = time.perf_counter()
            for s, first, p, a, rate in work:
                video = cpu_renderers[s].render(MotionFrames(p, opts.fps, first))
                frames = to_i420(video).data if i420 else video.frames
                encoders.send(s, first, frames.numpy(), a, rate)
            tally["host_ms"] += (time.perf_counter() - t_launch) * 1000
            tally["calls"] += 1
            launches += 1
            tally["frames"] += sum(it[2].shape[0] for it in work)
            continue
        for batch in _split(work, opts.max_batch):
            launches += _launch(batch)

    for p in procs:
        p.join(timeout=10)
    dispatcher.shutdown(wait=True)
    delivered = encoders.finish()
    wall = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_self = (cpu1[0].ru_utime + cpu1[0].ru_stime) - (cpu0[0].ru_utime + cpu0[0].ru_stime)
    cpu_workers = (cpu1[1].ru_utime + cpu1[1].ru_stime) - (cpu0[1].ru_utime + cpu0[1].ru_stime)
    outs = {s: delivered.get(s, {"frames": 0, "first_delivery": None, "latencies": [], "late": 0, "bytes": 0})
            for s in range(n)}
    lat = np.concatenate([np.asarray(o["latencies"]) for o in outs.values()]) if n else np.zeros(0)
    ttff = np.array([o["first_delivery"] - (t0 + offsets[s]) for s, o in outs.items() if o["first_delivery"]])
    expected = int(np.ceil(opts.seconds * opts.fps - 1e-9))
    result = {
        "options": asdict(opts),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "frames_expected_per_stream": expected,
        "frames_min": min(o["frames"] for o in outs.values()),
        "frames_total": sum(o["frames"] for o in outs.values()),
        "late_frames": sum(o["late"] for o in outs.values()),
        "late_fraction": sum(o["late"] for o in outs.values()) / max(sum(o["frames"] for o in outs.values()), 1),
        "latency_p50_s": float(np.percentile(lat, 50)) if lat.size else None,
        "latency_p95_s": float(np.percentile(lat, 95)) if lat.size else None,
        "ttff_p50_s": float(np.percentile(ttff, 50)) if ttff.size else None,
        "ttff_p95_s": float(np.percentile(ttff, 95)) if ttff.size else None,
        "per_stream_fps": sum(o["frames"] for o in outs.values()) / n / max(opts.seconds, 1e-9),
        "launches": launches,
        "frames_per_launch_mean": tally["frames"] / launches if launches else 0.0,
        "wall_s": wall,
        "cpu_cores_main": cpu_self / wall,  # GPU scheduling loop and frame dispatch
        "cpu_cores_workers": cpu_workers / wall,  # motion + encoder processes (joined, so counted)
        # Per stream and second of its speech: where the CPU goes (the live ceiling's limit).
        "cpu_per_stream_s": {"motion": cpu_motion / (n * opts.seconds), "encode": encoders.cpu_s / (n * opts.seconds),
                             "scheduler": cpu_self / (n * opts.seconds)},
        "launch_host_ms_mean": tally["host_ms"] / tally["calls"] if tally["calls"] else None,
        "bytes_per_stream": float(np.mean([o["bytes"] for o in outs.values()])),
        "memory": memory,
    }
    if cuda:
        torch.cuda.synchronize()
        for a, b in pending_events:
            gpu["ms"] += a.elapsed_time(b)
            gpu["n"] += 1
        result["gpu_render_ms_mean"] = gpu["ms"] / gpu["n"] if gpu["n"] else None
        result["gpu_busy_fraction"] = gpu["ms"] / 1000 / wall if gpu["n"] else None
        result["peak_vram_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result
