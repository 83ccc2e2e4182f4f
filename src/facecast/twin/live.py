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

__all__ = ["TwinLoadTestOptions", "TwinStream", "run_twin_loadtest", "stream_twin"]


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


class TwinStream:
    """One live twin stream: push speech as it arrives, take frames (with their audio) as soon as
    their look-ahead has arrived. The twin's answer to ``facecast.stream.StreamSession``.

    Clock: input is placed back to back on the stream's timeline (a chunk's own ``start`` is
    ignored); ``advance_to(t)`` says "nothing more arrived before t" and fills silence, so the
    avatar keeps moving (the background loop, blinks) with a closed mouth while nobody speaks.
    Frame f (shown at f / fps) is ready once audio up to f / fps + ``lookahead_s`` is in.
    ``interrupt()`` (barge-in) drops the audio not yet turned into frames; the mouth then follows
    the new input (or silence) from the next frame. Memory is flat: both audio tapes forget what
    lies behind the model's left context.

    Output audio is the input resampled to ``audio_rate`` (mono); ``poll()`` returns
    ``StreamChunk``s (``motion`` is None: a twin has no motion parameters), with fragmented-MP4
    bytes when ``encode`` is set.
    """

    def __init__(self, twin: Twin, *, fps: float = 25.0, audio_rate: int = 48000, encode: bool = False,
                 max_frames: int = 25, max_lead_s: float | None = None) -> None:
        from facecast.audio import Resampler
        from facecast.buffer import SampleBuffer

        self.twin, self.fps, self.audio_rate = twin, float(fps), int(audio_rate)
        self.lookahead_s = lookahead_s(twin, self.fps)
        self.max_frames = max_frames
        # Paced by a clock (advance_to): frames are made at most max_lead_s ahead of it, as the
        # portrait session does; None: as soon as their audio is in (load tests, files).
        self.max_lead_s = max_lead_s
        self._clock: float | None = None
        self._mouth = MouthStream(twin, self.fps)
        self._out = SampleBuffer(1)  # output audio at audio_rate, indexed by stream sample
        self._r16 = Resampler(ANALYSIS_RATE, mono=True)
        self._rout = Resampler(self.audio_rate, mono=True)
        self._t = 0.0  # timeline position of the next input sample (s)
        self._in_rate: int | None = None
        self._next = 0  # next frame to render
        self._ended = False
        self._closed = False
        self._writer = None
        if encode:
            from facecast.media import Fmp4SegmentWriter

            self._writer = Fmp4SegmentWriter(fps=self.fps, width=twin.size[0], height=twin.size[1],
                                             audio_rate=self.audio_rate, fragment_frames=5)

    @property
    def input_end(self) -> float:
        """Seconds of input (audio and silence) on the timeline so far."""
        return self._t

    @property
    def done(self) -> bool:
        """Input ended and every frame of it has been returned."""
        return self._ended and self._next >= self._input_frames()

    def _input_frames(self) -> int:
        """Frames the input so far covers (the last one may be partly covered)."""
        return int(np.ceil(self._t * self.fps - 1e-9))

    def push_speech(self, audio, phones=()) -> None:
        """Synthesised speech (the driver's text path): the twin's mouth comes from the audio
        alone, so the phones are not needed."""
        self.push_audio(audio)

    def push_audio(self, chunk) -> None:
        """Live PCM (an AudioChunk, any rate, 1-2 channels), appended at the end of the timeline."""
        from facecast.stream import _check_audio
        from facecast.types import AudioChunk

        chunk = _check_audio(chunk)
        if self._ended:
            raise ValueError("push_audio after end_input()")
        if self._in_rate is not None and chunk.sample_rate != self._in_rate:
            self._flush_resamplers()  # a new source rate starts new resampler runs
        self._in_rate = chunk.sample_rate
        # Back to back on the timeline: the resamplers see one contiguous run per source rate.
        at = AudioChunk(chunk.samples, chunk.sample_rate, self._t)
        a = self._r16.feed(at)
        o = self._rout.feed(at)
        self._mouth.push(a.start, a.samples[0])
        self._put_out(o)
        self._t += chunk.duration

    def _flush_resamplers(self) -> None:
        a, o = self._r16.flush(), self._rout.flush()
        self._mouth.push(a.start, a.samples[0])
        self._put_out(o)

    def _put_out(self, o) -> None:
        self._out.truncate(int(round(o.start * self.audio_rate)))  # pads a gap, cuts an overlap
        self._out.append(o.samples[:1])

    def advance_to(self, t: float) -> None:
        """The clock is at ``t`` s: input that has not arrived before t is silence."""
        self._clock = t
        if t > self._t + 1e-9:
            from facecast.types import AudioChunk

            rate = self._in_rate or ANALYSIS_RATE
            n = int(round((t - self._t) * rate))
            if n > 0:
                self.push_audio(AudioChunk(np.zeros((1, n), np.float32), rate, 0.0))

    def end_input(self) -> None:
        """No more input: the remaining frames are rendered without waiting for look-ahead."""
        if not self._ended:
            self._flush_resamplers()
            self._ended = True

    def interrupt(self) -> None:
        """Barge-in: forget input not yet turned into frames; the timeline resumes there."""
        self._flush_resamplers()
        t = self._next / self.fps
        self._mouth.forget_after(t)
        self._out.truncate(min(self._out.end, int(round(t * self.audio_rate))))
        self._t = t

    def ready(self) -> int:
        """Frames that could be rendered now."""
        if self._ended:
            last = self._input_frames()
        else:
            last = int(np.floor((self._t - self.lookahead_s) * self.fps + 1e-9)) + 1
        if self._clock is not None and self.max_lead_s is not None:
            last = min(last, int(np.floor((self._clock + self.max_lead_s) * self.fps + 1e-9)) + 1)
        return max(0, last - self._next)

    def poll(self) -> list:
        """Render the ready frames (one batch of at most ``max_frames``) as StreamChunks."""
        from facecast.stream import StreamChunk
        from facecast.types import AudioChunk

        out = []
        while (n := min(self.ready(), self.max_frames)) > 0:
            f0 = self._next
            mouth = self._mouth.frames(f0, n)
            video = self.twin.render(mouth, f0, self.fps)
            i0, i1 = int(round(f0 / self.fps * self.audio_rate)), int(round((f0 + n) / self.fps * self.audio_rate))
            audio = AudioChunk(self._out.get(i0, i1), self.audio_rate, f0 / self.fps)
            self._out.trim(i1)
            fmp4 = self._writer.write(video, audio) if self._writer is not None else None
            self._next += n
            out.append(StreamChunk(video, audio, fmp4, None))
        return out

    def close(self) -> list:
        """end_input + the remaining frames; the last chunk carries the end of the fMP4 (a chunk
        without frames when every frame was already out). The stream cannot be used afterwards."""
        from dataclasses import replace as _replace

        from facecast.stream import StreamChunk
        from facecast.types import AudioChunk, VideoFrames

        if self._closed:
            return []
        self.end_input()
        self._clock = None  # the rest now, not waiting for the clock
        chunks = self.poll()
        if self._writer is not None:
            tail = self._writer.close()
            self._writer = None
            if chunks:
                chunks[-1] = _replace(chunks[-1], fmp4=(chunks[-1].fmp4 or b"") + tail)
            elif tail:
                w, h = self.twin.size
                empty = VideoFrames(torch.zeros((0, h, w, 3), dtype=torch.uint8), self.fps, self._next)
                chunks.append(StreamChunk(empty, AudioChunk(np.zeros((1, 0), np.float32), self.audio_rate,
                                                            self._next / self.fps), tail, None))
        self._closed = True
        return chunks


async def stream_twin(twin: Twin, source, *, fps: float = 25.0, audio_rate: int = 48000, encode: bool = False,
                      voice=None, realtime: bool = False):
    """``facecast.stream.stream`` for a loaded twin (same driver: text, live PCM, barge-in; paced
    by the wall clock when ``realtime``)."""
    from facecast.options import StreamOptions
    from facecast.stream import stream

    opts = StreamOptions(fps=fps, audio_rate=audio_rate, encode=encode, realtime=realtime)
    async for chunk in stream(twin, source, options=opts, voice=voice):
        yield chunk


def lookahead_s(twin: Twin, fps: float) -> float:
    """Audio a frame waits for: the mouth model's feature window plus its smoothing frames."""
    c = twin.mouth_model.config
    return float(c.lookahead_s + c.smooth_frames / fps)


def run_twin_loadtest(twin: Twin, speech16k: np.ndarray, opts: TwinLoadTestOptions = TwinLoadTestOptions()) -> dict:
    """Simulate ``opts.streams`` live clients on ``twin`` (speech16k: mono float32 at 16 kHz,
    looped per stream at a different offset). Returns overall figures: frames delivered (and
    expected), late fraction, latency p50/p95/max, time to first frame p50/p95, batch sizes and
    where the scheduler's time went."""
    from facecast.engine import LoadTestOptions, _EncoderPool

    if twin.size[0] != twin.size[1]:
        raise ValueError("the load test's encoders expect square frames")
    fps = opts.fps
    ahead = lookahead_s(twin, fps)
    enc_opts = LoadTestOptions(streams=opts.streams, seconds=opts.seconds, size=twin.size[0], fps=fps,
                               encode=opts.encode, preset=opts.preset, lookahead_s=ahead, budget_s=opts.budget_s)
    pool = _EncoderPool(mp.get_context("spawn"), opts.encoders, enc_opts, i420=False)  # RGB frames
    twin.warm_up()  # a serving process warms up once at start, before clients arrive
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
        "frames_expected": opts.streams * n_frames,
        "batch_mean": round(float(np.mean(batches)), 1) if batches else 0,
        "rounds": len(batches),
        "mouth_s": round(t_mouth, 2),
        "launch_s": round(t_launch, 2),
        "deliver_s": round(t_deliver, 2),
        "device_wait_s": round(waited[0], 2),
        "wall_s": round(wall, 1),
        "encoded_mib": round(sum(r["bytes"] for r in results.values()) / 2**20, 2),
    }
