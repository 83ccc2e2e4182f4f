"""What a job request's ``spec`` holds: one pydantic model per kind (``extra="forbid"``, strict
types), so an unknown field or a wrong type is a 422 naming the field. The ranges themselves
are the options dataclasses' (kinds.build_options), not repeated here.

Public API: ``SaySpec``, ``DubSpec``, ``TwinTrainSpec``, ``JOB_SPEC`` (the union, by ``kind``),
``parse_spec(text) -> (model, errors)``.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = ["DubSpec", "JOB_SPEC", "SaySpec", "SpecProblem", "TwinTrainSpec", "parse_spec"]

_STRICT = ConfigDict(extra="forbid", strict=True)
MAX_TEXT = 5000


class SaySpec(BaseModel):
    """A portrait (or .twin) says ``text``, or lip-syncs the uploaded ``audio`` (exactly one)."""

    model_config = _STRICT
    kind: Literal["say"]
    text: Optional[str] = Field(None, max_length=MAX_TEXT, description="Text to speak (English); or upload `audio`.")
    transcript: Optional[str] = Field(None, max_length=MAX_TEXT, description="What the audio says (better alignment).")
    size: Optional[int] = Field(512, description="Output side in pixels, even, 64 ... 4096; null keeps the "
                                                 "portrait's framing.")
    fps: float = Field(25.0, description="Frames per second, 1 ... 120.")
    face_index: Optional[int] = Field(None, description="Which face, 0-based from the left; null = the largest.")
    seed: int = Field(0, description="Seed for blinks and head motion, 0 ... 2**32-1.")
    crf: float = Field(23, description="H.264 quality, 0 ... 51 (lower is better).")
    preset: str = Field("veryfast", description="libx264 preset, ultrafast ... veryslow.")
    head_motion: float = Field(1.0, description="Head motion gain, 0 ... 3.")
    expressiveness: float = Field(1.0, description="Mouth motion gain, 0 ... 3.")
    expression: str = Field("neutral", description="neutral, smile, serious, surprised or sad.")
    words: bool = Field(True, description="Audio without transcript: also recognise words (better sync).")


class DubSpec(BaseModel):
    """Re-lip-sync the uploaded video (``face``) to ``text`` or the uploaded ``audio``."""

    model_config = _STRICT
    kind: Literal["dub"]
    text: Optional[str] = Field(None, max_length=MAX_TEXT, description="The new speech as text; or upload `audio`.")
    face_index: Optional[int] = Field(None, description="Which face to dub, 0-based from the left.")
    keep_length: bool = Field(False, description="Speech shorter than the video: keep the rest with a closed mouth.")
    mouth: str = Field("auto", description="auto, footage or mesh.")
    crf: float = Field(18, description="H.264 quality, 0 ... 51.")
    preset: str = Field("veryfast", description="libx264 preset.")
    calibrate: bool = Field(True, description="Fit the mouth to the speaker's own speech in the video.")
    words: bool = Field(True, description="Also recognise words (better sync, more CPU).")


class TwinTrainSpec(BaseModel):
    """Train a twin from the uploaded video (``face``: 1-5 minutes of one person talking)."""

    model_config = _STRICT
    kind: Literal["twin_train"]
    minutes: float = Field(6.0, description="Time budget of the renderer's training, minutes, > 0 ... 10080.")
    steps: int = Field(6000, description="Most renderer steps, 1 ... 10,000,000.")
    crop: int = Field(336, description="Mouth-crop side in pixels, a multiple of 16 in 16 ... 1024.")
    tiny: bool = Field(False, description="A tiny network and short training (smoke tests, CPU).")
    mouth_folds: int = Field(3, description="Folds of the mouth model's gain calibration, 0 ... 20 (0: none, faster).")
    seed: int = Field(0, description="Seeds the training, 0 ... 2**32-1.")


JobSpec = Annotated[Union[SaySpec, DubSpec, TwinTrainSpec], Field(discriminator="kind")]
JOB_SPEC = TypeAdapter(JobSpec)


class SpecProblem(Exception):
    """The spec cannot be used; ``detail``: FastAPI-style 422 items (loc, msg, type)."""

    def __init__(self, detail: list[dict]) -> None:
        super().__init__(detail[0]["msg"] if detail else "invalid spec")
        self.detail = detail


def problem(field: str | None, msg: str, type_: str = "value_error") -> SpecProblem:
    loc = ["body", "spec"] + ([field] if field else [])
    return SpecProblem([{"loc": loc, "msg": msg, "type": type_}])


def parse_spec(text: str) -> SaySpec | DubSpec | TwinTrainSpec:
    """The spec model of a JSON text; SpecProblem naming the field when it is not valid."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise problem(None, f"not valid JSON ({exc})", "json_invalid") from None
    if not isinstance(data, dict):
        raise problem(None, "must be a JSON object like {\"kind\": \"say\", \"text\": \"Hi.\"}", "dict_type")
    try:
        return JOB_SPEC.validate_python(data)
    except ValidationError as exc:
        detail = []
        for e in exc.errors():
            loc = [p for p in e["loc"] if p not in ("say", "dub", "twin_train")]  # the union's tag
            msg = e["msg"]
            if e["type"] == "union_tag_invalid" or e["type"] == "union_tag_not_found":
                loc, msg = ["kind"], "must be one of say, dub, twin_train"
            elif e["type"] == "extra_forbidden":
                msg = f"unknown field '{loc[-1]}' for kind {data.get('kind')!r}"
            detail.append({"loc": ["body", "spec"] + [str(p) for p in loc], "msg": msg, "type": e["type"]})
        raise SpecProblem(detail) from None


# ---------------------------------------------------------------------------------------------
# What the API answers (response models: the OpenAPI document shows them)
# ---------------------------------------------------------------------------------------------

class JobCreated(BaseModel):
    id: str = Field(description="The job's id (server-made).")
    status: str = Field(description="queued, or the current status of the job an Idempotency-Key names.")


class JobOut(BaseModel):
    id: str
    kind: Literal["say", "dub", "twin_train"]
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: float = Field(description="0 ... 1.")
    stage: Optional[str] = Field(None, description="What the job does now: starting, render, track, mouth ...")
    eta_s: Optional[float] = Field(None, description="Seconds left (estimate), when known.")
    error: Optional[str] = Field(None, description="One line, as the CLI prints it, when failed.")
    created_at: float = Field(description="Unix time, seconds.")
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    attempts: int = Field(description="How many times a worker started it (a server restart re-runs it).")
    face_id: Optional[str] = Field(None, description="The uploaded face it used, when given by face_id.")
    spec: dict = Field(description="The spec with every default filled in.")
    result: Optional[str] = Field(None, description="URL of the result, when done.")


class JobList(BaseModel):
    jobs: list[JobOut]


class JobDeleted(BaseModel):
    id: str
    status: Optional[str] = Field(None, description="cancelled, when a queued or running job was cancelled.")
    deleted: bool = Field(False, description="True when a finished job and its files were deleted.")


class FaceOut(BaseModel):
    id: str
    kind: Literal["image", "video", "twin"]
    name: Optional[str] = Field(None, description="The uploaded file's name (display only).")
    bytes: int
    created_at: float
    job_id: Optional[str] = Field(None, description="The twin_train job that made this twin.")


class FaceList(BaseModel):
    faces: list[FaceOut]


class FaceDeleted(BaseModel):
    id: str
    deleted: bool


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class ErrorOut(BaseModel):
    error: str = Field(description="What is wrong and what to do, one line.")


class InvalidOut(BaseModel):
    detail: list[dict] = Field(description="FastAPI's validation items: loc (where, e.g. [\"body\", \"spec\", \"size\"]), msg, type.")
    error: str = Field(description="The first item as one line.")


def errors(*codes: int) -> dict:
    """The error responses a route declares: {"error": ...} bodies, and 422 with ``detail``."""
    return {code: {"model": InvalidOut if code == 422 else ErrorOut} for code in codes}
