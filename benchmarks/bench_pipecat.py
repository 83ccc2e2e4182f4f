"""The pipecat avatar (facecast.integrations.pipecat) on this machine: frames out per second
against real time, late frames, CPU, and the time from a TTS utterance's first audio frame to its
first speech frame out. Not a test: numbers depend on the machine and its load.

    python benchmarks/bench_pipecat.py paced    [--size 256] [--utterances 8] [--fps 25]
    python benchmarks/bench_pipecat.py capacity [--size 256] [--seconds 20] [--fps 25]

paced: a real pipecat pipeline (PipelineWorker + WorkerRunner, no transport: a sink records what
arrives and when) runs FacecastVideoService on sam_512.jpg; ``--utterances`` times it idles 1 s,
then gets 2.5 s of real speech (speech60s_en.wav, 24 kHz) as a TTS does, a burst of 20 ms
TTSAudioRawFrames. Reports frames out per wall second (the stream's own rate when it keeps up),
frames later than one frame, the largest lateness, CPU seconds of this process per stream second,
and first speech frame - first TTS audio frame (p50 / p95 / max).
capacity: the same stream (AvatarStream, what the service runs on its worker thread) driven by a
simulated clock as fast as it goes: how many times real time this CPU draws it.
"""

import argparse
import asyncio
import math
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np

MEDIA = os.environ.get("FACECAST_MEDIA", str(Path(__file__).resolve().parents[2] / "shared" / "media"))
RATE = 24000


def speech_pcm(start_s: float, seconds: float) -> bytes:
    from facecast.audio import load_audio

    a = load_audio(f"{MEDIA}/audio/speech60s_en.wav", sample_rate=RATE, mono=True).samples[0]
    x = a[int(start_s * RATE):int((start_s + seconds) * RATE)]
    return (np.clip(x, -1, 1) * 32767).round().astype("<i2").tobytes()


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q / 100 * len(xs)) - 1))]


def paced(args) -> None:
    from pipecat.frames.frames import EndFrame, OutputImageRawFrame, TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.workers.runner import WorkerRunner

    from facecast.integrations.avatar import AvatarOptions, prepare_face
    from facecast.integrations.pipecat import FacecastVideoService

    options = AvatarOptions(size=args.size, fps=args.fps)
    service = FacecastVideoService(face=prepare_face(f"{MEDIA}/portrait/sam_512.jpg", options), options=options)

    class Sink(FrameProcessor):
        def __init__(self):
            super().__init__()
            self.got = []

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if direction == FrameDirection.DOWNSTREAM and isinstance(frame, (OutputImageRawFrame, TTSAudioRawFrame)):
                self.got.append((time.monotonic(), frame))
            await self.push_frame(frame, direction)

    async def main():
        sink = Sink()
        worker = PipelineWorker(Pipeline([service, sink]), params=PipelineParams(audio_out_sample_rate=RATE),
                                cancel_on_idle_timeout=False)
        started = asyncio.Event()

        @worker.event_handler("on_pipeline_started")
        async def _started(worker, frame):
            started.set()

        feeds = []
        marks = {}

        async def drive():
            await started.wait()
            marks["t0"], marks["cpu0"] = time.monotonic(), cpu_s()
            for u in range(args.utterances):
                await asyncio.sleep(1.0)
                pcm = speech_pcm(2.0 + 3.0 * u, 2.5)
                feeds.append(time.monotonic())
                await worker.queue_frame(TTSStartedFrame())
                for i in range(0, len(pcm), 2 * RATE // 50):
                    await worker.queue_frame(TTSAudioRawFrame(pcm[i:i + 2 * RATE // 50], RATE, 1))
                await worker.queue_frame(TTSStoppedFrame())
                await asyncio.sleep(2.5)
            await asyncio.sleep(0.5)
            marks["t1"], marks["cpu1"] = time.monotonic(), cpu_s()
            await worker.queue_frame(EndFrame())

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await asyncio.gather(runner.run(), drive())
        return sink.got, feeds, marks

    got, feeds, marks = asyncio.run(main())
    images = [t for t, f in got if isinstance(f, OutputImageRawFrame) and marks["t0"] <= t <= marks["t1"]]
    speech = [t for t, f in got if isinstance(f, TTSAudioRawFrame)]
    wall = marks["t1"] - marks["t0"]
    firsts = [min(t for t in speech if t >= f) - f for f in feeds]
    st = service.stats
    print(f"paced size={args.size} fps={args.fps}: {len(images)} frames in {wall:.1f} s = {len(images) / wall:.2f} "
          f"frames/s ({len(images) / wall / args.fps:.3f} x real time); late frames {st['late_frames']} of "
          f"{st['frames']} (max {st['max_late_s'] * 1000:.0f} ms); CPU {(marks['cpu1'] - marks['cpu0']) / wall:.2f} "
          f"s per stream s; first speech frame after first TTS audio: p50 {statistics.median(firsts) * 1000:.0f} / "
          f"p95 {pct(firsts, 95) * 1000:.0f} / max {max(firsts) * 1000:.0f} ms (n={len(firsts)}); "
          f"load {os.getloadavg()[0]:.1f}")


def capacity(args) -> None:
    import torch

    from facecast.integrations.avatar import AvatarOptions, AvatarStream, pcm_to_chunk, prepare_face

    torch.set_num_threads(1)  # as the service does
    options = AvatarOptions(size=args.size, fps=args.fps)
    stream = AvatarStream(prepare_face(f"{MEDIA}/portrait/sam_512.jpg", options), options, RATE)
    stream.tick(0.0)
    stream.put(pcm_to_chunk(speech_pcm(2.0, args.seconds), RATE, 1))
    n, t = 0, 0.0
    c0, w0 = cpu_s(), time.perf_counter()
    while n < args.seconds * args.fps:
        t += 1.0 / args.fps
        n += len(stream.tick(t))
    wall, cpu = time.perf_counter() - w0, cpu_s() - c0
    stream.close()
    print(f"capacity size={args.size} fps={args.fps}: {n} frames of speech in {wall:.2f} s wall = {n / wall:.1f} "
          f"frames/s = {n / args.fps / wall:.2f} x real time (CPU {cpu / (n / args.fps):.2f} s per stream s); "
          f"load {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("paced", "capacity"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    paced(args) if args.mode == "paced" else capacity(args)


if __name__ == "__main__":
    main()
