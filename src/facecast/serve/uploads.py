"""Multipart uploads streamed to disk: each file part is written in chunks into a staging
folder as it arrives (never whole in memory) and refused with 413 the moment it passes the cap.

    form = await read_form(request, staging, files=("face", "audio"), fields=("spec", "face_id"),
                           max_file_bytes=..., max_field_bytes=...)
    form.fields["spec"] -> str;  form.files["face"] -> Upload(path, name, size, sha256)

Files are stored under server-made names (the part's field name) in ``staging``; the client's
file name is kept for display only. Errors are ``UploadError(status, message)``: 400 malformed
multipart, 413 too large, 415 not multipart/form-data, 422 an unknown or repeated part.

Public API: ``Upload``, ``Form``, ``UploadError``, ``read_form``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

__all__ = ["Form", "Upload", "UploadError", "read_form"]



MAX_PARTS = 8
MAX_HEADER_BYTES = 8192


class UploadError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field


@dataclass
class Upload:
    """A received file: where it is now (staging), the client's name (display only), its size in
    bytes and its SHA-256 (hex)."""

    path: Path
    name: str | None
    size: int
    sha256: str


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)


class _Receiver:
    """The parser's callbacks: headers of a part, its data to a file or a small buffer."""

    def __init__(self, staging: Path, files, fields, max_file: int, max_field: int) -> None:
        self.staging, self.allowed_files, self.allowed_fields = staging, files, fields
        self.max_file, self.max_field = max_file, max_field
        self.form = Form()
        self.parts = 0
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._hname = b""
        self._hvalue = b""
        self._header_bytes = 0
        self._name: str | None = None
        self._file = None
        self._digest = None
        self._size = 0
        self._buf = bytearray()
        self._filename: str | None = None

    def callbacks(self) -> dict:
        return {"on_part_begin": self.part_begin, "on_part_data": self.part_data, "on_part_end": self.part_end,
                "on_header_field": self.header_field, "on_header_value": self.header_value,
                "on_header_end": self.header_end, "on_headers_finished": self.headers_finished,
                "on_end": self.end}

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise UploadError(400, f"malformed multipart body: more than {MAX_PARTS} parts")
        self._headers, self._name, self._file, self._size, self._buf = {}, None, None, 0, bytearray()
        self._header_bytes = 0

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]
        self._count_header(end - start)

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]
        self._count_header(end - start)

    def _count_header(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            raise UploadError(400, "malformed multipart body: a part's headers are too long")

    def header_end(self) -> None:
        self._headers[self._hname.lower()] = self._hvalue
        self._hname, self._hvalue = b"", b""

    def headers_finished(self) -> None:
        disp = self._headers.get(b"content-disposition")
        if disp is None:
            raise UploadError(400, "malformed multipart body: a part without Content-Disposition")
        kind, params = parse_options_header(disp)
        name = params.get(b"name")
        if kind != b"form-data" or name is None:
            raise UploadError(400, "malformed multipart body: a part that is not form-data with a name")
        name = name.decode("latin-1")
        filename = params.get(b"filename")
        if name in self.form.fields or name in self.form.files:
            raise UploadError(422, f"{name}: given twice; send each part once", name)
        self._name = name
        if filename is not None:
            if name not in self.allowed_files:
                raise UploadError(422, f"{name}: not a file this request takes (it takes "
                                       f"{', '.join(self.allowed_files) or 'none'})", name)
            self._filename = filename.decode("utf-8", "replace")[:200]
            self._file = open(self.staging / name, "wb")
            self._digest = hashlib.sha256()
        else:
            if name not in self.allowed_fields:
                if name in self.allowed_files:
                    raise UploadError(422, f"{name}: must be a file part (with a filename), not a text field", name)
                raise UploadError(422, f"{name}: unknown form field (this request takes "
                                       f"{', '.join(self.allowed_fields + self.allowed_files)})", name)
            self._filename = None

    def part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        self._size += n
        if self._file is not None:
            if self._size > self.max_file:
                raise UploadError(413, f"{self._name}: the file is larger than the server's limit of "
                                       f"{self.max_file / 2**20:g} MiB (--max-upload-mb)", self._name)
            chunk = data[start:end]
            self._file.write(chunk)
            self._digest.update(chunk)
        else:
            if self._size > self.max_field:
                raise UploadError(413, f"{self._name}: the field is larger than the server's limit of "
                                       f"{self.max_field // 1024} KiB", self._name)
            self._buf += data[start:end]

    def part_end(self) -> None:
        if self._name is None:
            raise UploadError(400, "malformed multipart body: a part ended before its headers")
        if self._file is not None:
            self._file.close()
            self.form.files[self._name] = Upload(self.staging / self._name, self._filename, self._size,
                                                 self._digest.hexdigest())
            self._file = None
        else:
            try:
                self.form.fields[self._name] = self._buf.decode("utf-8")
            except UnicodeDecodeError:
                raise UploadError(400, f"{self._name}: not valid UTF-8 text", self._name) from None
        self._name = None

    def end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def read_form(request: Request, staging: Path, *, files: tuple[str, ...], fields: tuple[str, ...],
                    max_file_bytes: int, max_field_bytes: int) -> Form:
    """Read a multipart/form-data body into ``staging`` (see the module docstring). The caller
    removes ``staging`` whatever happens."""
    ctype = request.headers.get("content-type", "")
    kind, params = parse_options_header(ctype)
    if kind == b"application/x-www-form-urlencoded":  # fields only (a job on an uploaded face)
        return await _read_urlencoded(request, fields, files, max_field_bytes)
    if kind != b"multipart/form-data":
        raise UploadError(415, "the body must be multipart/form-data (a 'spec' JSON field and file parts)")
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise UploadError(400, "malformed multipart body: no boundary in Content-Type")
    declared = request.headers.get("content-length")
    limit = len(files) * max_file_bytes + len(fields) * max_field_bytes + 64 * 1024
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadError(413, f"the request ({int(declared) / 2**20:.1f} MiB) is larger than the server's limits "
                               f"allow ({max_file_bytes / 2**20:g} MiB a file)")
    rx = _Receiver(staging, files, fields, max_file_bytes, max_field_bytes)
    parser = MultipartParser(boundary, rx.callbacks())
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except ClientDisconnect:
        raise UploadError(400, "the client disconnected before the upload was complete") from None
    except Exception as exc:  # python_multipart's parse errors (MultipartParseError and friends)
        raise UploadError(400, f"malformed multipart body ({type(exc).__name__}: {exc})") from None
    finally:
        rx.close()
    if not rx.ended:
        raise UploadError(400, "malformed multipart body: it ends before its closing boundary")
    return rx.form


async def _read_urlencoded(request: Request, fields: tuple[str, ...], files: tuple[str, ...], max_field: int) -> Form:
    """An application/x-www-form-urlencoded body: text fields only, read up to a cap."""
    cap = max_field * max(1, len(fields)) * 3 + 1024  # percent-encoding triples a byte at most
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > cap:
                raise UploadError(413, f"the form is larger than the server's limit of {cap // 1024} KiB")
    except ClientDisconnect:
        raise UploadError(400, "the client disconnected before the form was complete") from None
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body), errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise UploadError(400, f"malformed form body ({exc})") from None
    form = Form()
    for name, value in pairs:
        if name in form.fields:
            raise UploadError(422, f"{name}: given twice; send each field once", name)
        if name not in fields:
            what = "must be a file part: send multipart/form-data" if name in files else "unknown form field"
            raise UploadError(422, f"{name}: {what}", name)
        if len(value.encode()) > max_field:
            raise UploadError(413, f"{name}: the field is larger than the server's limit of {max_field // 1024} KiB", name)
        form.fields[name] = value
    return form
