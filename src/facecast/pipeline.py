"""The orchestrator: `say` reads as a list of passes over a stream of segments.

    face        open_face: a portrait (landmarks, framing, rig) or a twin -> FaceSource  (sources.py)
    speak       text -> Voice sentences (audio + exact phones)  |  audio file -> chunks    (segments.py)
    segment     cut the audio into segments of <= segment_max_s at its quietest points, on frame
                boundaries (memory stays flat whatever the input length)               (segments.py)
    align       phones for each segment (pocketsphinx; TTS already knows them)         (speech.py)
    analyse     per-frame loudness and speech/silence (silero-VAD) on the frame grid   (speech.py)
    animate     FaceSource.animate: phones + loudness -> MotionFrames (a portrait), or
                audio -> MouthShapes (a twin's mouth model)
    render      FaceSource.render -> VideoFrames (batched)
    encode      H.264 + AAC, on a second thread so rendering and encoding overlap

A twin listens to the audio itself, so its jobs skip align and analyse.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import audio as audio_mod
from .errors import InputError
from .options import SayOptions
from .segments import Segment, audio_segments, text_segments
from .sources import FaceInput, face_needs_speech, open_face
from .speech import SILENCE_PEAK, TRANSCRIPT_MAX_S, SpeechAnalyser, SpeechModels, first_speech, prefetch_alignment
from .text import check_text, check_utf8
from .timing import Timings
from .types import AudioChunk, Speech, VideoFrames

log = logging.getLogger(__name__)

Progress = Callable[[float, float | None], None]  # (seconds of audio done, total seconds or None)

SHORT_AUDIO_S = 0.2
"""Audio shorter than this without speech is called too short (rather than silent) when refused."""


@dataclass(frozen=True)
class SayChunk:
    """One step of the output stream: frames, the audio that plays with them, and the speech
    analysis that drove them (phones as aligned/recognised, loudness, speech/silence)."""

    video: VideoFrames
    audio: tuple[AudioChunk, ...]
    segment: Segment
    speech: Speech | None = None


def say_chunks(
    face: FaceInput,
    *,
    text: str | None = None,
    audio: str | Path | None = None,
    transcript: str | None = None,
    options: SayOptions = SayOptions(),
    progress: Progress | None = None,
    timings: Timings | None = None,
    models: SpeechModels | None = None,
) -> Iterator[SayChunk]:
    """The `say` job as a stream of SayChunks (frames + matching audio), in order.

    ``face``: a portrait image (path or RGB array), a prepared Portrait, a .twin file, or a
    FaceSource. Exactly one of ``text`` / ``audio``. Memory is bounded by one segment whatever
    the input length. Raises InputError (no face, unreadable audio, empty text, silent audio ...).
    ``models``: loaded speech models to reuse (a batch worker's warm set); None = load them.
    """
    if (text is None) == (audio is None):
        raise InputError("say: give either text or audio (exactly one). Use --text \"...\" or --audio FILE.")
    timings = timings if timings is not None else Timings()
    torch.set_num_threads(1)  # one core renders while the other encodes (see encode thread)
    # The inputs are checked before the face is looked at or anything is rendered: the text,
    # and the audio file down to whether it holds any speech at all.
    needs_speech = face_needs_speech(face)
    fps = options.fps
    if text is not None:
        check_text(text)
        segments = timings.timed_iter("voice", text_segments(text, fps))  # speak + segment
        total = None
    else:
        seg_max = options.segment_max_s
        total = audio_mod.open_audio(audio).duration
        if transcript is not None:
            check_utf8(transcript, source="--transcript")
            if not needs_speech:
                raise InputError(f"--transcript: {getattr(face, 'name', face)} listens to the audio itself (a twin's mouth model); "
                                 "leave the transcript out.")
            if transcript.strip() == "":
                raise InputError("--transcript: the transcript is empty. Give the words spoken, or leave it out.")
            if total is not None and total > TRANSCRIPT_MAX_S:
                log.warning("%s: transcript alignment is limited to %.0f s of audio; this clip is %.0f s, so "
                            "phones are recognised instead", audio, TRANSCRIPT_MAX_S, total)
                transcript = None
            else:
                seg_max = TRANSCRIPT_MAX_S + 1.0
        first = None if transcript is not None else options.first_segment_s
        recognise = needs_speech and transcript is None
        if options.workers > 0 and recognise:
            seg_max = min(seg_max, 4.0)  # more, shorter segments keep every worker busy
        segments = timings.timed_iter("decode", audio_segments(audio, fps, seg_max, first))
    analyser = None
    if needs_speech:
        with timings.stage("setup"):
            analyser = SpeechAnalyser(options, transcript, need_aligner=text is None, models=models)
    if audio is not None:
        with timings.stage("analyse"):
            start = first_speech(audio, analyser.vad if analyser else None)  # the speech map, before rendering
        if start is None:
            raise _no_speech(audio, total)
    source = open_face(face, options, timings)                           # face
    workers = options.workers if text is None and analyser is not None else 0

    heard = False
    for seg, phones_future in prefetch_alignment(segments, transcript, workers, options.word_timeline):
        speech = analyser.speech(seg, timings, phones_future) if analyser else None  # align + analyse
        with timings.stage("motion"):
            drive = source.animate(seg, speech)                                     # animate
        with timings.stage("render"):
            video = source.render(drive)                                            # render
        heard = heard or _heard(seg, speech)
        yield SayChunk(video, seg.output_audio, seg, speech)
        if progress:
            progress(seg.end, total)
    if not heard:  # the pre-scan found speech the segments did not (a window at the very end)
        raise _no_speech(audio if audio is not None else "--text", total)


def _no_speech(src, duration: float | None) -> InputError:
    if duration is not None and duration < SHORT_AUDIO_S:
        return InputError(f"{src}: no speech found in {duration:.2f} s of audio, too short to hold a word. "
                          "Give a recording with speech.")
    return InputError(f"{src}: no speech found (the audio is silent or only noise). Give a recording with speech.")


def _heard(seg: Segment, speech: Speech | None) -> bool:
    """Whether the segment has speech: voiced frames, or (sources that skip the analysis) any
    sample above digital silence."""
    if speech is not None:
        return bool(speech.voiced.any())
    return float(np.abs(seg.analysis).max(initial=0.0)) > SILENCE_PEAK


def say(
    face: FaceInput,
    output: str | Path,
    *,
    text: str | None = None,
    audio: str | Path | None = None,
    transcript: str | None = None,
    options: SayOptions = SayOptions(),
    progress: Progress | None = None,
    timings: Timings | None = None,
    models: SpeechModels | None = None,
) -> Path:
    """Render a talking-head MP4 (H.264 + AAC) of ``face`` (a portrait, a .twin file or a
    FaceSource) saying ``text`` or ``audio``; returns the output path. Nothing is left at
    ``output`` unless the whole job succeeds."""
    from .media import prepare_output

    output = prepare_output(output, inputs=(("portrait (or twin)", face), ("audio", audio)))  # never an input
    timings = timings if timings is not None else Timings()
    chunks = say_chunks(face, text=text, audio=audio, transcript=transcript, options=options, progress=progress,
                        timings=timings, models=models)
    first = next(chunks, None)
    if first is None:
        raise InputError("say: nothing to render (the input has no duration).")
    H, W = first.video.frames.shape[1:3]
    ref = first.audio[0] if first.audio else AudioChunk(np.zeros((1, 0), np.float32), 22050)
    with BackgroundWriter(output, options, W, H, ref.sample_rate, ref.channels, timings) as writer:
        writer.put(first)
        for chunk in chunks:
            writer.put(chunk)
    return output


class BackgroundWriter:
    """Encodes SayChunks on a background thread (libx264 and the renderer then use both cores).
    A bounded queue keeps memory flat; any error on either side aborts the output file.
    ``handed_over``: the producer never touches a chunk's frames after ``put`` (the encoder
    then reads them without copying them first)."""

    def __init__(self, path: Path, options: SayOptions, width: int, height: int, rate: int, channels: int,
                 timings: Timings, handed_over: bool = False):
        from .media import Mp4Writer

        enc = options.encode
        self._writer = Mp4Writer(path, fps=options.fps, width=width, height=height, audio_rate=rate,
                                 audio_channels=channels, crf=enc.crf, preset=enc.preset, codec=enc.codec,
                                 workers=enc.workers, segment_frames=max(1, round(enc.segment_s * options.fps)))
        self._q: queue.Queue = queue.Queue(maxsize=2)
        self._timings = timings
        self._handed_over = handed_over
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="facecast-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (item := self._q.get()) is not None:
                t = time.perf_counter()
                # CUDA frames stay on the GPU: the writer converts them to yuv420p there and
                # copies half the bytes (encode.to_i420).
                self._writer.write_video(item.video, handed_over=self._handed_over)
                for a in item.audio:
                    self._writer.write_audio(a)
                # Runs on the encode thread, concurrently with rendering: its time overlaps.
                self._timings.add("encode (overlapped)", time.perf_counter() - t)
        except BaseException as exc:  # re-raised on the main thread in close()
            self._error = exc
            while self._q.get() is not None:  # drain so the producer never blocks
                pass

    def put(self, chunk: SayChunk) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(chunk)

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._q.put(None)
        self._thread.join()
        if exc is None and self._error is None:
            self._writer.close()
            return
        self._writer.abort()
        if exc is None:
            raise self._error
