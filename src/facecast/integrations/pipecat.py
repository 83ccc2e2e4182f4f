"""A local facecast avatar for any pipecat voice bot: ``FacecastVideoService``.

Put it between the TTS service and the output transport, where pipecat's cloud avatars (Simli,
Tavus, HeyGen) go:

    avatar = FacecastVideoService(face="me.jpg", options=AvatarOptions(size=512, fps=30))
    pipeline = Pipeline([transport.input(), stt, user_agg, llm, tts, avatar, transport.output(),
                         assistant_agg])

Frames in: ``TTSAudioRawFrame`` (the bot's voice, int16 PCM at any rate, mono or stereo) is taken
and not passed on as it came: the avatar lip-syncs it (echo mode, facecast.live) and hands it back
in step with the video. ``InterruptionFrame``: barge-in. Every other frame passes through; those
going downstream behind speech that has not been shown yet wait for it (as the output transport
orders them behind queued audio), so ``TTSStoppedFrame`` leaves when the last word does.

Frames out, one pair per video frame at ``options.fps``, from the pipeline's start to its end:
``OutputImageRawFrame`` (RGB, ``options.size`` square for a portrait; ``pts`` = frame time in ns)
and its audio: a ``TTSAudioRawFrame`` while the bot speaks, else an ``OutputAudioRawFrame`` of
silence (``options.idle_audio``) or nothing. Between utterances the face idles (blinks, head drift,
closed mouth). The voice leaves ~``lookahead_s + jitter_s + margin_s`` (~0.18 s by default) after
it came in, with its frames.

Interruptions: speech not yet turned into frames is dropped at once, frames already drawn but not
yet shown leave muted, the mouth eases to rest (``StreamOptions.interrupt_fade_s``), and the held
frames are dropped as pipecat drops queued frames (uninterruptible ones are passed on at once).

Heavy work (face analysis, phone recognition, rendering) runs on one worker thread per service; the
event loop only moves bytes. The transport needs ``video_out_enabled=True``,
``video_out_is_live=True``, ``video_out_width/height`` = the frame size and
``video_out_framerate`` = ``options.fps`` (see docs/pipecat.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor

try:
    from pipecat.frames.frames import (
        CancelFrame,
        EndFrame,
        Frame,
        InterruptionFrame,
        OutputAudioRawFrame,
        OutputImageRawFrame,
        StartFrame,
        SystemFrame,
        TTSAudioRawFrame,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
    from pipecat.services.ai_service import AIService
    from pipecat.services.settings import ServiceSettings
except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        f"facecast.integrations.pipecat needs pipecat ({e}): pip install 'pipecat-ai>=1.0,<2' "
        "(facecast's `pipecat` extra; scripts/setup.sh installs it)") from e

from ..types import Portrait
from .avatar import AvatarFrame, AvatarOptions, AvatarStream, Mark, check_engine, pcm_to_chunk, prepare_face

__all__ = ["AvatarOptions", "FacecastVideoService"]

log = logging.getLogger(__name__)

_TOL_S = 0.001  # a held frame leaves once the output is within this of its position (s): the
#                 overlap below which AvatarStream does not count a frame as speech


def output_rate(options: AvatarOptions, pipeline_rate: int) -> int:
    """The rate of the audio passed on: the option, else the pipeline's when AAC can carry it,
    else 48 kHz (the transport resamples)."""
    from ..media import AAC_SAMPLE_RATES

    if options.audio_rate is not None:
        return options.audio_rate
    return pipeline_rate if pipeline_rate in AAC_SAMPLE_RATES else 48000


class FacecastVideoService(AIService):
    """A facecast avatar as a pipecat video service (see the module docstring).

    face: a portrait (image path or RGB array, a prepared ``Portrait``) or a twin (a ``.twin`` file,
        told by its content, or a loaded ``Twin``). Prepared here, so a bad face fails now with
        facecast's InputError / NoFaceError naming the file, not in the middle of a call (this
        takes ~0.2-1 s: face detection or loading the twin).
    options: AvatarOptions (size, fps, device, look-ahead, jitter, margin, audio rate, idle audio).
    engine: a ``facecast.live.Engine`` shared by many bots (batched rendering on one GPU, motion in
        worker processes; ``EngineOptions(size=options.size, i420=False)``); None: this service
        draws on its own worker thread.
    **kwargs: passed to pipecat's AIService (``name`` ...).

    ``stats``: frames pushed, frames that left later than one frame after their time, the
    largest lateness (s).
    """

    def __init__(self, *, face, options: AvatarOptions = AvatarOptions(), engine=None, **kwargs) -> None:
        if not isinstance(options, AvatarOptions):
            raise TypeError(f"options must be a facecast AvatarOptions, got {type(options).__name__}")
        face = prepare_face(face, options)
        if engine is not None:
            check_engine(engine, options.size)
        super().__init__(settings=ServiceSettings(model=None), **kwargs)
        self._options = options
        self._face = face
        self._engine = engine
        self._stream: AvatarStream | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._clock_task: asyncio.Task | None = None
        self._outbox: deque[AvatarFrame] = deque()      # drawn, waiting for their time
        self._held: deque[tuple[Mark, Frame]] = deque()  # frames waiting for the output to reach their mark
        self._audio_rate = options.audio_rate or 48000
        self._next_index = 0     # the next frame to push
        self._epoch = 0          # interruptions seen
        self._wake = asyncio.Event()  # speech came in or an interruption was applied: tick now
        self._mute_before = 0    # frames below this were drawn from input an interruption dropped
        self._muting = False     # an interruption is being applied: push nothing as speech
        self._context_id: str | None = None
        self._late = 0
        self._max_late = 0.0
        self._warned_late = False

    # -- pipecat lifecycle ---------------------------------------------------------------------

    def can_generate_metrics(self) -> bool:
        return False

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the frames: the transport's ``video_out_width/height``."""
        if isinstance(self._face, Portrait):
            return int(self._face.image.shape[1]), int(self._face.image.shape[0])
        return tuple(self._face.size)

    @property
    def stats(self) -> dict:
        return {"frames": self._next_index, "late_frames": self._late, "max_late_s": self._max_late}

    async def setup(self, setup: FrameProcessorSetup) -> None:
        """Open the live session (models, renderer) on the worker thread."""
        await super().setup(setup)
        self._audio_rate = output_rate(self._options, setup.audio_out_sample_rate)
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facecast-avatar")
        self._stream = await self._call(self._open)

    def _open(self) -> AvatarStream:
        if isinstance(self._face, Portrait) and self._engine is None:
            import torch

            # One render thread per stream, as facecast.live.stream does: a frame at a time draws
            # faster on one thread than on a pool that has to wake up for it.
            torch.set_num_threads(1)
        return AvatarStream(self._face, self._options, self._audio_rate, engine=self._engine)

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        self._held.clear()
        await self._shutdown()

    async def stop(self, frame: EndFrame) -> None:
        """Let the speech already fed play out, then close the session."""
        await super().stop(frame)
        loop = asyncio.get_running_loop()
        stream = self._stream
        if self._clock_task is not None and stream is not None:
            deadline = loop.time() + max(stream.speech_end - self._next_index / stream.fps, 0.0) + 2.0
            while self._speech_pending() and loop.time() < deadline and not self._clock_task.done():
                await asyncio.sleep(1.0 / stream.fps)
        await self._shutdown()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._shutdown()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)  # StartFrame -> start(), EndFrame -> stop() ...
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            if self._stream is not None and self._clock_task is None:
                self._clock_task = self.create_task(self._clock(), name=f"{self}::clock")
        elif isinstance(frame, EndFrame):
            while self._held:
                await self.push_frame(self._held.popleft()[1])
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            await self._interrupt()
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            self._feed(frame)
        elif direction == FrameDirection.DOWNSTREAM and not isinstance(frame, SystemFrame) and self._speech_pending():
            mark = Mark()
            self._stream.put(mark, self._epoch)
            self._held.append((mark, frame))
        else:
            await self.push_frame(frame, direction)

    # -- input ---------------------------------------------------------------------------------

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    def _speech_pending(self) -> bool:
        """Speech came in that has not been shown yet (frames going downstream wait for it)."""
        s = self._stream
        return s is not None and bool(self._held or s.queued or s.speech_end > self._next_index / s.fps + _TOL_S)

    def _feed(self, frame: TTSAudioRawFrame) -> None:
        """Queue the bot's voice for the next tick (at once: the clock is woken)."""
        if self._stream is None:
            log.warning("%s: TTS audio before the avatar was set up; dropped", self)
            return
        if not frame.audio:
            return
        chunk = pcm_to_chunk(frame.audio, frame.sample_rate, frame.num_channels)  # ValueError: an ErrorFrame
        self._context_id = frame.context_id
        self._stream.put(chunk, self._epoch)
        self._wake.set()

    async def _interrupt(self) -> None:
        self._muting = True
        self._epoch += 1  # what is queued from now on waits for the interruption to be applied
        try:
            kept = [f for _, f in self._held if not getattr(f, "interruptible", True)]
            self._held.clear()
            for f in kept:
                await self.push_frame(f)
            if self._stream is not None:
                self._mute_before = max(self._mute_before, await self._call(self._stream.interrupt, self._epoch))
        finally:
            self._muting = False
            self._wake.set()

    # -- output --------------------------------------------------------------------------------

    async def _clock(self) -> None:
        """Tick the session when a frame becomes ready, push each frame when it is due."""
        loop = asyncio.get_running_loop()
        stream = self._stream
        t0 = loop.time()
        while True:
            self._wake.clear()
            try:
                frames = await self._call(stream.tick, loop.time() - t0)
            except Exception as exc:  # the session cannot go on: say so and stop the avatar
                await self.push_error(error_msg=f"facecast avatar stopped: {exc}", exception=exc, fatal=True)
                return
            self._outbox.extend(frames)
            await self._push_due(loop.time() - t0)
            made = self._outbox[-1].index + 1 if self._outbox else self._next_index
            wake = stream.ready_at(made)
            if self._outbox:
                wake = min(wake, stream.due_at(self._outbox[0].index))
            try:  # until then, or until speech comes in (an Engine's frames may take a few ms more)
                await asyncio.wait_for(self._wake.wait(), max(wake - (loop.time() - t0), 0.005))
            except asyncio.TimeoutError:
                pass

    async def _push_due(self, now: float) -> None:
        stream = self._stream
        while self._outbox and stream.due_at(self._outbox[0].index) <= now + 1e-3:
            frame = self._outbox.popleft()
            late = now - stream.due_at(frame.index)
            if late > 1.0 / stream.fps:
                self._late += 1
                self._max_late = max(self._max_late, late)
                if late > 0.5 and not self._warned_late:
                    self._warned_late = True
                    log.warning("%s: frames leave %.2f s late: this machine does not draw %d px at %g fps in real "
                                "time (lower AvatarOptions.size or fps, or use device='cuda')", self, late,
                                frame.width, stream.fps)
            await self._push_avatar_frame(frame)

    async def _push_avatar_frame(self, frame: AvatarFrame) -> None:
        speech = frame.speech and not self._muting and frame.index >= self._mute_before
        pts = round(frame.index / self._options.fps * 1e9)
        image = OutputImageRawFrame(image=frame.image, size=(frame.width, frame.height), format="RGB")
        image.pts = pts
        await self.push_frame(image)
        audio = None
        if speech:
            audio = TTSAudioRawFrame(frame.audio, self._audio_rate, frame.channels, context_id=self._context_id)
        elif self._options.idle_audio:
            audio = OutputAudioRawFrame(bytes(len(frame.audio)), self._audio_rate, frame.channels)
        if audio is not None:
            audio.pts = pts
            await self.push_frame(audio)
        self._next_index = frame.index + 1
        out_end = self._next_index / self._options.fps
        while self._held and (self._held[0][0].dropped or (self._held[0][0].position is not None
                                                             and self._held[0][0].position <= out_end + _TOL_S)):
            await self.push_frame(self._held.popleft()[1])

    async def _shutdown(self) -> None:
        if self._clock_task is not None:
            await self.cancel_task(self._clock_task)
            self._clock_task = None
        self._outbox.clear()
        stream, self._stream = self._stream, None
        if stream is not None and self._worker is not None:
            try:
                await self._call(stream.close)
            except Exception as exc:  # closing after a failure: the first error is the one reported
                log.warning("%s: closing the avatar session failed: %s", self, exc)
        if self._worker is not None:
            self._worker.shutdown(wait=False)
            self._worker = None
