"""The job kinds: a request's spec -> facecast's options dataclasses -> a call of the Python API.

No FastAPI and no pydantic here: the server calls ``build_options`` to check a spec before it
queues the job (an out-of-range value is a ``SpecError`` naming the spec field, from the
dataclasses' own range checks), and the worker process calls ``run_job``.

    kind        face input            speech           result         Python API
    say         portrait or .twin     text or audio    result.mp4     facecast.say
    dub         video                 text or audio    result.mp4     facecast.dub
    twin_train  video (1-5 minutes)   -                result.twin    twin.pipeline.train_twin

Public API: ``KINDS``, ``FACE_KINDS``, ``RESULT_FILES``, ``SpecError``, ``build_options``,
``run_job``, ``TWIN_WORK``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..errors import InputError, OptionError

__all__ = ["FACE_KINDS", "KINDS", "RESULT_FILES", "SpecError", "TWIN_WORK", "build_options", "run_job"]

KINDS = ("say", "dub", "twin_train")
FACE_KINDS = {"say": ("image", "twin"), "dub": ("video",), "twin_train": ("video",)}
"""Which uploaded faces each kind takes (store.Face.kind)."""
RESULT_FILES = {"say": "result.mp4", "dub": "result.mp4", "twin_train": "result.twin"}
TWIN_WORK = "twin.work"
"""The twin's work folder inside its job folder: track caches and the renderer checkpoint, so a
re-queued job resumes where the killed one stopped."""

SPEC_FIELDS = {
    "SayOptions.size": "size", "SayOptions.fps": "fps", "SayOptions.face_index": "face_index",
    "MotionOptions.seed": "seed", "MotionOptions.head_motion": "head_motion",
    "MotionOptions.expressiveness": "expressiveness", "MotionOptions.expression": "expression",
    "EncodeOptions.crf": "crf", "EncodeOptions.preset": "preset",
    "DubOptions.face_index": "face_index", "DubOptions.mouth": "mouth",
    "PrepOptions.crop_px": "crop", "RenderConfig.size": "crop", "RenderTrainOptions.steps": "steps",
    "RenderTrainOptions.seconds": "minutes", "TwinTrainOptions.seed": "seed", "RenderTrainOptions.seed": "seed",
    "TwinTrainOptions.mouth_folds": "mouth_folds",
}
"""Option dataclass fields a spec sets -> the spec field, for error messages."""

Emit = Callable[[dict], None]


class SpecError(InputError):
    """A spec value the options refuse. ``field``: the spec's field name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _spec_error(exc: OptionError) -> SpecError:
    name = SPEC_FIELDS.get(exc.option, exc.option)
    value = exc.value / 60 if name == "minutes" and isinstance(exc.value, (int, float)) else exc.value
    rule = exc.rule
    if name == "minutes":
        rule = "a number above 0, at most 10080 minutes"
    rule += " (or null)" if exc.none_ok else ""
    shown = json.dumps(value) if _jsonable(value) else repr(value)
    return SpecError(name, f"{name} = {shown}: must be {rule}.")


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def build_options(kind: str, spec: dict, device: str, job_dir: Path | None = None):
    """The options dataclass of ``kind`` from a validated ``spec`` (dict of its fields, defaults
    filled in). SpecError naming the spec field when a value is out of range."""
    try:
        if kind == "say":
            return _say_options(spec, device)
        if kind == "dub":
            return _dub_options(spec, device)
        if kind == "twin_train":
            return _twin_options(spec, device, job_dir)
    except OptionError as exc:
        raise _spec_error(exc) from None
    raise SpecError("kind", f"kind = {kind!r}: must be one of {', '.join(KINDS)}.")


def _say_options(spec: dict, device: str):
    from ..options import EncodeOptions, MotionOptions, RenderOptions, SayOptions

    return SayOptions(size=spec["size"], fps=spec["fps"], face_index=spec["face_index"], words=spec["words"],
                      motion=MotionOptions(seed=spec["seed"], head_motion=spec["head_motion"],
                                           expressiveness=spec["expressiveness"], expression=spec["expression"]),
                      render=RenderOptions(device=device),
                      encode=EncodeOptions(crf=spec["crf"], preset=spec["preset"]))


def _dub_options(spec: dict, device: str):
    from ..dubbing.options import DubOptions
    from ..options import EncodeOptions, RenderOptions

    return DubOptions(face_index=spec["face_index"], keep_length=spec["keep_length"], mouth=spec["mouth"],
                      calibrate=spec["calibrate"], words=spec["words"], render=RenderOptions(device=device),
                      encode=EncodeOptions(crf=spec["crf"], preset=spec["preset"]))


def _twin_options(spec: dict, device: str, job_dir: Path | None):
    from ..options import Range
    from ..twin.net import RenderConfig
    from ..twin.options import PrepOptions, RenderTrainOptions, TwinTrainOptions

    Range(0, 10080, "minutes", lo_open=True).check("RenderTrainOptions.seconds", spec["minutes"] * 60
                                                   if isinstance(spec["minutes"], (int, float)) else spec["minutes"])
    tiny, crop = spec["tiny"], spec["crop"]
    PrepOptions.RANGES["crop_px"].check("PrepOptions.crop_px", crop)
    cfg = RenderConfig(size=crop, widths=(16, 16, 32) if tiny else RenderConfig().widths, mid_blocks=1 if tiny else 2)
    return TwinTrainOptions(
        device=device,
        prep=PrepOptions(crop_px=crop, min_speech_s=3.0 if tiny else PrepOptions().min_speech_s),
        render=RenderTrainOptions(config=cfg, steps=spec["steps"], seconds=spec["minutes"] * 60, batch=4 if tiny else 16),
        mouth_steps=30 if tiny else None, seed=spec["seed"], mouth_folds=spec["mouth_folds"],
        work_dir=str(job_dir / TWIN_WORK) if job_dir is not None else None)


# ---------------------------------------------------------------------------------------------
# In the worker process
# ---------------------------------------------------------------------------------------------

CHARS_PER_S = 14.0
"""Characters of English text per second of speech, for a text job's progress estimate."""

TWIN_STAGES = {"track": (0.0, 0.25), "prepare": (0.25, 0.3), "mouth": (0.3, 0.45), "render": (0.45, 0.97)}
"""Share of a twin training's whole run each stage takes (start, end): a rough guide for the
overall fraction; the events also name the stage."""


def run_job(kind: str, spec: dict, inputs: dict[str, Path], job_dir: Path, device: str, emit: Emit) -> str:
    """Run one job in this (worker) process; returns the result's file name in ``job_dir``.
    ``emit`` gets {"type": "stage", "stage": ...} and {"type": "progress", "fraction": f|None}."""
    options = build_options(kind, spec, device, job_dir)
    out = job_dir / RESULT_FILES[kind]
    emit({"type": "stage", "stage": "render" if kind != "twin_train" else "track"})

    # Text has no known length until it is spoken: estimate it (English speech runs ~14
    # characters a second) and never claim more than 95 % on the estimate.
    guess = max(1.0, len(spec["text"]) / CHARS_PER_S) if spec.get("text") else None

    def seconds_done(done: float, total: float | None) -> None:
        if total:
            fraction = min(1.0, done / total)
        else:
            fraction = min(0.95, done / guess) if guess else None
        emit({"type": "progress", "fraction": fraction})

    if kind == "say":
        from ..pipeline import say

        say(inputs["face"], out, text=spec.get("text"), audio=inputs.get("audio"), transcript=spec.get("transcript"),
            options=options, progress=seconds_done)
    elif kind == "dub":
        from ..dubbing.pipeline import dub

        dub(inputs["face"], out, audio=inputs.get("audio"), text=spec.get("text"), options=options,
            progress=seconds_done)
    else:
        from ..twin.pipeline import train_twin

        current = {"stage": "track"}

        def staged(stage: str, done: float, total: float | None) -> None:
            lo, hi = TWIN_STAGES.get(stage, (0.97, 1.0))
            if stage != current["stage"]:
                current["stage"] = stage
                emit({"type": "stage", "stage": stage})
            emit({"type": "progress", "fraction": lo + (hi - lo) * (min(1.0, done / total) if total else 0.0)})

        train_twin([inputs["face"]], out, options, progress=staged)
    if not out.is_file():
        raise InputError(f"{kind}: finished without writing its result")
    return out.name
