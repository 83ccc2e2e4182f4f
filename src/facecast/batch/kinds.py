"""The job kinds of a batch, behind one small registry: each kind parses its JSON fields into a
typed request (with the same options dataclasses as its command) and runs it on a warm worker.

    JobKind: name, fields, parse(values, where, base) -> (request, output, inputs),
             run(request, output, worker, progress), with_device(request, device) -> request,
             files(request) -> (request, [(label, path)]): every file the job reads (a script's
                 own references too), with the request as it travels to a worker that has none
                 of them (a script parsed here),
             with_paths(request, move) -> request: the same job reading its files where
                 ``move(path)`` puts them (a Ray worker's temporary folder),
             outputs(request, output) -> [path]: every file the job may write (MP4 last).
    KINDS: name -> JobKind; register(kind) adds one.

Kinds: ``say`` (SayRequest -> pipeline.say), ``dub`` (DubRequest -> dubbing.dub), ``script``
(ScriptRequest -> show.render_script).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Protocol

from ..errors import FacecastError, InputError, OptionError
from ..options import EncodeOptions, MotionOptions, RenderOptions, SayOptions
from .spec import Field, Job, JobError, check_value, option_error

__all__ = ["JobKind", "KINDS", "register", "parse_job", "SayRequest", "DubRequest", "ScriptRequest", "script_files",
           "moved_script"]

Progress = Callable[[float, "float | None"], None]

class JobKind(Protocol):
    name: str
    fields: tuple[Field, ...]

    def parse(self, values: dict, where: str, base: Path) -> tuple[object, Path, tuple[tuple[str, Path], ...]]:
        ...

    def run(self, request, output: Path, worker, progress: Progress) -> None:
        ...

    def with_device(self, request, device: str):
        ...

    def files(self, request) -> tuple[object, list[tuple[str, Path]]]:
        ...

    def with_paths(self, request, move: Callable[[Path], Path]):
        ...

    def outputs(self, request, output: Path) -> list[Path]:
        ...


KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    KINDS[kind.name] = kind
    return kind


def parse_job(obj: dict, where: str, line: int, base: Path) -> Job:
    """A Job from one JSON object, or JobError naming ``where`` and the field."""
    name = obj.get("kind")
    if name is None:
        raise JobError(where, f"no \"kind\": say which job this is, one of {', '.join(KINDS)}.")
    if name not in KINDS:
        raise JobError(where, f"unknown kind {json.dumps(name)}: must be one of {', '.join(KINDS)}.")
    kind = KINDS[name]
    known = {f.name: f for f in kind.fields}
    unknown = [k for k in obj if k != "kind" and k not in known]
    if unknown:
        raise JobError(where, f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(json.dumps(k) for k in unknown)} "
                       f"for a {name} job. Its fields: {', '.join(known)}.")
    values = {k: check_value(where, known[k], v) for k, v in obj.items() if k != "kind"}
    request, output, inputs = kind.parse(values, where, base)
    return Job(where, line, name, output, inputs, request)


# -- shared field handling ------------------------------------------------------------------------


def _path(values: dict, key: str, base: Path) -> Path | None:
    v = values.get(key)
    if v is None:
        return None
    p = Path(v).expanduser()
    return p if p.is_absolute() else (base / p).absolute()


def _input(values: dict, key: str, base: Path, where: str, what: str) -> Path | None:
    p = _path(values, key, base)
    if p is not None and not p.is_file():
        state = "is a folder, not a file" if p.is_dir() else "does not exist"
        raise JobError(where, f"field \"{key}\": {what} {p} {state}.")
    return p


def _one_of(values: dict, keys: tuple[str, ...], where: str) -> str:
    given = [k for k in keys if k in values]
    if len(given) != 1:
        raise JobError(where, f"give exactly one of {' / '.join(json.dumps(k) for k in keys)}"
                       + (f" (got {' and '.join(given)})." if given else "."))
    return given[0]


def _output(values: dict, base: Path, where: str, inputs) -> Path:
    from ..media import check_output_path

    if "output" not in values:
        raise JobError(where, "no \"output\": give the MP4 path this job writes.")
    try:
        return check_output_path(_path(values, "output", base), inputs=[(k, str(p)) for k, p in inputs])
    except FacecastError as exc:
        raise JobError(where, f"field \"output\": {exc}") from None


def _text(values: dict, where: str) -> str | None:
    from ..text import check_text

    text = values.get("text")
    if text is not None:
        try:
            check_text(text)
        except InputError as exc:
            raise JobError(where, f"field \"text\": {exc}") from None
    return text


# -- say ------------------------------------------------------------------------------------------


class OnDevice:
    """``with_device`` of every kind: a request that names no device renders on ``device`` (the
    worker's GPU); one that names its own keeps it."""

    def with_device(self, request, device: str):
        if request.device is not None:
            return request
        o = request.options
        return replace(request, options=replace(o, render=replace(o.render, device=device)))


@dataclass(frozen=True)
class SayRequest:
    """A `say` job: ``face`` a portrait image or a .twin file (told by content), exactly one of
    ``text`` / ``audio``; ``device`` None = the batch's device."""

    face: Path
    text: str | None
    audio: Path | None
    transcript: str | None
    options: SayOptions
    device: str | None = None


class SayKind(OnDevice):
    name = "say"
    fields = (
        Field("portrait", "path"), Field("twin", "path"), Field("output", "path"), Field("text", "text"),
        Field("audio", "path"), Field("transcript", "text"), Field("size", "size", "SayOptions.size"),
        Field("fps", "number", "SayOptions.fps"), Field("face", "number", "SayOptions.face_index"),
        Field("device", "name"), Field("seed", "number", "MotionOptions.seed"),
        Field("crf", "number", "EncodeOptions.crf"), Field("preset", "name", "EncodeOptions.preset"),
        Field("head_motion", "number", "MotionOptions.head_motion"),
        Field("expressiveness", "number", "MotionOptions.expressiveness"),
        Field("expression", "name", "MotionOptions.expression"), Field("words", "bool"),
        Field("workers", "number", "SayOptions.workers"), Field("encoders", "number", "EncodeOptions.workers"),
    )

    def parse(self, values: dict, where: str, base: Path):
        face_key = _one_of(values, ("portrait", "twin"), where)
        _one_of(values, ("text", "audio"), where)
        if "transcript" in values and "audio" not in values:
            raise JobError(where, "field \"transcript\" goes with \"audio\" (with \"text\" the words are known).")
        face = _input(values, face_key, base, where, "portrait" if face_key == "portrait" else "twin")
        audio = _input(values, "audio", base, where, "audio file")
        inputs = tuple((k, p) for k, p in ((face_key, face), ("audio", audio)) if p is not None)
        g = values.get
        try:
            size = g("size", 512)
            options = SayOptions(
                size=None if size == "portrait" else size, fps=g("fps", 25.0), face_index=g("face"),
                workers=g("workers", 0), words=g("words", True),
                motion=MotionOptions(seed=g("seed", 0), head_motion=g("head_motion", 1.0),
                                     expressiveness=g("expressiveness", 1.0), expression=g("expression", "neutral")),
                render=RenderOptions(device=g("device", "cpu")),
                encode=EncodeOptions(crf=g("crf", 23), preset=g("preset", "veryfast"), workers=g("encoders", 1)))
        except OptionError as exc:
            raise option_error(where, exc, self.fields) from None
        output = _output(values, base, where, inputs)
        return SayRequest(face, _text(values, where), audio, g("transcript"), options, g("device")), output, inputs

    def run(self, request: SayRequest, output: Path, worker, progress: Progress) -> None:
        from ..pipeline import say

        face = worker.face_source(request.face, request.options)
        models = worker.speech_models() if request.audio is not None and face.needs_speech else None
        say(face, output, text=request.text, audio=request.audio, transcript=request.transcript,
            options=request.options, progress=progress, models=models)

    def files(self, request: SayRequest):
        return request, [(k, p) for k, p in (("face", request.face), ("audio", request.audio)) if p is not None]

    def with_paths(self, request: SayRequest, move) -> SayRequest:
        return replace(request, face=move(request.face), audio=_moved(request.audio, move))

    def outputs(self, request: SayRequest, output: Path) -> list[Path]:
        return [output]


# -- dub ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DubRequest:
    """A `dub` job: ``video`` re-lip-synced to exactly one of ``text`` / ``audio``; ``track``
    the video's face track made by `facecast dub-track` (None: tracked here, with mediapipe)."""

    video: Path
    text: str | None
    audio: Path | None
    options: object  # DubOptions
    device: str | None = None
    track: Path | None = None


class DubKind(OnDevice):
    name = "dub"
    fields = (
        Field("video", "path"), Field("output", "path"), Field("audio", "path"), Field("text", "text"),
        Field("face", "number", "DubOptions.face_index"), Field("keep_length", "bool"),
        Field("mouth", "name", "DubOptions.mouth"), Field("device", "name"),
        Field("crf", "number", "EncodeOptions.crf"), Field("preset", "name", "EncodeOptions.preset"),
        Field("calibrate", "bool"), Field("words", "bool"), Field("workers", "number", "DubOptions.workers"),
        Field("track", "path"), Field("mouth_model", "name", "DubOptions.mouth_model"),
        Field("draw_workers", "number", "DubOptions.draw_workers"),
        Field("processes", "number", "DubOptions.processes"),
    )

    def parse(self, values: dict, where: str, base: Path):
        from ..dubbing.options import DubOptions

        if "video" not in values:
            raise JobError(where, "no \"video\": give the video to re-lip-sync.")
        _one_of(values, ("text", "audio"), where)
        video = _input(values, "video", base, where, "video")
        audio = _input(values, "audio", base, where, "audio file")
        track = _input(values, "track", base, where, "track file")
        inputs = tuple((k, p) for k, p in (("video", video), ("audio", audio), ("track", track)) if p is not None)
        g = values.get
        try:
            options = DubOptions(face_index=g("face"), keep_length=g("keep_length", False), mouth=g("mouth", "auto"),
                                 calibrate=g("calibrate", True), words=g("words", True), workers=g("workers", 1),
                                 mouth_model=g("mouth_model", "auto"), draw_workers=g("draw_workers", 0),
                                 # jobs run side by side: a job's own span workers only when asked
                                 processes=g("processes", 1),
                                 render=RenderOptions(device=g("device", "cpu")),
                                 encode=EncodeOptions(crf=g("crf", 18), preset=g("preset", "veryfast")))
        except OptionError as exc:
            raise option_error(where, exc, self.fields) from None
        if track is not None:
            _check_track(track, options.face_index, where)
        output = _output(values, base, where, inputs)
        return DubRequest(video, _text(values, where), audio, options, g("device"), track), output, inputs

    def run(self, request: DubRequest, output: Path, worker, progress: Progress) -> None:
        from ..dubbing.pipeline import dub

        models = worker.speech_models() if request.audio is not None else None
        dub(request.video, output, audio=request.audio, text=request.text, options=request.options,
            progress=progress, models=models, track=request.track)

    def files(self, request: DubRequest):
        return request, [(k, p) for k, p in (("video", request.video), ("audio", request.audio),
                                             ("track", request.track)) if p is not None]

    def with_paths(self, request: DubRequest, move) -> DubRequest:
        return replace(request, video=move(request.video), audio=_moved(request.audio, move),
                       track=_moved(request.track, move))

    def outputs(self, request: DubRequest, output: Path) -> list[Path]:
        return [output]


def _check_track(track: Path, face_index: int | None, where: str) -> None:
    """A dub job's track file, read with the batch: a facecast track following the job's face
    (whether it is its video's is checked when the job runs: that hashes the whole video)."""
    from ..dubbing.trackfile import load_track

    try:
        load_track(track, face_index=face_index)
    except InputError as exc:
        raise JobError(where, f"field \"track\": {exc}") from None


# -- script ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptRequest:
    """A `script` job: a show script rendered by facecast.show.render_script (a parsed
    show.Script where the job travels to a worker without the script's files)."""

    script: object  # Path, or a parsed show.Script
    options: object  # show.ScriptOptions
    device: str | None = None


class ScriptKind(OnDevice):
    name = "script"
    fields = (
        Field("script", "path"), Field("output", "path"), Field("device", "name"),
        Field("width", "number", "ScriptOptions.width"), Field("height", "number", "ScriptOptions.height"),
        Field("fps", "number", "ScriptOptions.fps"), Field("layout", "name", "ScriptOptions.layout"),
        Field("captions", "bool"), Field("subtitles", "name", "ScriptOptions.subtitles"),
        Field("burn_subtitles", "bool"), Field("min_shot_s", "number", "ScriptOptions.min_shot_s"),
        Field("gap_s", "number", "ScriptOptions.gap_s"), Field("seed", "number", "MotionOptions.seed"),
        Field("crf", "number", "EncodeOptions.crf"), Field("preset", "name", "EncodeOptions.preset"),
        Field("video_loop_s", "number", "ScriptOptions.video_loop_s"),
    )

    def parse(self, values: dict, where: str, base: Path):
        from ..show import ScriptOptions

        if "script" not in values:
            raise JobError(where, "no \"script\": give the show script to render.")
        script = _input(values, "script", base, where, "script")
        inputs = (("script", script),)
        g = values.get
        try:
            options = ScriptOptions(
                width=g("width"), height=g("height"), fps=g("fps", 25.0), layout=g("layout"),
                captions=g("captions"), subtitles=g("subtitles", "none"), burn_subtitles=g("burn_subtitles", False),
                min_shot_s=g("min_shot_s", 2.0), gap_s=g("gap_s", 0.25), video_loop_s=g("video_loop_s", 30.0),
                motion=MotionOptions(seed=g("seed", 0)), render=RenderOptions(device=g("device", "cpu")),
                encode=EncodeOptions(crf=g("crf", 23), preset=g("preset", "veryfast")))
        except OptionError as exc:
            raise option_error(where, exc, self.fields) from None
        output = _output(values, base, where, inputs)
        return ScriptRequest(script, options, g("device")), output, inputs

    def run(self, request: ScriptRequest, output: Path, worker, progress: Progress) -> None:
        from ..show import render_script

        # the show reports lines started of all lines; the batch's bars take (done, total)
        render_script(request.script, output, request.options,
                      progress=lambda status: progress(float(status.line), float(status.lines)))

    def files(self, request: ScriptRequest):
        from ..show import parse_script

        script = request.script if not isinstance(request.script, Path) else parse_script(request.script)
        return replace(request, script=script), script_files(script)

    def with_paths(self, request: ScriptRequest, move) -> ScriptRequest:
        from ..show import Script

        if not isinstance(request.script, Script):
            return replace(request, script=move(request.script))
        return replace(request, script=moved_script(request.script, move))

    def outputs(self, request: ScriptRequest, output: Path) -> list[Path]:
        from ..show.subtitles import subtitle_paths

        return subtitle_paths(output, request.options.subtitles) + [output]


def script_files(script) -> list[tuple[str, Path]]:
    """(label, path) of every file a parsed show.Script reads: the script, each speaker's face
    (a video face with its track file: named, or STEM.track.npz beside it) and Piper voice (with
    its FILE.onnx.json), the background image, the recorded takes."""
    from ..show.script import Recording
    from ..show.video import track_beside

    out = [("script", script.path)]
    for sp in script.speakers.values():
        out.append((f"face of {sp.name}", sp.face))
        track = sp.track if sp.track is not None else track_beside(sp.face)
        if track is not None:
            out.append((f"face track of {sp.name}", track))
        if sp.voice is not None:
            out.append((f"voice of {sp.name}", sp.voice))
            config = sp.voice.with_name(sp.voice.name + ".json")
            if config.is_file():
                out.append((f"voice config of {sp.name}", config))
    if isinstance(script.background, Path):
        out.append(("background", script.background))
    out += [("recording", p.path) for line in script.lines for p in line.parts if isinstance(p, Recording)]
    seen: set[Path] = set()
    return [(label, p) for label, p in out if not (p in seen or seen.add(p))]


def moved_script(script, move):
    """A parsed show.Script reading its files where ``move(path)`` puts them."""
    from ..show.script import Recording

    speakers = {name: replace(sp, face=move(sp.face), voice=_moved(sp.voice, move), track=_moved(sp.track, move))
                for name, sp in script.speakers.items()}
    lines = tuple(replace(line, parts=tuple(replace(p, path=move(p.path)) if isinstance(p, Recording) else p
                                            for p in line.parts)) for line in script.lines)
    background = move(script.background) if isinstance(script.background, Path) else script.background
    return replace(script, path=move(script.path), speakers=speakers, lines=lines, background=background)


def _moved(path: Path | None, move) -> Path | None:
    return None if path is None else move(path)


register(SayKind())
register(DubKind())
register(ScriptKind())
