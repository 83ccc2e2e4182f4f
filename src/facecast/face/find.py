"""find_face: the face to animate in a portrait, among the faces MediapipeFaceMesh finds."""

from __future__ import annotations

import logging

from facecast.errors import InputError, NoFaceError
from facecast.face.detect import FaceTracker, MediapipeFaceMesh
from facecast.face.geometry import centre, turn_face, upright_turns
from facecast.face.image import ImageInput, as_image
from facecast.types import FaceLandmarks

log = logging.getLogger(__name__)

FIND_MAX_FACES = 10
"""find_face looks for this many faces at most (when it makes its own MediapipeFaceMesh)."""

def find_face(
    image: ImageInput,
    *,
    source: str | None = None,
    face_index: int | None = None,
    min_face_px: int = 64,
    tracker: FaceTracker | None = None,
) -> FaceLandmarks:
    """The face to animate in a portrait, with its landmarks in the image's pixels.

    image: a path or uint8 [H, W, 3] RGB array (``source`` names it in messages; defaults to
        the path or "<array>").
    face_index: which face when there are several, numbered left to right from 0 (the CLI's
        ``--face N``); None = the largest, with a logged warning when there are several.
        Left to right as the picture is seen upright: in a picture on its side, where the
        largest face is.
    min_face_px: smallest usable face width (landmark bbox, upright) in pixels.
    tracker: a FaceTracker to reuse; None = a MediapipeFaceMesh made (and closed) for this call,
        looking for up to FIND_MAX_FACES faces.

    A face on its side or upside down is found and measured right (see MediapipeFaceMesh);
    ``frame_portrait`` turns it upright.

    Raises NoFaceError when there is no face, or the chosen one is narrower than min_face_px;
    InputError when face_index is out of range.
    """
    rgb, name = as_image(image, source)
    if tracker is None:
        with MediapipeFaceMesh(static_image_mode=True, max_faces=FIND_MAX_FACES) as own:
            faces = own.detect(rgb, source=name)
            limit = own.options.max_faces
    else:
        faces = tracker.detect(rgb, source=name)
        limit = getattr(getattr(tracker, "options", None), "max_faces", None)
    h, w = rgb.shape[:2]
    if not faces:
        size_hint = ""
        if min(w, h) < min_face_px:
            size_hint = f" in this {w}x{h} image, which is smaller than a usable face"
        raise NoFaceError(
            f"{name}: no face found{size_hint}. Use a photo where one face is clearly visible, "
            f"frontal, at least {min_face_px} pixels wide"
        )
    k = upright_turns(faces[0])  # left to right as seen upright
    by_position = sorted(faces, key=lambda f: centre(turn_face(f, k).bbox)[0])
    n = len(by_position)
    found = f"{n} face{'s' if n > 1 else ''} found"
    numbered = "numbered 0 from the left" if n == 1 else f"numbered 0 to {n - 1} from the left"
    if face_index is not None:
        if not 0 <= face_index < n:
            if n == limit and n > 1:
                found += " (the most looked for: in a larger group, crop the picture around the person)"
            choose = "Pass --face 0, or leave --face out" if n == 1 else f"Pass --face with a number from 0 to {n - 1}"
            raise InputError(f"{name}: face {face_index} does not exist: {found}, {numbered}. {choose}")
        face = by_position[face_index]
    else:
        face = faces[0]  # detect() returns the largest first
        if n > 1:
            log.warning(
                "%s: %s; animating the largest, face %d (%s). Choose another with --face N",
                name, found, next(i for i, f in enumerate(by_position) if f is face), numbered,
            )
    x0, _, x1, _ = turn_face(face, upright_turns(face)).bbox
    width = x1 - x0
    if width < min_face_px:
        raise NoFaceError(
            f"{name}: the face is only {width:.0f} pixels wide, too small to animate; at least "
            f"{min_face_px} pixels are needed. Use a larger photo, or one taken closer"
        )
    return face
