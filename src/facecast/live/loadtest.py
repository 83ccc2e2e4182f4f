"""How many live streams a machine carries: simulated clients against an Engine.

Each client talks real speech in ``chunk_s`` pieces at wall-clock pace (from a random point of
the speech, starting at a random time within ``stagger_s``), through ``Engine.feed`` as a server
would, and reads its chunks as they come. Per stream: frames delivered, late frames (read later
than their audio time + the stream's look-ahead + budget), latency, time to first frame from
the stream's first audio chunk. The same code tests portraits and twins (any mix of faces).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, replace

import numpy as np
import torch

from ..options import EncodeOptions, StreamOptions
from ..sysinfo import rss_mib
from ..types import ANALYSIS_RATE, AudioChunk, FaceLandmarks, Portrait
from .engine import Engine
from .messages import AudioIn, EndInput
from .options import LoadTestOptions, check_options

__all__ = ["portraits_from_npz", "run_loadtest", "speech_from_text", "stream_options"]


def portraits_from_npz(path) -> list[Portrait]:
    """Pre-framed portraits saved as img0/pts0, img1/pts1, ... (machines without mediapipe)."""
    z = np.load(path)
    out, i = [], 0
    while f"img{i}" in z:
        img, pts = z[f"img{i}"], z[f"pts{i}"].astype(np.float32)
        out.append(Portrait(img, FaceLandmarks(pts, (img.shape[1], img.shape[0])), f"portrait{i}"))
        i += 1
    return out


def speech_from_text(text: str, voice=None) -> np.ndarray:
    """float32 [n] 16 kHz mono speech of ``text`` by ``voice`` (default: the bundled Piper voice)."""
    from ..audio import Resampler

    if voice is None:
        from ..voice import PiperVoice

        voice = PiperVoice()
    parts = []
    for v in voice.synthesize(text):
        r = Resampler(ANALYSIS_RATE, mono=True)
        parts += [r.feed(v.audio).samples[0], r.flush().samples[0]]
    return np.concatenate(parts).astype(np.float32)


def stream_options(opts: LoadTestOptions) -> StreamOptions:
    """Each simulated client's StreamOptions (checked: ValueError naming the bad field)."""
    return check_options(StreamOptions(size=opts.engine.size, fps=opts.fps, lookahead_s=opts.lookahead_s,
                                       realtime=False, fmp4=opts.fmp4, audio_rate=ANALYSIS_RATE, chunk_frames=5,
                                       fragment_frames=5, encode=EncodeOptions(preset=opts.preset)))


def _memory_sample(wall_s: float, speed: float, children: list[int], cuda: bool) -> dict:
    """RSS of this process and of the engine's processes, and the GPU memory the engine holds."""
    row = {"wall_s": round(wall_s, 2), "stream_min": round(max(wall_s, 0.0) * speed / 60, 3),
           "rss_main_mib": round(rss_mib(), 1), "rss_workers_mib": round(sum(rss_mib(p) for p in children), 1)}
    if cuda:
        row["vram_allocated_mib"] = round(torch.cuda.memory_allocated() / 2**20, 1)
        row["vram_reserved_mib"] = round(torch.cuda.memory_reserved() / 2**20, 1)
    return row


def _percentile(x: np.ndarray, q: float) -> float | None:
    return float(np.percentile(x, q)) if x.size else None


def run_loadtest(faces: list, speech: np.ndarray, opts: LoadTestOptions = LoadTestOptions()) -> dict:
    """Simulate ``opts.streams`` clients, each talking ``opts.seconds`` of real speech (16 kHz
    float32 ``speech``, each client starting at a different point) to a face (stream s gets
    ``faces[s % len(faces)]``: portraits, images, twins), and measure delivery."""
    n = opts.streams
    so = stream_options(opts)  # invalid stream settings fail here, before any process is spawned
    for name in ("seconds", "chunk_s", "speed"):
        if not getattr(opts, name) > 0:
            raise ValueError(f"LoadTestOptions.{name} must be > 0, got {getattr(opts, name)}")
    if n < 1 or not faces:
        raise ValueError("run_loadtest: needs at least one stream and one face")
    # Each worker is one core's worth of work: keep BLAS/OpenMP/onnxruntime pools from spawning a
    # thread per core in every process (12 processes x 16 spinning threads starve the GPU loop).
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    cpu0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    engine = Engine(replace(opts.engine, frames=False))
    try:
        prepared = [engine.prepare(f, so) for f in faces]  # each face once, however many streams
        sids = [engine.add(prepared[s % len(prepared)], so) for s in range(n)]
        engine.warm_up()  # capture every bucket's graph before the clock starts
        rng = np.random.default_rng(0)
        L = int(opts.seconds * ANALYSIS_RATE)
        audio = []
        for s in range(n):
            start = int(rng.integers(0, max(len(speech) - 1, 1)))
            audio.append(np.roll(np.tile(speech, int(np.ceil(L / len(speech))) + 1), -start)[:L].astype(np.float32))
        offsets = [float(rng.uniform(0, opts.stagger_s)) for _ in range(n)]
        ahead = [engine.lookahead_s(sid) for sid in sids]
        children = engine.pids
        cuda = engine.stats()["device"] != "cpu"
        n_chunk = int(round(opts.chunk_s * ANALYSIS_RATE))
        pos, fed_all = [0] * n, [False] * n
        frames, late, nbytes = [0] * n, [0] * n, [0] * n
        first: list[float | None] = [None] * n
        latencies: list[np.ndarray] = []
        memory: list[dict] = []
        cpu_start = engine.cpu_seconds()
        t0 = time.monotonic() + 0.2
        t_audio0 = [t0 + o for o in offsets]  # wall time of each stream's audio time 0
        next_sample = time.monotonic()
        live = set(range(n))
        while live:
            now = time.monotonic()
            if opts.memory_every_s > 0 and now >= next_sample:
                memory.append(_memory_sample(now - t0, opts.speed, children, cuda))
                memory[-1]["frames_rendered"] = engine.stats()["frames_rendered"]
                if opts.verbose:
                    print("memory", memory[-1], flush=True)
                next_sample += opts.memory_every_s
            for s in range(n):
                if fed_all[s]:
                    continue
                due = int((now - t_audio0[s]) * opts.speed / opts.chunk_s)  # chunks that have "arrived"
                while due > pos[s] // n_chunk and pos[s] < L:
                    piece = audio[s][pos[s]:pos[s] + n_chunk]
                    engine.feed(sids[s], AudioIn(AudioChunk(piece[None, :], ANALYSIS_RATE, pos[s] / ANALYSIS_RATE)))
                    pos[s] += len(piece)
                if pos[s] >= L:
                    engine.feed(sids[s], EndInput())
                    fed_all[s] = True
            for s in list(live):
                chunks = engine.read(sids[s])
                t = time.monotonic()
                for c in chunks:
                    if c.num_frames:
                        lat = t - (t_audio0[s] + (c.first_frame + np.arange(c.num_frames)) / opts.fps / opts.speed)
                        latencies.append(lat)
                        late[s] += int(np.count_nonzero(lat > ahead[s] + opts.budget_s))
                        frames[s] += c.num_frames
                        first[s] = first[s] or t
                    nbytes[s] += len(c.fmp4 or b"")
                if fed_all[s] and engine.done(sids[s]):
                    live.discard(s)
            engine.wait(max(0.0, opts.chunk_s / 2 / opts.speed - (time.monotonic() - now)))
        wall = time.monotonic() - t0
        cpu_end = engine.cpu_seconds()
    finally:
        engine.close()
    stats = engine.stats()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_self = (cpu1[0].ru_utime + cpu1[0].ru_stime) - (cpu0[0].ru_utime + cpu0[0].ru_stime)
    cpu_workers = (cpu1[1].ru_utime + cpu1[1].ru_stime) - (cpu0[1].ru_utime + cpu0[1].ru_stime)
    lat = np.concatenate(latencies) if latencies else np.zeros(0)
    ttff = np.array([f - a for f, a in zip(first, t_audio0) if f is not None])
    stream_s = n * opts.seconds
    result = {
        "options": asdict(opts),
        "device": stats["device"],
        "lookahead_s": round(float(np.mean(ahead)), 3),
        "frames_expected_per_stream": int(np.ceil(opts.seconds * opts.fps - 1e-9)),
        "frames_min": min(frames),
        "frames_total": sum(frames),
        "late_frames": sum(late),
        "late_fraction": sum(late) / max(sum(frames), 1),
        "latency_p50_s": _percentile(lat, 50),
        "latency_p95_s": _percentile(lat, 95),
        "latency_max_s": float(lat.max()) if lat.size else None,
        "ttff_p50_s": _percentile(ttff, 50),
        "ttff_p95_s": _percentile(ttff, 95),
        "per_stream_fps": sum(frames) / n / max(opts.seconds, 1e-9),
        "launches": stats["launches"],
        "frames_per_launch_mean": stats["frames_per_launch_mean"],
        "launch_host_ms_mean": stats["launch_host_ms_mean"],
        "wall_s": wall,
        "cpu_cores_main": cpu_self / wall,  # clients, scheduling loop, frame dispatch (and twin mouths)
        "cpu_cores_workers": cpu_workers / wall,  # motion + encoder processes (joined, so counted)
        # Per stream and second of its speech: where the CPU goes (the live ceiling's limit).
        "cpu_per_stream_s": {"motion": (cpu_end["workers"] - cpu_start["workers"]) / stream_s,
                             "encode": (cpu_end["encoders"] - cpu_start["encoders"]) / stream_s,
                             "scheduler": cpu_self / stream_s},
        "bytes_per_stream": float(np.mean(nbytes)),
        "encoded_mib": round(sum(nbytes) / 2**20, 2),
        "memory": memory,
    }
    if cuda:
        result["gpu_render_ms_mean"] = stats["gpu_render_ms_mean"]
        result["gpu_busy_fraction"] = stats["gpu_render_s"] / wall
        result["peak_vram_gib"] = stats["peak_vram_gib"]
    return result
