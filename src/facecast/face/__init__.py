"""Faces: loading portraits, finding and framing the face, tracking it through a video.

Coordinates are pixels of the image the landmarks belong to: x right, y down, with the
*pixel-edge* convention (pixel ``i`` covers ``[i, i + 1)``, the image spans ``[0, W] x [0, H]``),
z in the same pixel scale as x (smaller = nearer the camera).  "Right"/"left" in names of landmark
groups are the *subject's* (mediapipe's convention): in an unmirrored frontal photo the subject's
right eye is on the image's left. The landmark index groups are in ``facecast.landmarks``.

Public API::

    load_image(path_or_array) -> uint8 [H, W, 3] RGB                                   (image)
    FaceTracker (protocol), MediapipeFaceMesh (context manager holding mediapipe graphs;
        its settings in .options, a frozen MeshOptions)                                (detect)
    find_face(image, *, source, face_index, min_face_px, tracker) -> FaceLandmarks     (find)
        (finds faces in any quarter turn; several are numbered left to right)
    frame_portrait(image, face, *, size, source) -> Portrait                           (frame)
        (turns a face on its side or upside down upright, and says so in its notes)
    face_roll(face) -> degrees, 0 = upright, +-180 = upside down                       (geometry)
    check_mouth_visible(image, face, *, source) raises InputError for a covered mouth  (occlusion)
    mouth_flatness(image, face) -> (lips, ring) flat fractions                         (occlusion)
    track_video(frames, *, fps, smooth) -> (points float32 [N, 478, 3], found bool [N]) (track)
    mouth_metrics(points) -> dict of float32 arrays                                    (metrics)

Modules, each importing only those before it: image (files and arrays to RGB), geometry
(boxes, tiles, roll, quarter turns), frame (the framing square), detect (mediapipe; its crop for
small faces copies the framing), find (which face), occlusion (is the mouth covered), metrics,
track (detect + metrics over a video).

The mediapipe graphs are not thread-safe: use one ``MediapipeFaceMesh`` per thread.
"""

from facecast.face.detect import (
    DETECT_MAX_SIDE,
    FaceTracker,
    MediapipeFaceMesh,
    quiet_native_stderr,
)
from facecast.face.find import FIND_MAX_FACES, find_face
from facecast.face.frame import PORTRAIT_MAX_SIDE, frame_portrait
from facecast.face.image import ARRAY_SOURCE, BACKGROUND_RGB, MAX_IMAGE_PIXELS, ImageInput, load_image
from facecast.face.geometry import face_roll
from facecast.face.metrics import mouth_metrics
from facecast.face.occlusion import check_mouth_visible, mouth_flatness
from facecast.face.track import track_video

__all__ = [
    "ARRAY_SOURCE",
    "BACKGROUND_RGB",
    "DETECT_MAX_SIDE",
    "FIND_MAX_FACES",
    "MAX_IMAGE_PIXELS",
    "PORTRAIT_MAX_SIDE",
    "FaceTracker",
    "ImageInput",
    "MediapipeFaceMesh",
    "check_mouth_visible",
    "face_roll",
    "find_face",
    "frame_portrait",
    "load_image",
    "mouth_flatness",
    "mouth_metrics",
    "quiet_native_stderr",
    "track_video",
]
