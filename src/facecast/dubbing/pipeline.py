"""The `dub` job: `say`'s passes over tracked footage instead of a portrait.

    footage     open the video, scan its first seconds (track the face, collect this person's
                mouths, measure the speaker) -> FootageSource                      (source.py)
    speak       text -> Voice sentences | audio file -> chunks                     (segments.py)
    segment     audio cut into segments at quiet points, on the video's frame grid  (segments.py)
    align       phones for each segment (pocketsphinx; TTS already knows them)     (speech.py)
    analyse     per-frame loudness and speech/silence                              (speech.py)
    calibrate   the motion model fitted to this speaker's own speech and mouth     (calibrate.py)
    learn       this speaker's own mouth, regressed on the sound, phones and the
                phone model's mouth of its own speech (closed form, ~1 s)          (learned.py)
    animate     FootageSource.animate: the motion model (motion.py), the mouth targets
                (each segment drawn once the next is analysed: the learned mouth's look-ahead)
    render      FootageSource.render_parts: decode + track the frames, draw the mouth, composite
    encode      H.264 + AAC on a second thread (pipeline.BackgroundWriter)
or, with ``DubOptions.processes`` (> 1): the face tracked in pieces by worker processes first
    (trackspans.py; or a track given), then the mouths picked here
    (FootageSource.pick_mouths), decode + draw + encode by worker processes in spans of the
    video, their packets muxed here in order with the sound (Mp4Writer.write_encoded).

DubJob holds the passes up to the drawing (``steps()``: one DubStep per segment, animated);
``dub_chunks`` and ``dub`` draw them.

Only the lower face changes; frames, frame rate and size are the video's. Memory stays flat:
every stage streams (frames are decoded, tracked, drawn and encoded a chunk at a time).
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .. import audio as audio_mod
from ..errors import InputError, NoFaceError, OutputError
from .options import DubOptions
from ..pipeline import BackgroundWriter, Progress, SayChunk
from ..segments import Segment, audio_segments, text_segments
from ..speech import SpeechAnalyser, SpeechModels, prefetch_alignment
from ..timing import Timings
from ..types import AudioChunk, Speech
from .source import DubReport, FootageSource, MouthDrive, scan_frames

log = logging.getLogger(__name__)

__all__ = ["dub", "dub_chunks", "open_dub_video"]


def open_dub_video(video: str | Path):
    """open_video with dub's messages: an image points to `say`, audio only says so."""
    from ..media import open_video

    try:
        src = open_video(video, chunk_frames=8)
    except InputError as exc:
        msg = str(exc)
        if "still image" in msg or "is an image" in msg:
            raise InputError(f"{video}: is a still image, not a video. To animate a photo use "
                             f"`facecast say {video} ...`; dub re-lip-syncs a video.") from None
        if "audio only" in msg:
            raise InputError(f"{video}: is audio only (no video stream). dub needs a video of the speaker; pass "
                             "the new speech with --audio.") from None
        raise
    _check_sdr(src)
    return src


HDR_TRANSFERS = {16: "PQ (SMPTE 2084)", 18: "HLG (ARIB STD-B67)"}
"""Transfer characteristics (FFmpeg's AVCOL_TRC_*) of HDR video: converting them to 8-bit SDR needs
tone mapping, which a plain RGB conversion does not do (colours would come out washed out)."""


def _check_sdr(src) -> None:
    """HDR input is refused with a way out; 10-bit SDR converts to 8 bits as it decodes."""
    import av

    with av.open(str(src.path)) as c:
        trc = int(getattr(c.streams.video[0].codec_context, "color_trc", 2) or 2)
    if trc in HDR_TRANSFERS:
        raise InputError(f"{src.path}: is HDR video ({HDR_TRANSFERS[trc]}); dub writes 8-bit SDR H.264 and would wash "
                         "its colours out. Convert it to SDR first, e.g. ffmpeg -i IN -vf "
                         "zscale=t=linear,tonemap=hable,zscale=t=bt709:m=bt709:r=tv,format=yuv420p OUT.mp4")


@dataclass(frozen=True)
class DubStep:
    """One segment of the job, animated and not yet drawn: the mouth for its frames, its sound
    and speech (None: the rest of the video after the speech, --keep-length)."""

    drive: MouthDrive
    audio: tuple[AudioChunk, ...]
    segment: Segment
    speech: Speech | None


class DubJob:
    """The `dub` job up to the drawing: the video opened and scanned (a FootageSource), the
    speaker calibrated and learned, and ``steps()``: the new speech's segments animated in
    order. ``dub_chunks`` draws the steps here; ``dub`` may draw them in spans (spans.py)."""

    def __init__(self, video, *, audio=None, text=None, options: DubOptions = DubOptions(), timings=None,
                 report=None, models=None, track=None, pieces: int = 0):
        if (text is None) == (audio is None):
            raise InputError("dub: give either --audio FILE or --text \"...\" (exactly one).")
        self.options, self.audio, self.text = options, audio, text
        self.timings = timings = timings if timings is not None else Timings()
        torch.set_num_threads(1)  # one core draws while the other encodes
        self.src = src = open_dub_video(video)
        fps = src.fps
        self.track = _load_track(track, src, options) if track is not None else None
        self.so = so = options.say_options(fps)
        self.total: float | None = None
        if text is not None:
            from ..text import check_text

            check_text(text)
            self.segments = timings.timed_iter("voice", text_segments(text, fps))
        else:
            self.sound = audio_mod.open_audio(audio)
            self.total = total = self.sound.duration
            if total is not None and total * fps < 1:
                raise InputError(f"{audio}: the audio is empty ({total:.3f} s). Give a recording with speech.")
            self.segments = timings.timed_iter("decode", audio_segments(audio, fps, so.segment_max_s,
                                                                        so.first_segment_s))
        n_video = src.num_frames
        expect = math.ceil(self.total * fps - 1e-9) if self.total is not None else None
        if options.keep_length and expect is not None and n_video:
            expect = max(expect, n_video)
        self.expect_frames = expect
        with timings.stage("setup"):
            self.analyser = SpeechAnalyser(so, None, need_aligner=text is None, models=models)
        # The video's own speech (for the calibration) goes to the phone workers first, so that it is
        # recognised while the scan decodes and tracks (and the track's pieces are made).
        own = _own_speech(src, so, options)
        if self.track is None and pieces > 1 and expect is not None and src.num_frames:  # while that runs
            shown = max(expect, scan_frames(options, fps, expect))  # the job's frames and the scan's
            with timings.stage("track (workers)"):
                self.track = _track_in_pieces(src, pieces, options, min(src.num_frames, shown))
        with timings.stage("footage"):
            self.source = source = FootageSource(src, options, expect_frames=expect, timings=timings, report=report,
                                                 track=self.track)
        try:
            with timings.stage("calibrate"):
                data = source.scanned_speech(so, own) if own is not None and source.scanned else None
                source.calibrate(_calibration(source, data))
            if data is not None and options.mouth_model != "phones":
                with timings.stage("learn"):
                    source.use_learned(*_learned(source, data, options))
                    if source.learned is not None and audio is not None:
                        source.learned.listen(_first_sound(self.sound, OWN_SPEECH_MAX_S))
        except BaseException:
            source.close()
            raise

    def steps(self) -> Iterator[DubStep]:
        """The segments of the new speech animated, in order (each once the next is analysed:
        the learned mouth's look-ahead), then --keep-length's rest; InputError when no speech was
        heard, NoFaceError when no frame had a face."""
        source, timings, options = self.source, self.timings, self.options
        workers = options.workers if self.text is None else 0
        heard = False
        end = 0
        ref: AudioChunk | None = None
        pending = None
        for seg, phones in prefetch_alignment(self.segments, None, workers, self.so.word_timeline):
            source.expect(seg.first_frame + seg.num_frames)
            speech = self.analyser.speech(seg, timings, phones)
            heard = heard or bool(speech.voiced.any())
            if pending is not None:
                yield self._step(*pending, ahead=(seg, speech))
            pending = (seg, speech)
            end = seg.first_frame + seg.num_frames
            ref = ref or next(iter(seg.output_audio), None)
        if pending is not None:
            yield self._step(*pending)
        if not heard:
            src_name = self.audio if self.audio is not None else "--text"
            raise InputError(f"{src_name}: no speech found (the audio is silent or only noise). "
                             "Give a recording with speech.")
        if options.keep_length and ref is not None:
            n_video = source.reader.num_frames if source.reader.ended else self.src.num_frames
            yield from _keep_rest(self, end, n_video or end, ref)
        if source.report.dubbed == 0:
            raise NoFaceError(f"{self.src.path}: no face found in any dubbed frame. dub needs a video where the "
                              "speaker's face is visible (frontal, at least ~64 pixels wide).")

    def _step(self, seg: Segment, speech: Speech | None, ahead=None) -> DubStep:
        with self.timings.stage("motion"):
            drive = self.source.animate(seg, speech, ahead)
        return DubStep(drive, seg.output_audio, seg, speech)

    def close(self) -> None:
        self.source.close()


def dub_chunks(
    video: str | Path,
    *,
    audio: str | Path | None = None,
    text: str | None = None,
    options: DubOptions = DubOptions(),
    progress: Progress | None = None,
    timings: Timings | None = None,
    report: DubReport | None = None,
    models: SpeechModels | None = None,
    track=None,
) -> Iterator[SayChunk]:
    """The `dub` job as a stream of SayChunks (frames of the video with the mouth redrawn for the
    new speech, and that speech), in order. Exactly one of ``audio`` / ``text``. ``report`` (a
    DubReport) is filled in as the job goes; ``models``: loaded speech models to reuse (a batch
    worker's). ``track``: the video's precomputed face track (a trackfile.VideoTrack or a track
    file's path; checked to be this video's), so no mediapipe runs. Raises InputError /
    NoFaceError for unusable input."""
    job = DubJob(video, audio=audio, text=text, options=options, timings=timings, report=report, models=models,
                 track=track)
    try:
        yield from _drawn(job, progress)
    finally:
        job.close()


def _drawn(job: DubJob, progress: Progress | None) -> Iterator[SayChunk]:
    """The job's steps drawn on this process (and its draw threads), as SayChunks in order."""
    for step in job.steps():
        first = True
        for part in job.source.render_parts(step.drive):
            yield SayChunk(part, step.audio if first else (), step.segment, step.speech if first else None)
            first = False
        if progress:
            progress(step.segment.end, job.total)


def _track_in_pieces(src, processes: int, options: DubOptions, frames: int):
    """The face track of ``src``'s first ``frames`` frames, made in pieces by ``processes``
    workers of its own (trackspans.py); None when they disagree on the face (then the job tracks
    in order)."""
    from .trackspans import track_with_workers

    return track_with_workers(src, processes, frames=frames, face_index=options.face_index,
                              max_gap_s=options.max_gap_s)


def _load_track(track, src, options: DubOptions):
    """The VideoTrack of ``src`` from a VideoTrack or a track file (InputError unless it is this
    video's, for the face the options ask for)."""
    from .trackfile import VideoTrack, check_track, load_track

    if isinstance(track, VideoTrack):
        if track.face_index != options.face_index:
            raise InputError(f"the given track follows face {track.face_index}, the options ask for face "
                             f"{options.face_index}. Track the video again with that face.")
        return check_track(track, src)
    return load_track(track, src, face_index=options.face_index)


def _keep_rest(job: DubJob, start: int, end: int, ref: AudioChunk) -> Iterator[DubStep]:
    """--keep-length: the video's frames after the speech, with a relaxed closed mouth and silence."""
    fps = job.src.fps
    step = max(1, int(round(4.0 * fps)))
    for f0 in range(start, end, step):
        n = min(step, end - f0)
        t0, t1 = f0 / fps, (f0 + n) / fps
        samples = int(round(t1 * ref.sample_rate)) - int(round(t0 * ref.sample_rate))
        silence = AudioChunk(np.zeros((ref.channels, max(samples, 0)), np.float32), ref.sample_rate, t0)
        seg = Segment(t0, t1, f0, n, np.zeros(0, np.float32), (silence,))
        job.source.report.kept += n
        yield job._step(seg, None)


OWN_SPEECH_MAX_S = 60.0
"""Most seconds of the video's own sound the calibration and the learned mouth read (from its
start; at most ``scan_s``)."""


def _own_speech(src, so, options: DubOptions) -> list | None:
    """The first seconds of the video's own sound (up to scan_s, at most OWN_SPEECH_MAX_S) as
    (segment, phones future | None) pairs, the futures already running in the phone workers;
    None when there is nothing to calibrate from."""
    if not options.calibrate or not src.has_audio:
        return None
    until = min(options.scan_s, OWN_SPEECH_MAX_S)
    try:
        segs = []
        for seg in audio_segments(src.path, src.fps, so.segment_max_s, None):
            segs.append(seg)
            if seg.end >= until:
                break
    except InputError as exc:  # the sound track does not decode: dub without calibration
        log.warning("%s: calibration skipped (%s)", src.path, exc)
        return None
    return list(prefetch_alignment(iter(segs), None, options.workers, so.word_timeline))


def _calibration(source: FootageSource, data):
    """The speaker's calibration from the scanned part of the video and its own sound track
    (``data``: an OwnSpeech), or None (rig defaults) without it or without enough speech."""
    if data is None:
        return None
    from .calibrate import fit_calibration, mouth_shape

    return fit_calibration(data.params, mouth_shape(data.points), data.voiced, source.stats)


def _first_sound(a, seconds: float) -> np.ndarray:
    """The first ``seconds`` of audio source ``a`` as 16 kHz mono (the learned mouth reads the new
    recording's mean spectrum from it)."""
    from ..types import ANALYSIS_RATE

    rs = audio_mod.Resampler(ANALYSIS_RATE, mono=True)
    out, got = [], 0
    for chunk in a:
        x = rs.feed(chunk).samples[0]
        out.append(x)
        got += len(x)
        if got >= seconds * ANALYSIS_RATE:
            break
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _learned(source: FootageSource, data, options: DubOptions):
    """(LearnedMouth | None, LearnedFit): the learned fusion, when ``options.mouth_model`` and
    the video's speech allow (see learned.py)."""
    from .learned import fit_learned

    learned, fit = fit_learned(data, source.calibration, force=options.mouth_model == "learned")
    if learned is None:
        log.info("%s: %s", source.name, fit.text())
    return learned, fit


def dub(
    video: str | Path,
    output: str | Path,
    *,
    audio: str | Path | None = None,
    text: str | None = None,
    options: DubOptions = DubOptions(),
    progress: Progress | None = None,
    timings: Timings | None = None,
    report: DubReport | None = None,
    models: SpeechModels | None = None,
    track=None,
) -> Path:
    """Re-lip-sync ``video`` to ``audio`` or ``text``: an MP4 (H.264 + AAC) with the video's frames,
    size and rate, the lower face redrawn for the new speech. Returns the output path; nothing is
    left at ``output`` unless the whole job succeeds. ``track``: see dub_chunks. With
    ``options.processes`` worker processes track the face in pieces (without ``track``;
    trackspans.py), then others decode, draw and encode spans of the video (spans.py)."""
    from ..media import check_output_path

    output = check_output_path(output)
    for name, inp in (("video", video), ("audio", audio)):
        if inp is not None and _same_file(output, inp):
            raise OutputError(f"{output}: is the input {name}; writing there would destroy it. Choose another "
                              "output path.")
    timings = timings if timings is not None else Timings()
    processes = options.process_count()
    pool = None
    if processes > 1 and (track is not None or audio is not None):  # the span workers start alongside the scan
        from .spans import start_workers

        with timings.stage("span workers start"):
            pool = start_workers(processes)
    try:
        job = DubJob(video, audio=audio, text=text, options=options, timings=timings, report=report, models=models,
                     track=track, pieces=processes if pool is not None else 0)
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    try:
        if processes > 1:
            from .spans import span_blockers

            why = span_blockers(job.src, job.track, processes, job.expect_frames, job.source.mouth_drawer())
            if not why:
                return _dub_in_spans(job, output, pool, processes, progress)
            note = f"drawing on one process, not {processes}: " + "; ".join(why)
            if options.processes:  # asked for: say so; auto: only in the log
                log.warning("%s: %s", job.src.path, note)
                job.source.report.notes.append(note)
            else:
                log.info("%s: %s", job.src.path, note)
        return _dub_here(job, output, progress)
    finally:
        job.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _dub_here(job: DubJob, output: Path, progress: Progress | None) -> Path:
    """The steps drawn on this process (and its draw threads), encoded on a second thread."""
    chunks = _drawn(job, progress)
    first = _first_of(chunks)
    W, H = job.source.size
    ref = _sound_format(first.audio)
    # render_parts makes a new array for every chunk and never writes to it once handed out.
    with BackgroundWriter(output, job.so, W, H, ref.sample_rate, ref.channels, job.timings,
                          handed_over=True) as writer:
        for chunk in itertools.chain([first], chunks):
            writer.put(chunk)
    return output


def _first_of(items: Iterator):
    """The first item (a step or chunk); InputError when the job has none."""
    first = next(items, None)
    if first is None:
        raise InputError("dub: nothing to render (the input has no duration).")
    return first


def _sound_format(audio: tuple[AudioChunk, ...]) -> AudioChunk:
    """The first chunk of the job's sound (its rate and channels make the AAC track)."""
    return audio[0] if audio else AudioChunk(np.zeros((1, 0), np.float32), 22050)


def _dub_in_spans(job: DubJob, output: Path, pool, processes: int, progress: Progress | None) -> Path:
    """The steps drawn and encoded by ``processes`` workers in spans (spans.py); the sound is
    written as the video it belongs to arrives, so the file stays interleaved."""
    from ..media import Mp4Writer
    from ..media.yuvroi import matrix_of
    from .spans import SpanRenderer, source_colour

    steps = job.steps()
    first = _first_of(steps)
    W, H = job.source.size
    ref = _sound_format(first.audio)
    enc = job.options.encode
    colour = source_colour(job.src)
    timings = job.timings
    sound: list[AudioChunk] = []  # written once the video reaches their end
    with Mp4Writer(output, fps=job.src.fps, width=W, height=H, audio_rate=ref.sample_rate,
                   audio_channels=ref.channels, crf=enc.crf, preset=enc.preset, codec=enc.codec,
                   colour=colour) as writer:
        with timings.stage("span setup"):
            spans = SpanRenderer(job.source, job.track, job.src, pool, processes, writer.stream_settings(1),
                                 matrix_of(colour[0]), job.expect_frames)
        try:
            done = 0

            def write(results) -> int:
                n = done
                for res in results:
                    with timings.stage("encode (overlapped)"):
                        writer.write_encoded(res.packets, res.frames)
                        n = res.first + res.frames
                        while sound and sound[0].end <= n / job.src.fps + 1e-6:
                            writer.write_audio(sound.pop(0))
                if progress and n > done:
                    progress(n / job.src.fps, job.total)
                return n

            for step in itertools.chain([first], steps):
                with timings.stage("draw"):
                    spans.add(step.drive)
                sound.extend(step.audio)
                done = write(spans.results())
            spans.finish()
            with timings.stage("span tail"):
                done = write(spans.results(block=True))
            for chunk in sound:
                writer.write_audio(chunk)
            for k, v in spans.spent.items():
                timings.add(f"span {k} (workers)", v)
        finally:
            spans.close()
    return output


def _same_file(a: str | Path, b: str | Path) -> bool:
    a, b = Path(a), Path(b)
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False
