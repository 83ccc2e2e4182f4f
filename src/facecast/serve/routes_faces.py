"""Faces: POST /v1/faces (upload a portrait, a video or a .twin for later jobs and live
sessions), GET /v1/faces (your uploads and trained twins), GET/DELETE /v1/faces/{id}.

``resolve_face(state, principal, face_id) -> (Face, Path)`` is the lookup other routers use
(the live session takes a face id): 404 for an unknown id or another token's face."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from ..errors import InputError
from .probe import check_portrait, probe_file
from .security import Principal, require_auth
from .specs import FaceDeleted, FaceList, FaceOut, errors
from .state import ServerState, get_state
from .store import Face, new_id
from .uploads import UploadError, read_form

__all__ = ["resolve_face", "router"]

router = APIRouter(prefix="/v1/faces", tags=["faces"])

_FACE_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["face"],
    "properties": {"face": {"type": "string", "format": "binary",
                            "description": "A portrait image (one clear face), a video of the person, or a .twin."}},
}}}}}


def resolve_face(state: ServerState, principal: Principal, face_id: str) -> tuple[Face, Path]:
    """The caller's face and its file, or 404."""
    face = state.store.get_face(face_id)
    if face is None or face.owner != principal.id:
        raise HTTPException(404, f"no face {face_id!r} (GET /v1/faces lists yours)")
    return face, state.store.face_path(face)


def _invalid(field: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["body", field], "msg": message, "type": "value_error"}],
                         "error": message}, status_code=422)


@router.post("", status_code=201, response_model=FaceOut, responses=errors(400, 401, 413, 415, 422), openapi_extra=_FACE_BODY,
             summary="Upload a portrait, video or .twin (its type is read from the content)")
async def upload_face(request: Request, state: ServerState = Depends(get_state),
                      principal: Principal = Depends(require_auth)):
    staging = state.store.staging_dir()
    folder = None
    try:
        try:
            form = await read_form(request, staging, files=("face",), fields=(),
                                   max_file_bytes=state.options.max_upload_bytes, max_field_bytes=1024)
        except UploadError as exc:
            if exc.status == 413:
                state.metrics.refusal("too_large")
            if exc.status == 422:
                return _invalid(exc.field or "face", str(exc))
            raise HTTPException(exc.status, str(exc)) from None
        upload = form.files.get("face")
        if upload is None:
            return _invalid("face", "face: missing; send the file as a multipart part named 'face'")
        try:
            probed = await asyncio.to_thread(probe_file, upload.path, "face")
            if probed.kind == "audio":
                raise InputError("face: is audio, not a face. Upload a portrait image, a video or a .twin "
                                 "(speech goes with a job's 'audio' part)")
            if probed.kind == "image":
                await asyncio.to_thread(check_portrait, upload.path, "face")
        except InputError as exc:
            return _invalid("face", str(exc))
        face_id = new_id("f")
        folder = state.store.face_dir(face_id)
        folder.mkdir()
        os.replace(upload.path, folder / f"face{probed.ext}")
        face = state.store.add_face(Face(id=face_id, owner=principal.id, kind=probed.kind, file=f"face{probed.ext}",
                                         name=upload.name, bytes=upload.size, created_at=time.time(), job_id=None))
        folder = None
        return JSONResponse(face.public(), status_code=201)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@router.get("", response_model=FaceList, responses=errors(401), summary="Your uploaded faces and trained twins")
async def list_faces(state: ServerState = Depends(get_state), principal: Principal = Depends(require_auth)):
    return {"faces": [f.public() for f in state.store.list_faces(principal.id)]}


@router.get("/{face_id}", response_model=FaceOut, responses=errors(401, 404), summary="One face")
async def get_face(face_id: str, state: ServerState = Depends(get_state), principal: Principal = Depends(require_auth)):
    return resolve_face(state, principal, face_id)[0].public()


@router.delete("/{face_id}", response_model=FaceDeleted, responses=errors(401, 404), summary="Delete a face (jobs that used it keep their copy)")
async def delete_face(face_id: str, state: ServerState = Depends(get_state),
                      principal: Principal = Depends(require_auth)):
    face, _ = resolve_face(state, principal, face_id)
    state.store.delete_face(face.id)
    return {"id": face.id, "deleted": True}
