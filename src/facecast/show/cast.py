"""The cast: every speaker's face (a FaceSource at the layout's face size) and voice, opened and
checked before anything is rendered, with errors pointing at the script line that names them.

Faces: a portrait image or a twin (``sources.open_face`` decides by content), or a video of the
person (by content, or a video file name: ``show.video.VideoFaceSource``, re-lip-synced with
dub's machinery). Voices: the bundled Piper voice, or any Piper ``.onnx`` voice file
(``voice.load_voice``), at the speaker's rate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import FacecastError, InputError
from ..options import MAX_SEED, SayOptions
from ..sources import FaceSource, open_face
from ..timing import Timings
from .options import ScriptOptions
from .script import Recording, Script, ScriptError, Speaker

__all__ = ["Member", "open_cast", "close_cast", "check_recordings", "is_video_face", "VIDEO_SUFFIXES", "say_options"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")


@dataclass
class Member:
    """One speaker of the show: the script's Speaker, its FaceSource, its voice and rate, and
    its seat (0-based order in the front matter)."""

    speaker: Speaker
    source: FaceSource
    voice: object
    seat: int


def say_options(options: ScriptOptions, face_side: int, seat: int) -> SayOptions:
    """The SayOptions a speaker's face renders with: the layout's face size, the show's fps,
    motion, render and encode settings, and a seed of its own (blinks never line up)."""
    seed = (options.motion.seed + 7919 * seat) % (MAX_SEED + 1)
    return SayOptions(size=face_side, fps=options.fps, segment_max_s=options.segment_max_s,
                      motion=dataclasses.replace(options.motion, seed=seed), render=options.render,
                      encode=options.encode)


def _voice(script: Script, sp: Speaker):
    from ..voice import default_voice, load_voice

    if sp.voice is None:
        return default_voice()
    try:
        return load_voice(sp.voice)
    except FacecastError as exc:
        raise ScriptError(script.path, sp.line, f"speaker {sp.name}: voice: {exc}") from None


def _face(script: Script, sp: Speaker, options: ScriptOptions, face_side: int, seat: int,
          timings: Timings) -> FaceSource:
    video = is_video_face(sp.face)
    if sp.track is not None and not video:
        raise ScriptError(script.path, sp.line, f"speaker {sp.name}: track: a track file belongs to a video face; "
                          f"{sp.face.name} is not a video. Remove track:, or give the video as face:.")
    try:
        if video:
            from .video import open_video_source

            with timings.stage("face"):
                return open_video_source(sp.face, say_options(options, face_side, seat), face_side, track=sp.track,
                                         loop_s=options.video_loop_s)
        return open_face(str(sp.face), say_options(options, face_side, seat), timings)
    except FacecastError as exc:
        raise ScriptError(script.path, sp.line, f"speaker {sp.name}: face: {exc}") from None


def is_video_face(path: Path) -> bool:
    """Whether a speaker's face file is a video, by content (moving pictures or sound: an audio
    file gets the video face's message), or by a video name when its content is unreadable (a
    damaged video gets the video decoder's message); an image or a twin is never one, whatever
    its name."""
    from ..sources import is_twin_input, is_video_input

    if is_video_input(path):
        return True
    if path.suffix.lower() not in VIDEO_SUFFIXES or is_twin_input(path):
        return False
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            return False
    except (UnidentifiedImageError, OSError, ValueError):
        return True


def open_cast(script: Script, options: ScriptOptions, face_side: int, timings: Timings | None = None
              ) -> dict[str, Member]:
    """Every speaker's voice, then face (voices first: loading a voice is quick to fail, finding
    a face takes longer). ScriptError at the speaker's line for any that cannot be used."""
    timings = timings if timings is not None else Timings()
    voices = {name: _voice(script, sp) for name, sp in script.speakers.items()}
    cast: dict[str, Member] = {}
    try:
        for seat, (name, sp) in enumerate(script.speakers.items()):
            cast[name] = Member(sp, _face(script, sp, options, face_side, seat, timings), voices[name], seat)
    except BaseException:
        close_cast(cast)
        raise
    return cast


def close_cast(cast: dict[str, Member]) -> None:
    """Release what the faces hold (a video face's temporary file of frames)."""
    for m in cast.values():
        close = getattr(m.source, "close", None)
        if close is not None:
            close()


def check_recordings(script: Script) -> float:
    """Open every recorded take (``[audio: FILE]``) once, before rendering: ScriptError at its
    line when one cannot be decoded. Returns their total duration in seconds."""
    from ..audio import open_audio

    total = 0.0
    seen: dict[Path, float] = {}
    for line in script.lines:
        for part in line.parts:
            if isinstance(part, Recording):
                if part.path not in seen:
                    try:
                        seen[part.path] = open_audio(part.path).duration or 0.0
                    except InputError as exc:
                        raise ScriptError(script.path, line.line, f"[audio: {part.path.name}]: {exc}") from None
                total += seen[part.path]
    return total
