"""The asyncio driver of one live session, and the one factory that opens a session for a face.

``open_session(face, options)`` decides what the face is from what it *is*: a loaded Twin, or a
file whose content is a twin (a safetensors file with the facecast-twin header, whatever its
name) opens a TwinSession; a video file (by content) or a prepared VideoFace a VideoSession
(live.video_session); anything else (an image path or array, a prepared Portrait) a
StreamSession. ``stream(face_or_session, source)`` drives a session from an async source:
wall clock, idle frames, jitter, back-pressure, text synthesised on a second thread.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import AsyncIterable, AsyncIterator, Iterable

import numpy as np

from ..options import StreamOptions
from ..types import AudioChunk, Portrait
from .messages import AudioIn, EndInput, Interrupt, SpeechIn, StreamChunk, TextIn, check_audio
from .options import check_options
from .session import Render, Session, StreamSession
from .text import SentenceSplitter, check_text_piece, speakable

__all__ = ["as_twin", "open_session", "stream"]

_TEXT_IDLE_S = 0.5  # stream(): speak an unfinished sentence after this long without more text
_END = object()     # the reader's mark: the source is exhausted


def as_twin(face, device: str = "auto", size: int | None = 512):
    """A Twin when ``face`` is one (``sources.is_twin_input``: a loaded Twin, or a file whose
    content is a twin, loaded on ``device`` with its longer side ``size``), else None. A
    safetensors file that is not a twin raises the twin loader's InputError."""
    from ..sources import is_twin_input, load_twin_input

    return load_twin_input(face, device, size) if is_twin_input(face) else None


def open_session(face, options: StreamOptions = StreamOptions(), *, render: Render | None = None,
                 voice=None) -> Session:
    """A ready Session for ``face``: a TwinSession for a twin (a loaded Twin or a twin file, by
    content), a VideoSession for a video of the person (a video file, by content, or a prepared
    dubbing.videoface.VideoFace), else a StreamSession (image path or array, Portrait). ``render`` (portraits only)
    and ``voice``: see StreamSession. A twin's look-ahead is its mouth model's (0.28 s at 25 fps),
    not ``options.lookahead_s``; its output audio is mono and it is paced by the clock at most
    ``max_lead_s`` ahead when ``options.realtime``."""
    from ..sources import is_video_input

    options = check_options(options)
    twin = as_twin(face, options.render.device, options.size or 512)
    if twin is not None:
        from .twin_session import TwinSession

        return TwinSession.from_options(twin, options, voice=voice)
    if is_video_input(face):
        from .video_session import VideoSession

        return VideoSession(face, options, render=render, voice=voice)
    return StreamSession(face, options, render=render, voice=voice)


async def stream(
    face: str | Path | np.ndarray | Portrait | Session,
    source: AsyncIterable | Iterable,
    *,
    options: StreamOptions = StreamOptions(),
    render: Render | None = None,
    voice=None,
) -> AsyncIterator[StreamChunk]:
    """Stream a talking head: yields StreamChunks (frames with pts, matching audio, optional fMP4)
    while ``source`` delivers speech.

    face: a ready Session, or what ``open_session`` takes: a portrait (image path, array,
        Portrait), a twin (a loaded ``facecast.twin.generate.Twin`` or a twin file), which
        streams through ``TwinSession`` (same chunks and driver, ``motion`` None), or a video of
        the person (a video file or a prepared VideoFace: ``VideoSession``, its own frames
        looped back and forth with the mouth redrawn).

    source: an async iterable (a plain iterable works too) of
        * ``AudioChunk`` / ``AudioIn`` -- live PCM, any rate/channels, placed back to back;
        * ``str`` / ``TextIn`` -- text pieces; each sentence is synthesised (Piper, in a
          background thread) as soon as it is complete, the rest when the source ends or audio
          follows;
        * ``SpeechIn`` -- speech with known phones;
        * ``None`` or ``INTERRUPT`` -- barge-in: drop what is not yet said, ease the mouth to rest;
        * ``EndInput`` -- the end of the input (as when the source is exhausted).
    options: StreamOptions (``realtime=True``: paced by the wall clock, idle frames when the source
        is silent; ``fmp4=True``: fMP4 bytes on the chunks).
    render, voice: see StreamSession (``voice`` speaks the text pieces).

    The heavy work (analysis, rendering, encoding) runs on a worker thread, synthesis on another,
    so the event loop stays free. The stream ends when the source is exhausted and its last
    frame is out. Errors (bad items, empty text, NaN audio) are raised from the iterator.
    """
    import torch

    options = check_options(options)
    session: Session | None = face if isinstance(face, Session) else None
    twin = None if session is not None else as_twin(face, options.render.device, options.size or 512)
    if twin is None and (session is None or isinstance(session, StreamSession)):
        # One thread per stream, as `say` does: a frame at a time renders several times faster on
        # one thread than on a pool that has to wake up for it (and streams are run side by side).
        torch.set_num_threads(1)
    loop = asyncio.get_running_loop()
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facecast-stream")
    speaker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facecast-voice")

    def call(fn, *args):
        return loop.run_in_executor(worker, fn, *args)

    voice_box: list = [voice]

    def synthesize(sentence: str) -> list[SpeechIn]:
        if voice_box[0] is None:
            from ..voice import PiperVoice

            voice_box[0] = PiperVoice()
        return [SpeechIn(v.audio, v.phones) for v in voice_box[0].synthesize(sentence)]

    inbox: asyncio.Queue = asyncio.Queue(maxsize=64)

    async def read() -> None:
        try:
            if hasattr(source, "__aiter__"):
                async for item in source:
                    await inbox.put(item)
            else:
                for item in source:
                    await inbox.put(item)
                    await asyncio.sleep(0)
            await inbox.put(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer
            await inbox.put(exc)

    reader: asyncio.Task | None = None
    getter: asyncio.Task | None = None
    try:
        if session is None:
            session = await call(lambda: open_session(twin if twin is not None else face, options, render=render,
                                                      voice=voice))
        if isinstance(source, (str, AudioChunk)):
            source = [source]
        reader = asyncio.create_task(read())
        splitter = SentenceSplitter()
        ops: deque = deque()  # input messages in order; a sentence being synthesised is its Future
        source_done = False
        last_text = 0.0  # loop time of the last text piece
        t0 = loop.time()
        frame_dt = 1.0 / options.fps

        def speak(sentences: list[str]) -> None:
            for s in sentences:
                ops.append(asyncio.wrap_future(speaker.submit(synthesize, s)))

        while True:
            # 1. apply the input that is ready, in order
            while ops:
                op = ops[0]
                if isinstance(op, asyncio.Future):
                    if not op.done():
                        break
                    for message in op.result():
                        await call(session.feed, message)
                else:
                    await call(session.feed, op)
                ops.popleft()
            # 2. the clock, 3. frames
            if options.realtime:
                await call(session.advance_to, loop.time() - t0 - options.jitter_s)
            chunks = await call(session.poll)
            if session.done:
                # The last frames and the end of the fMP4 leave together.
                tail = await call(session.close)
                if chunks and len(tail) == 1 and tail[0].num_frames == 0:
                    last = chunks[-1]
                    chunks[-1] = StreamChunk(last.video, last.audio, (last.fmp4 or b"") + (tail[0].fmp4 or b""),
                                             last.motion, last.jpeg)
                else:
                    chunks += tail
            for chunk in chunks:
                yield chunk
            if session.done:
                break
            # 4. wait for input, a synthesised sentence, or the next frame time
            waits = set()
            full = options.realtime and session.input_end - (loop.time() - t0) > options.max_buffer_s
            if not source_done and not full:
                if getter is None:
                    getter = asyncio.ensure_future(inbox.get())
                waits.add(getter)
            if ops and isinstance(ops[0], asyncio.Future) and not ops[0].done():
                waits.add(ops[0])
            timeout = frame_dt if options.realtime else None
            if splitter.pending and speakable(splitter.pending):
                # An unfinished sentence is spoken once no more text came for a while.
                idle = last_text + _TEXT_IDLE_S - loop.time()
                if idle <= 0:
                    speak(splitter.flush())
                    continue
                timeout = idle if timeout is None else min(timeout, idle)
            if not waits:
                if ops:
                    continue  # ready input left: apply it
                if options.realtime:
                    await asyncio.sleep(frame_dt)  # the clock moves the stream on
                    continue
                break  # input over and applied: close() hands out the rest
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if getter is not None and getter in done:
                item, getter = getter.result(), None
                while True:
                    if item is _END or isinstance(item, EndInput):
                        source_done = True
                        speak(splitter.flush())
                        ops.append(EndInput())
                        break
                    if isinstance(item, BaseException):
                        raise item
                    if item is None or isinstance(item, Interrupt) or item is Interrupt:
                        for op in ops:
                            if isinstance(op, asyncio.Future):
                                op.cancel()
                        ops.clear()
                        splitter.clear()
                        ops.append(Interrupt())
                    elif isinstance(item, (str, TextIn)):
                        speak(splitter.feed(check_text_piece(item.text if isinstance(item, TextIn) else item)))
                        last_text = loop.time()
                    elif isinstance(item, (AudioChunk, AudioIn)):
                        audio = check_audio(item.audio if isinstance(item, AudioIn) else item)
                        speak(splitter.flush())
                        ops.append(AudioIn(audio))
                    elif isinstance(item, SpeechIn):
                        check_audio(item.audio)
                        speak(splitter.flush())
                        ops.append(item)
                    else:
                        raise TypeError(f"stream source items must be AudioChunk, str, None or INTERRUPT (or "
                                        f"AudioIn, TextIn, SpeechIn, Interrupt, EndInput); got {type(item).__name__}")
                    try:  # take whatever else is already queued without waiting
                        item = inbox.get_nowait()
                    except asyncio.QueueEmpty:
                        break
        if not session.closed:
            for chunk in await call(session.close):
                yield chunk
    finally:
        for task in (getter, reader):
            if task is not None:
                task.cancel()
        if session is not None and not session.closed:
            try:
                await call(session.close)
            except Exception:  # already failing or abandoned: the original error matters
                pass
        worker.shutdown(wait=False)
        speaker.shutdown(wait=False, cancel_futures=True)
