"""The show orchestrator: `render_script` reads as a list of passes over a stream of beats.

    parse       the script -> Script (front matter, lines, every part with its line)  (script.py)
    check       outputs, recordings, faces and voices, before anything is rendered    (cast.py)
    speak       line by line -> Beats: speech sentence by sentence (Piper, exact phones and
                word times), pauses, recorded takes in pieces; lines gap_s apart        (timeline.py)
    subtitles   each sentence's words timed on the voice's phonemes, a recorded take's
                aligned (transcript) or recognised -> cues, streamed to
                OUTPUT.srt / OUTPUT.vtt                                   (words.py, takes.py, subtitles.py)
    analyse     the speaker's Speech (known phones, or recognised for a recording)     (speech.py)
    direct      the speaker animates from its speech; every other face listens (silent speech:
                closed mouth, its own blinks and head drift, listener nods, gaze to the speaker);
                solo cuts to the speaker on line boundaries after min_shot_s           (listen.py, layout.py)
    render      each visible face, in batches of frames (a video face: its footage at that
                time, mouth redrawn)                                 (FaceSource.render, video.py)
    compose     faces into the picture over the background, captions, burnt-in subtitles (layout.py)
    encode      H.264 + AAC on a second thread (pipeline.BackgroundWriter)

Nothing is held beyond one sentence (or one recording piece) of audio and one batch of frames,
so memory stays flat and time grows linearly with the script (docs/scripts.md has the numbers).
Nothing is left at the output paths unless the whole show succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..dubbing.source import release_freed_memory
from ..pipeline import BackgroundWriter, SayChunk
from ..segments import Segment
from ..speech import LoudnessGain, SpeechAnalyser
from ..timing import Timings
from ..types import MotionFrames, MouthShapes, VideoFrames
from .cast import Member, check_recordings, close_cast, open_cast, say_options
from .layout import Director, Layout
from .listen import Gaze, GAZE_RAD, NodSchedule, listen, silent_speech
from .options import ScriptOptions
from .script import Recording, Script, parse_script
from .subtitles import SubtitleFiles, TextOverlay, subtitle_paths
from .timeline import Beat, Timeline
from .words import Cue

__all__ = ["render_script", "Show", "ShowStatus", "DEFAULT_SIZE", "frames_per_batch"]

DEFAULT_SIZE = (1280, 720)
BATCH_BYTES = 48 * 2**20
"""A composed batch of frames stays under this many bytes (fewer frames per batch when large)."""


@dataclass(frozen=True)
class ShowStatus:
    """Progress of a show: lines started of the total, seconds of video rendered."""

    line: int
    lines: int
    seconds: float


ShowProgress = Callable[[ShowStatus], None]


def frames_per_batch(width: int, height: int) -> int:
    """Frames rendered and composed at once: 50 at most, fewer for large pictures."""
    return int(max(1, min(50, BATCH_BYTES // (width * height * 3))))


def render_script(script: str | Path | Script, output: str | Path, options: ScriptOptions = ScriptOptions(), *,
                  progress: ShowProgress | None = None, timings: Timings | None = None) -> Path:
    """Render the show ``script`` (a script file, or a parsed Script) to the MP4 ``output``;
    returns its path. Subtitle files go beside it (``options.subtitles``: OUTPUT.srt /
    OUTPUT.vtt). Raises ScriptError (an InputError naming FILE:LINE) for a mistake in the script,
    InputError / OutputError / OptionError otherwise, before anything is rendered where it can
    be known; nothing is left at the output paths unless the whole show succeeds."""
    from ..device import resolve_device
    from ..media import prepare_output

    timings = timings if timings is not None else Timings()
    script = script if isinstance(script, Script) else parse_script(script)
    inputs = _inputs(script)
    output = prepare_output(output, inputs=inputs)
    paths = subtitle_paths(output, options.subtitles)
    subs = SubtitleFiles(paths, inputs=inputs) if paths else None
    try:
        check_recordings(script)
        W, H = options.size or script.size or DEFAULT_SIZE
        device = resolve_device(options.render.device)
        layout = Layout(options.layout or script.layout, (W, H), list(script.speakers), background=script.background,
                        captions=script.captions if options.captions is None else options.captions,
                        captions_top=options.burn_subtitles, device=device)
        cast = open_cast(script, options, layout.face_side, timings)
        try:
            torch.set_num_threads(1)  # one core renders while the other encodes (as `say`)
            show = Show(script, cast, layout, options, subs, device, timings)
            with BackgroundWriter(output, say_options(options, layout.face_side, 0), W, H, options.audio_rate, 1,
                                  timings) as writer:
                transcriber = None
                if subs is not None or options.burn_subtitles:
                    from .takes import Transcriber

                    transcriber = Transcriber(options.fps, options.segment_max_s)
                timeline = Timeline(script, {n: (m.voice, m.speaker.rate) for n, m in cast.items()}, options.fps,
                                    options.audio_rate, options.gap_s, options.segment_max_s, transcriber)
                for beat in timings.timed_iter("voice", timeline.beats()):
                    for chunk in show.play(beat):
                        writer.put(chunk)
                    release_freed_memory()  # frames freed on the encoder's thread: give the pages back
                    if progress:
                        progress(ShowStatus(beat.index + 1, len(script.lines), beat.segment.end))
        finally:
            close_cast(cast)
        if subs is not None:
            subs.close()
    except BaseException:
        if subs is not None:
            subs.abort()
        raise
    return output


def _inputs(script: Script) -> list[tuple[str, Path]]:
    """(label, path) of every file the show reads: an output may be none of them."""
    out = [("script", script.path)]
    for sp in script.speakers.values():
        out.append((f"face of {sp.name}", sp.face))
        if sp.voice is not None:
            out.append((f"voice of {sp.name}", sp.voice))
        if sp.track is not None:
            out.append((f"track of {sp.name}", sp.track))
    if isinstance(script.background, Path):
        out.append(("background", script.background))
    out += [("recording", p.path) for line in script.lines for p in line.parts if isinstance(p, Recording)]
    return out


class Show:
    """The per-beat passes (analyse, direct, render, compose) and their state across beats:
    the director, each face's gaze and listener nods, loudness gains, the cues on screen."""

    def __init__(self, script: Script, cast: dict[str, Member], layout: Layout, options: ScriptOptions,
                 subs: SubtitleFiles | None, device: torch.device, timings: Timings) -> None:
        self.cast, self.layout, self.options, self.subs, self.timings = cast, layout, options, subs, timings
        self.device = device
        self.fps = options.fps
        recorded = any(isinstance(p, Recording) for line in script.lines for p in line.parts)
        self.analyser = SpeechAnalyser(say_options(options, layout.face_side, 0), None, need_aligner=recorded)
        self.gains = {name: LoudnessGain() for name in cast}
        self.gazes = {name: Gaze(self.fps) for name in cast}
        self.nods = {name: NodSchedule(m.seat + options.motion.seed * 31, options.motion.head_motion)
                     for name, m in cast.items()}
        self.director = Director(options.min_shot_s)
        self.line = -1
        self.batch = frames_per_batch(*layout.size)
        self.burn: list[tuple[Cue, TextOverlay | None]] = []

    def play(self, beat: Beat):
        """SayChunks (picture + audio) of one beat, in batches of frames."""
        seg = beat.segment
        if beat.line is not None and beat.index != self.line:
            self.line = beat.index
            self.director.line_starts(beat.speaker, seg.start)
        for cue in beat.cues:
            if self.subs is not None:
                self.subs.write(cue)
            if self.options.burn_subtitles:
                self.burn.append((cue, None))
        n = seg.num_frames
        if n == 0:
            return
        drives = self.direct(beat)
        audio = seg.output_audio
        for a in range(0, n, self.batch):
            b = min(a + self.batch, n)
            with self.timings.stage("render"):
                faces = {name: self.cast[name].source.render(_rows(d, a, b)).frames for name, d in drives.items()}
            with self.timings.stage("compose"):
                picture = self.layout.compose(faces, b - a)
                if self.burn:
                    self._burn(picture, seg.first_frame + a)
            yield SayChunk(VideoFrames(picture, self.fps, seg.first_frame + a), audio, seg)
            audio = ()

    def direct(self, beat: Beat) -> dict[str, MotionFrames | MouthShapes]:
        """The drive of every visible face (and of twins off screen, whose mouth model listens
        to every moment): the speaker from its speech, the others listening."""
        seg, speaker = beat.segment, beat.speaker
        f0, n = seg.first_frame, seg.num_frames
        visible = set(self.layout.visible(self.director.shot))
        quiet = Segment(seg.start, seg.end, f0, n, np.zeros_like(seg.analysis), (), ())  # what listeners hear
        drives: dict[str, MotionFrames | MouthShapes] = {}
        for name, m in self.cast.items():
            src = m.source
            if name not in visible and src.needs_speech:
                continue  # off screen: its motion is a function of time, nothing to keep up
            with self.timings.stage("motion"):
                if name == speaker:
                    speech = None
                    if src.needs_speech:
                        self.analyser.gain = self.gains[name]
                        speech = self.analyser.speech(seg, self.timings)
                    drive = src.animate(seg, speech)
                    nods = None
                else:
                    drive = src.animate(quiet, silent_speech(f0, n, self.fps) if src.needs_speech else None)
                    nods = self.nods[name]
                if isinstance(drive, MotionFrames) and not getattr(src, "own_head", False):
                    target = GAZE_RAD * self.layout.direction(name, speaker)
                    drive = listen(drive, nods, self.gazes[name].yaw(target, n))
            if name in visible:
                drives[name] = drive
        return drives

    def _burn(self, picture: torch.Tensor, first_frame: int) -> None:
        """Draw the cues on screen during these frames into ``picture``."""
        W, H = self.layout.size
        times = (first_frame + np.arange(picture.shape[0])) / self.fps
        keep = []
        for cue, overlay in self.burn:
            if cue.end < times[0]:
                continue  # over: dropped (memory stays flat)
            on = np.nonzero((times >= cue.start) & (times < cue.end))[0]
            if on.size:
                if overlay is None:
                    overlay = TextOverlay(cue.text, W, H, scale=0.05, device=self.device)
                ow, oh = overlay.size
                overlay.paste(picture[on[0]:on[-1] + 1], (W - ow) // 2, H - oh - H // 16)
            keep.append((cue, overlay))
        self.burn = keep


def _rows(drive: MotionFrames | MouthShapes, a: int, b: int):
    """Frames [a, b) of a face's drive."""
    if isinstance(drive, MotionFrames):
        return MotionFrames(drive.params[a:b], drive.fps, drive.first_frame + a)
    return MouthShapes(drive.points[a:b], drive.fps, drive.first_frame + a)
