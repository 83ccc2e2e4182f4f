"""Many live twin streams on one device, and the load test that counts them.

One scheduler loop (this process) owns the device. Each simulated client pushes real speech in
``chunk_s`` pieces at wall-clock pace into its stream's ``MouthStream``; whenever frames have
their audio look-ahead, the loop predicts their mouth shapes, then renders the ready frames of
*all* streams in one ``Twin.render_indexed`` batch, fetches them once, and hands each stream's
frames to its own H.264/fMP4 encoder in the engine's encoder processes (shared-memory ring, so
x264 runs on other cores and pixels are never pickled).

Why no worker processes for the mouth model (unlike the portrait engine's phone recogniser):
the twin's audio model is a few small convolutions over log-mel, ~1-2 ms per stream update,
so the scheduler thread can afford it for dozens of streams.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from facecast.twin.generate import ANALYSIS_RATE, MouthStream, Twin

__all__ = ["TwinLoadTestOptions", "run_twin_loadtest"]


@dataclass(frozen=True)
class TwinLoadTestOptions:
    """streams: simulated clients; seconds: how long each talks; stagger_s: start spacing.
    chunk_s: client audio chunk. max_frames: most frames per stream per scheduling round.
    mouth_threads: torch CPU threads for the mouth model (the rest of the cores encode).
    budget_s: a frame is late when delivered after its audio time + the model's look-ahead
    + budget_s. encoders: encoder processes (libx264 ``preset``)."""

    streams: int = 16
    seconds: float = 20.0
    fps: float = 25.0
    stagger_s: float = 0.25
    chunk_s: float = 0.02
    max_frames: int = 25
    budget_s: float = 0.15
    encoders: int = 8
    encode: bool = True
    preset: str = "ultrafast"
    mouth_threads: int = 4


def lookahead_s(twin: Twin, fps: float) -> float:
    """Audio a frame waits for: the mouth model's feature window plus its smoothing frames."""
    c = twin.mouth_model.config
    return float(c.lookahead_s + c.smooth_frames / fps)


def run_twin_loadtest(twin: Twin, speech16k: np.ndarray, opts: TwinLoadTestOptions = TwinLoadTestOptions()) -> dict:
    """Simulate ``opts.streams`` live clients on ``twin`` (speech16k: mono float32 at 16 kHz,
    looped per stream at a different offset). Returns per-stream and overall figures: frames,
    fps, late frames, latency p50/p95/max, time to first frame p50/p95, device batch sizes."""
    from facecast.engine import LoadTestOptions, _EncoderPool

    if twin.size[0] != twin.size[1]:
        raise ValueError("the load test's encoders expect square frames")
    fps = opts.fps
    ahead = lookahead_s(twin, fps)
    enc_opts = LoadTestOptions(streams=opts.streams, seconds=opts.seconds, size=twin.size[0], fps=fps,
                               encode=opts.encode, preset=opts.preset, lookahead_s=ahead, budget_s=opts.budget_s)
    pool = _EncoderPool(mp.get_context("spawn"), opts.encoders, enc_opts)
    pool.wait_ready()

    n_frames = int(opts.seconds * fps)
    total = int(opts.seconds * ANALYSIS_RATE)
    rng = np.random.default_rng(0)
    offsets = rng.integers(0, max(1, len(speech16k)), opts.streams)
    audio = [np.resize(np.roll(speech16k, -int(o)), total).astype(np.float32) for o in offsets]
    streams = [MouthStream(twin, fps) for _ in range(opts.streams)]
    pushed = [0] * opts.streams  # samples pushed
    next_frame = [0] * opts.streams
    chunk = int(round(opts.chunk_s * ANALYSIS_RATE))
    batches: list[int] = []
    t_mouth = t_launch = t_deliver = 0.0
    waited = [0.0]  # time spent waiting for the device
    cuda = twin.device.type == "cuda"
    # The mouth model runs on this process's CPU threads; leave the other cores to the encoders.
    threads = torch.get_num_threads()
    torch.set_num_threads(opts.mouth_threads)

    def gather(now: float) -> list:
        """Ready frames of every stream: (stream, first frame, mouth [n,53,2], background idx [n])."""
        work = []
        for s in range(opts.streams):
            if next_frame[s] >= n_frames or now < starts[s]:
                continue
            arrived = min(total, int((now - starts[s]) / opts.chunk_s) * chunk)  # whole chunks so far
            if arrived > pushed[s]:
                streams[s].push(pushed[s] / ANALYSIS_RATE, audio[s][pushed[s] : arrived])
                pushed[s] = arrived
            t_ok = arrived / ANALYSIS_RATE - ahead  # frames up to t_ok have their look-ahead
            last = n_frames if arrived >= total else min(n_frames, int(np.floor(t_ok * fps)) + 1)
            n = min(last - next_frame[s], opts.max_frames)
            if n <= 0:
                continue
            f0 = next_frame[s]
            work.append((s, f0, streams[s].frames(f0, n), twin.background_index(f0 + np.arange(n), fps)))
            next_frame[s] += n
        return work

    def launch(work: list):
        """Render a round on the device and start its copy to the host; returns (work, host
        frames, event). On CUDA nothing here waits: the copy lands in pinned memory behind the
        render, and the event says when it is there."""
        frames = twin.render_indexed(np.concatenate([w[2] for w in work]), np.concatenate([w[3] for w in work]))
        if not cuda:
            return work, frames.numpy(), None
        host = torch.empty(frames.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(frames, non_blocking=True)
        ev = torch.cuda.Event()
        ev.record()
        return work, host, ev

    def deliver(round_) -> None:
        work, host, ev = round_
        if ev is not None:
            tw = time.perf_counter()
            ev.synchronize()  # the previous round; the current one keeps the GPU busy meanwhile
            waited[0] += time.perf_counter() - tw
            host = host.numpy()
        k = 0
        for s, f0, mouth, _ in work:
            n = len(mouth)
            for a in range(0, n, 8):  # the encoder ring's slots hold 8 frames
                b = min(n, a + 8)
                a0 = int(round((f0 + a) / fps * ANALYSIS_RATE))
                a1 = int(round((f0 + b) / fps * ANALYSIS_RATE))
                pool.send(s, f0 + a, host[k + a : k + b], audio[s][a0:a1][None], ANALYSIS_RATE)
            k += n

    t0 = time.monotonic() + 0.5
    starts = {s: t0 + s * opts.stagger_s for s in range(opts.streams)}
    pool.start(starts)
    pending = None
    try:
        while any(f < n_frames for f in next_frame) or pending is not None:
            tm = time.perf_counter()
            work = gather(time.monotonic())
            t_mouth += time.perf_counter() - tm
            launched = None
            tl = time.perf_counter()
            if work:
                launched = launch(work)
                batches.append(sum(len(w[2]) for w in work))
            td = time.perf_counter()
            if pending is not None:
                deliver(pending)
            t_launch += td - tl
            t_deliver += time.perf_counter() - td
            pending = launched
            if not work and pending is None:
                time.sleep(0.002)
    finally:
        torch.set_num_threads(threads)
    results = pool.finish()
    wall = time.monotonic() - t0

    lat = np.concatenate([np.asarray(r["latencies"]) for r in results.values()])
    ttff = np.array([r["first_delivery"] - starts[s] for s, r in results.items()])
    frames_total = sum(r["frames"] for r in results.values())
    late = sum(r["late"] for r in results.values())
    return {
        "options": asdict(opts),
        "device": str(twin.device),
        "size": list(twin.size),
        "lookahead_s": round(ahead, 3),
        "streams": opts.streams,
        "frames": frames_total,
        "late_fraction": round(late / max(1, frames_total), 4),
        "latency_p50_s": round(float(np.percentile(lat, 50)), 3),
        "latency_p95_s": round(float(np.percentile(lat, 95)), 3),
        "latency_max_s": round(float(lat.max()), 3),
        "ttff_p50_s": round(float(np.percentile(ttff, 50)), 3),
        "ttff_p95_s": round(float(np.percentile(ttff, 95)), 3),
        "fps_per_stream": round(frames_total / opts.streams / max(1e-9, wall - opts.stagger_s * (opts.streams - 1) / 2), 1),
        "batch_mean": round(float(np.mean(batches)), 1) if batches else 0,
        "rounds": len(batches),
        "mouth_s": round(t_mouth, 2),
        "launch_s": round(t_launch, 2),
        "deliver_s": round(t_deliver, 2),
        "device_wait_s": round(waited[0], 2),
        "wall_s": round(wall, 1),
        "encoded_mib": round(sum(r["bytes"] for r in results.values()) / 2**20, 2),
    }
