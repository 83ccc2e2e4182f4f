"""The job API: POST/GET /v1/jobs, GET/DELETE /v1/jobs/{id}, GET /v1/jobs/{id}/events (SSE),
GET /v1/jobs/{id}/result (HTTP Range). docs/serving.md shows each with curl."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from ..errors import InputError
from .jobs import TERMINAL
from .kinds import FACE_KINDS, SpecError, build_options
from .probe import check_portrait, probe_file
from .security import Principal, require_auth
from .specs import JobCreated, JobDeleted, JobList, JobOut, SpecProblem, errors, parse_spec, problem
from .state import ServerState, get_state
from .store import Job, new_id
from .uploads import UploadError, read_form

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

SSE_KEEPALIVE_S = 15.0
IDEMPOTENCY_MAX = 200
MEDIA_TYPES = {".mp4": "video/mp4", ".twin": "application/octet-stream"}

_JOB_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["spec"],
    "properties": {
        "spec": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": "#/components/schemas/JobSpec"},
                 "description": "The job as JSON: {\"kind\": \"say\" | \"dub\" | \"twin_train\", ...its fields}."},
        "face": {"type": "string", "format": "binary",
                 "description": "Portrait image or .twin (say), video (dub, twin_train); or give face_id."},
        "face_id": {"type": "string", "description": "An earlier upload (POST /v1/faces) or trained twin."},
        "audio": {"type": "string", "format": "binary", "description": "Speech audio (say, dub), instead of text."},
    }}}}}}


def fail(status: int, message: str) -> HTTPException:
    return HTTPException(status, message)


def spec_422(exc: SpecProblem) -> JSONResponse:
    return JSONResponse({"detail": exc.detail, "error": error_line(exc.detail[0])}, status_code=422)


def error_line(item: dict) -> str:
    """One line for a 422 item: "spec.size = 513: must be ...", "face: no face found ..."."""
    loc = [str(p) for p in item["loc"][1:]]
    msg = item["msg"]
    if loc and msg.startswith(loc[-1]):  # the message names its field already
        return ".".join(loc[:-1] + [""]) + msg if len(loc) > 1 else msg
    return f"{'.'.join(loc)}: {msg}" if loc else msg


def owned_job(state: ServerState, principal: Principal, job_id: str) -> Job:
    """The caller's job, or 404 (another token's job is not found either)."""
    job = state.store.get_job(job_id)
    if job is None or job.owner != principal.id:
        raise fail(404, f"no job {job_id!r} (ids look like j_ and 20 hex digits; GET /v1/jobs lists yours)")
    return state.runner.live_view(job)


@router.post("", status_code=201, response_model=JobCreated, openapi_extra=_JOB_BODY,
             responses={**errors(400, 401, 409, 413, 415, 422, 429),
                        200: {"model": JobCreated, "description": "The job an Idempotency-Key names"}},
             summary="Submit a job (multipart: spec JSON + face or face_id + optional audio)")
async def submit(request: Request, state: ServerState = Depends(get_state),
                 principal: Principal = Depends(require_auth)):
    opts = state.options
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key) <= IDEMPOTENCY_MAX and key.isascii() and key.isprintable()):
        raise fail(400, f"Idempotency-Key: must be 1 ... {IDEMPOTENCY_MAX} printable ASCII characters")
    if state.store.count_active(principal.id) >= opts.max_jobs_per_token:
        if key is None or state.store.job_by_key(principal.id, key) is None:
            state.metrics.refusal("jobs_per_token")
            raise HTTPException(429, f"this token has {opts.max_jobs_per_token} jobs queued or running (the "
                                     "server's --max-jobs-per-token); wait for some to finish", {"Retry-After": "5"})
    staging = state.store.staging_dir()
    job_dir = None
    try:
        try:
            form = await read_form(request, staging, files=("face", "audio"), fields=("spec", "face_id"),
                                   max_file_bytes=opts.max_upload_bytes, max_field_bytes=opts.max_spec_kb * 1024)
        except UploadError as exc:
            if exc.status == 413:
                state.metrics.refusal("too_large")
            if exc.status == 422:
                return JSONResponse({"detail": [{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}],
                                     "error": str(exc)}, status_code=422)
            raise fail(exc.status, str(exc)) from None
        try:
            spec, inputs, face_id = await _check(state, principal, form)
        except SpecProblem as exc:
            return spec_422(exc)
        digest = _request_hash(spec, face_id, form)
        if key is not None:
            earlier = state.store.job_by_key(principal.id, key)
            if earlier is not None:
                return _replay(earlier, digest, key)
        job_id = new_id("j")
        job_dir = state.store.job_dir(job_id)
        job_dir.mkdir()
        stored = _place_inputs(state, inputs, job_dir)
        _write_json(job_dir / "job.json", {"id": job_id, "kind": spec["kind"], "spec": spec, "inputs": stored,
                                           "device": opts.device})
        job = Job(id=job_id, owner=principal.id, kind=spec["kind"], spec=spec, status="queued", progress=0.0,
                  stage="queued", eta_s=None, error=None, created_at=time.time(), started_at=None, finished_at=None,
                  attempts=0, idem_key=key, request_hash=digest, result=None, face_id=face_id, inputs=stored)
        job, created = state.store.add_job(job)
        if not created:  # the same key raced in from another request
            shutil.rmtree(job_dir, ignore_errors=True)
            return _replay(job, digest, key)
        job_dir = None  # the job owns its folder now
        state.runner.wake()
        return JSONResponse({"id": job.id, "status": job.status}, status_code=201)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if job_dir is not None:
            shutil.rmtree(job_dir, ignore_errors=True)


async def _check(state: ServerState, principal: Principal, form) -> tuple[dict, dict, str | None]:
    """The validated spec (defaults filled in), the inputs {role: (path, ext)} and the face id;
    SpecProblem (422, naming the field) for anything wrong."""
    if "spec" not in form.fields:
        raise problem(None, "missing: give a 'spec' form field holding the job as JSON, e.g. "
                            "{\"kind\": \"say\", \"text\": \"Hello.\"}", "missing")
    model = parse_spec(form.fields["spec"])
    spec = model.model_dump()
    kind = spec["kind"]
    face_file, face_id = form.files.get("face"), form.fields.get("face_id")
    if (face_file is None) == (face_id is None):
        raise SpecProblem([{"loc": ["body", "face"], "type": "missing",
                            "msg": "give the face as exactly one of: a file part 'face', or a field 'face_id'"}])
    audio = form.files.get("audio")
    if kind == "twin_train":
        if audio is not None:
            raise SpecProblem([{"loc": ["body", "audio"], "type": "value_error",
                                "msg": "twin_train takes no audio: its video's own sound track trains the twin"}])
    elif (spec.get("text") is None) == (audio is None):
        raise problem("text", f"{kind} needs either spec.text or an 'audio' file part (exactly one)")
    if spec.get("transcript") is not None and audio is None:
        raise problem("transcript", "transcript goes with an audio file (with text the words are known)")
    if spec.get("text") is not None:
        from ..text import check_text

        try:
            check_text(spec["text"], source="text")
        except InputError as exc:  # its hints speak of the CLI's flags: say it in the API's words
            msg = str(exc).replace('--text "', '"text": "').replace("--audio FILE", "an 'audio' file part")
            raise problem("text", msg) from None
    try:
        build_options(kind, spec, state.options.device)
    except SpecError as exc:
        raise problem(exc.field, str(exc)) from None

    inputs: dict[str, tuple[Path, str]] = {}
    if face_id is not None:
        face = state.store.get_face(face_id)
        if face is None or face.owner != principal.id:
            raise SpecProblem([{"loc": ["body", "face_id"], "type": "value_error",
                                "msg": f"no face {face_id!r}: upload one with POST /v1/faces (GET /v1/faces lists yours)"}])
        face_kind, path = face.kind, state.store.face_path(face)
        ext = Path(face.file).suffix
        if face_kind == "image" and spec.get("face_index") is not None:
            await _portrait(path, "face_id", spec.get("face_index"))
    else:
        probed = await _probe(face_file.path, "face")
        face_kind, path, ext = probed.kind, face_file.path, probed.ext
        if face_kind == "image":
            await _portrait(path, "face", spec.get("face_index"))
    if face_kind not in FACE_KINDS[kind]:
        wants = " or ".join({"image": "a portrait image", "twin": "a .twin", "video": "a video"}[k]
                            for k in FACE_KINDS[kind])
        raise SpecProblem([{"loc": ["body", "face_id" if face_id else "face"], "type": "value_error",
                            "msg": f"{kind} needs {wants}; this is {'an' if face_kind in ('image', 'audio') else 'a'} "
                                   f"{face_kind}" + (" (dub re-lip-syncs a video; say animates a portrait)"
                                                     if face_kind in ("image", "video") else "")}])
    inputs["face"] = (path, ext)
    if audio is not None:
        probed = await _probe(audio.path, "audio")
        if probed.kind not in ("audio", "video"):
            raise SpecProblem([{"loc": ["body", "audio"], "type": "value_error",
                                "msg": f"audio: is {'an' if probed.kind == 'image' else 'a'} {probed.kind}, not "
                                       "audio. Upload speech (WAV, MP3, FLAC, M4A, ... or a video with sound)"}])
        inputs["audio"] = (audio.path, probed.ext)
    return spec, inputs, face_id


async def _probe(path: Path, role: str):
    try:
        return await asyncio.to_thread(probe_file, path, role)
    except InputError as exc:
        raise SpecProblem([{"loc": ["body", role], "type": "value_error", "msg": str(exc)}]) from None


async def _portrait(path: Path, role: str, face_index: int | None) -> None:
    try:
        await asyncio.to_thread(check_portrait, path, role, face_index)
    except InputError as exc:
        raise SpecProblem([{"loc": ["body", role], "type": "value_error", "msg": str(exc)}]) from None


def _request_hash(spec: dict, face_id: str | None, form) -> str:
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    h.update(f"|face_id={face_id}".encode())
    for role in sorted(form.files):
        h.update(f"|{role}={form.files[role].sha256}".encode())
    return h.hexdigest()


def _replay(job: Job, digest: str, key: str) -> JSONResponse:
    if job.request_hash != digest:
        raise fail(409, f"Idempotency-Key {key!r} was used for a different request (job {job.id}); use a new key")
    return JSONResponse({"id": job.id, "status": job.status}, status_code=200)


def _place_inputs(state: ServerState, inputs: dict, job_dir: Path) -> dict[str, str]:
    """Move (uploads) or link (faces) the inputs into the job folder under server-made names."""
    stored = {}
    for role, (path, ext) in inputs.items():
        dest = job_dir / f"{role}{ext}"
        if path.parent.parent == state.store.root / "tmp":
            os.replace(path, dest)
        else:
            try:
                os.link(path, dest)
            except OSError:
                shutil.copyfile(path, dest)
        stored[role] = dest.name
    return stored


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


@router.get("", response_model=JobList, responses=errors(401, 422), summary="Your jobs, newest first")
async def list_jobs(state: ServerState = Depends(get_state), principal: Principal = Depends(require_auth),
                    limit: int = Query(100, ge=1, le=1000), status: str | None = Query(
                        None, pattern="^(queued|running|done|failed|cancelled)$")):
    jobs = state.store.list_jobs(principal.id, limit=limit, status=status)
    return {"jobs": [state.runner.live_view(j).public() for j in jobs]}


@router.get("/{job_id}", response_model=JobOut, responses=errors(401, 404), summary="One job: status, progress, error")
async def get_job(job_id: str, state: ServerState = Depends(get_state), principal: Principal = Depends(require_auth)):
    return owned_job(state, principal, job_id).public()


@router.delete("/{job_id}", response_model=JobDeleted, responses=errors(401, 404),
               summary="Cancel a queued or running job; delete a finished one with its files")
async def delete_job(job_id: str, state: ServerState = Depends(get_state),
                     principal: Principal = Depends(require_auth)):
    job = owned_job(state, principal, job_id)
    if job.status not in TERMINAL:
        job = await state.runner.cancel(job.id)
        return {"id": job.id, "status": job.status, "deleted": False}
    state.store.delete_job(job.id)
    return {"id": job.id, "status": None, "deleted": True}


@router.get("/{job_id}/events", responses={**errors(401, 404), 200: {"content": {"text/event-stream": {}},
            "description": "Server-Sent Events: queued, running, stage, progress, then done | failed | cancelled"}},
            summary="The job's events as Server-Sent Events", response_class=StreamingResponse)
async def job_events(job_id: str, request: Request, state: ServerState = Depends(get_state),
                     principal: Principal = Depends(require_auth)):
    owned_job(state, principal, job_id)
    runner = state.runner
    q = runner.subscribe(job_id)

    async def stream():
        try:
            job = runner.live_view(state.store.get_job(job_id))
            first = {"id": job.id, "status": job.status, "stage": job.stage, "progress": job.progress,
                     "eta_s": job.eta_s, "error": job.error}
            if job.status == "done":
                first["result"] = f"/v1/jobs/{job.id}/result"
            yield _sse(job.status, first)
            if job.status in TERMINAL:
                return
            while True:
                try:
                    event, data = await asyncio.wait_for(q.get(), SSE_KEEPALIVE_S)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield _sse(event, data)
                if event in TERMINAL:
                    return
        finally:
            runner.unsubscribe(job_id, q)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


@router.get("/{job_id}/result", response_class=FileResponse,
            responses={**errors(400, 401, 404, 409, 416), 200: {"content": {"video/mp4": {}, "application/octet-stream": {}},
                                       "description": "The MP4 (say, dub) or .twin (twin_train)"},
                       206: {"description": "Part of it (Range)"}},
            summary="The finished MP4 or .twin; HTTP Range lets a player seek")
async def job_result(job_id: str, request: Request, state: ServerState = Depends(get_state),
                     principal: Principal = Depends(require_auth)):
    job = owned_job(state, principal, job_id)
    if job.status != "done" or not job.result:
        raise fail(409, f"job {job.id} is {job.status}; its result exists once the status is done"
                   + (f" ({job.error})" if job.error and job.status == "failed" else ""))
    path = state.store.job_dir(job.id) / job.result
    if not path.is_file():
        raise fail(404, f"job {job.id}: its result file is gone from the data folder")
    ext = path.suffix
    refused = _range_refusal(request.headers.get("range"), path.stat().st_size)
    if refused is not None:
        return refused
    return FileResponse(path, media_type=MEDIA_TYPES.get(ext, "application/octet-stream"),
                        filename=f"{job.id}{ext}")


def _range_refusal(header: str | None, size: int) -> JSONResponse | None:
    """A JSON 400 for a malformed Range header, 416 (with Content-Range: bytes */size) for one no
    byte of the file satisfies; None when FileResponse can serve it (206, or 200 without Range)."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return JSONResponse({"error": f"Range {header!r}: use bytes=START-END, bytes=START- or bytes=-SUFFIX"},
                            status_code=400)
    satisfiable = False
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()) or \
                (last and not last.isdigit()):
            return JSONResponse({"error": f"Range {header!r}: use bytes=START-END, bytes=START- or bytes=-SUFFIX"},
                                status_code=400)
        if first and last and int(first) > int(last):
            return JSONResponse({"error": f"Range {header!r}: the range ends before it starts"}, status_code=400)
        if (first and int(first) < size) or (not first and int(last) > 0 and size > 0):
            satisfiable = True
    if not satisfiable:
        return JSONResponse({"error": f"Range {header!r}: the file has {size} bytes"}, status_code=416,
                            headers={"Content-Range": f"bytes */{size}"})
    return None
