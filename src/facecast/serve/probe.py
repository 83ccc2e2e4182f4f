"""What an uploaded file is, from its content (never its name), with facecast's own checks:

    twin    a safetensors header saying facecast-twin (sources.is_twin_input, twin.file)
    image   Pillow identifies it; face.load_image decodes it (size caps, damaged files ...)
    video   FFmpeg opens it with a video stream; media.open_video decodes its first frame
    audio   FFmpeg opens it with an audio stream (and no video)

``probe_file(path, role)`` returns the kind and a file extension for storing it, or raises
InputError whose message names the form field (``role``), never the server's path.
``check_portrait(path, role, face_index)`` looks for the face in a portrait (NoFaceError).

Public API: ``Probed``, ``probe_file``, ``check_portrait``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

__all__ = ["Probed", "check_portrait", "probe_file"]

_IMAGE_EXT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
_face_lock = threading.Lock()  # one image decode / face search at a time (memory, 2 cores)


@dataclass(frozen=True)
class Probed:
    """kind: "image" | "video" | "audio" | "twin"; ext: the stored file's extension."""

    kind: str
    ext: str


def _named(exc: InputError, path: Path, role: str) -> InputError:
    """The same error with the server's path replaced by the form field's name."""
    err = type(exc)(str(exc).replace(str(path), role))
    return err


def probe_file(path: Path, role: str) -> Probed:
    """The kind of the uploaded file at ``path`` (the form field ``role`` names it in errors)."""
    from ..sources import is_twin_input

    if path.stat().st_size == 0:
        raise InputError(f"{role}: the file is empty (0 bytes).")
    if is_twin_input(path):
        from ..twin.file import is_twin_file

        if not is_twin_file(path):
            raise InputError(f"{role}: a safetensors file, but not a facecast twin. Upload a .twin made by "
                             "`facecast twin train` (or a portrait, video or audio file).")
        return Probed("twin", ".twin")
    image = _image_format(path)
    if image is not None:
        from ..face import load_image

        try:
            with _face_lock:  # a decoded image can take hundreds of MB: one at a time
                load_image(path)
        except InputError as exc:
            raise _named(exc, path, role) from None
        return Probed("image", _IMAGE_EXT.get(image, ".img"))
    return _media(path, role)


def _image_format(path: Path) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.format or "image"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _media(path: Path, role: str) -> Probed:
    import av

    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, ValueError):
        raise InputError(f"{role}: {_what_it_is(path)}. Upload a portrait image (JPEG, PNG, WebP), a video, "
                         "speech audio or a .twin file.") from None
    try:
        fmt = container.format.name
        videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
        has_audio = bool(container.streams.audio)
    finally:
        container.close()
    if videos:
        from ..media import open_video

        try:
            open_video(path)
        except InputError as exc:
            raise _named(exc, path, role) from None
        ext = ".webm" if "webm" in fmt else ".mkv" if "matroska" in fmt else ".mov" if "mov" in fmt else ".video"
        return Probed("video", ".mp4" if ext == ".mov" else ext)
    if has_audio:
        ext = {"wav": ".wav", "flac": ".flac", "mp3": ".mp3", "ogg": ".ogg"}.get(fmt.split(",")[0], ".audio")
        if "mp4" in fmt or "mov" in fmt:
            ext = ".m4a"
        return Probed("audio", ext)
    raise InputError(f"{role}: a media file without video or audio streams.")


def _what_it_is(path: Path) -> str:
    """What a file no decoder reads is, in a few words (face.image's sniffing: text, a web page,
    PDF, SVG, HEIC ...)."""
    from ..face.image import load_image

    try:
        load_image(path)
    except InputError as exc:
        what = str(exc).replace(str(path), "", 1).lstrip(": ").split(". ")[0]
        if "format this program cannot read" not in what:
            return what
    return "not an image, video, audio or .twin file in any format facecast reads"


def check_portrait(path: Path, role: str, face_index: int | None = None) -> None:
    """NoFaceError (naming ``role``) unless the portrait at ``path`` shows a usable face."""
    from ..face import find_face, load_image

    with _face_lock:
        try:
            find_face(load_image(path), source=role, face_index=face_index)
        except InputError as exc:
            raise _named(exc, path, role) from None
