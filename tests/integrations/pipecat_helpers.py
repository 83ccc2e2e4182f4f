"""A real pipecat pipeline around one FacecastVideoService for the tests: a sink that records
every frame with its arrival time, real speech as TTS frames, and a mouth-region measure."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest

from conftest import media


def need_pipecat():
    """Skip without pipecat, except under CI=true, where its absence fails (CI installs it)."""
    import importlib.util

    if importlib.util.find_spec("pipecat") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pipecat is not installed under CI (scripts/setup.sh installs the pipecat extra)")
        pytest.skip("pipecat is not installed (pip install 'pipecat-ai>=1.14,<2')")


def speech_pcm(seconds: float, rate: int = 24000, name: str = "audio/jfk_en.flac") -> bytes:
    """Real speech resampled to ``rate``, mono int16 (what a TTS service emits)."""
    from facecast.audio import load_audio

    a = load_audio(media(name), sample_rate=rate, mono=True)
    n = int(round(seconds * rate))
    assert a.samples.shape[1] >= n
    return (np.clip(a.samples[0, :n], -1, 1) * 32767).round().astype("<i2").tobytes()


def tts_frames(pcm: bytes, rate: int = 24000, chunk_s: float = 0.02):
    from pipecat.frames.frames import TTSAudioRawFrame

    step = int(round(chunk_s * rate)) * 2
    return [TTSAudioRawFrame(pcm[i:i + step], rate, 1) for i in range(0, len(pcm), step)]


def run_pipeline(service, script, *, out_rate: int = 24000, timeout: float = 120.0):
    """Run Pipeline([service, sink]) under a PipelineWorker + WorkerRunner; ``script(queue, marks)``
    is an async function that queues frames (``await queue(frame)``) and notes wall times in
    ``marks``; an EndFrame follows it. Returns ([(monotonic time, frame) downstream of the
    service], [(time, frame) upstream], marks)."""
    from pipecat.frames.frames import EndFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.workers.runner import WorkerRunner

    class Sink(FrameProcessor):
        def __init__(self):
            super().__init__()
            self.down: list = []

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if direction == FrameDirection.DOWNSTREAM:
                self.down.append((time.monotonic(), frame))
            await self.push_frame(frame, direction)

    class Source(FrameProcessor):
        def __init__(self):
            super().__init__()
            self.up: list = []

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if direction == FrameDirection.UPSTREAM:
                self.up.append((time.monotonic(), frame))
            await self.push_frame(frame, direction)

    async def main():
        source, sink = Source(), Sink()
        # Opening the avatar (models, renderer) takes seconds; pipecat's 20 s default is short on a
        # loaded CI machine.
        worker = PipelineWorker(Pipeline([source, service, sink]), params=PipelineParams(audio_out_sample_rate=out_rate),
                                cancel_on_idle_timeout=False, setup_timeout_secs=90)
        started = asyncio.Event()

        @worker.event_handler("on_pipeline_started")
        async def _started(worker, frame):
            started.set()

        marks: dict = {}

        async def drive():
            await asyncio.wait_for(started.wait(), timeout=60)
            marks["start"] = time.monotonic()
            await script(worker.queue_frame, marks)
            await worker.queue_frame(EndFrame())

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await asyncio.wait_for(asyncio.gather(runner.run(), drive()), timeout=timeout)
        return sink.down, source.up, marks

    return asyncio.run(main())


def of_type(frames, cls, exact: bool = False):
    return [(t, f) for t, f in frames if (type(f) is cls if exact else isinstance(f, cls))]


def mouth_box(portrait, pad: int = 2):
    """(x0, y0, x1, y1) around the lips of a prepared Portrait, in its pixels."""
    from facecast import landmarks as L

    pts = portrait.face.points[list(L.LIPS_OUTER_UPPER + L.LIPS_OUTER_LOWER), :2]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    return int(x0) - pad, int(y0) - pad, int(np.ceil(x1)) + pad + 1, int(np.ceil(y1)) + pad + 1


def mouth_changes(images, box) -> np.ndarray:
    """Mean absolute change of the mouth region from each frame to the next (grey levels)."""
    x0, y0, x1, y1 = box
    crops = []
    for f in images:
        w, h = f.size
        crops.append(np.frombuffer(f.image, np.uint8).reshape(h, w, 3)[y0:y1, x0:x1].astype(np.float32))
    return np.array([np.abs(b - a).mean() for a, b in zip(crops, crops[1:])])
