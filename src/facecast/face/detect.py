"""Finding faces: mediapipe's face mesh (478 landmarks) with a full-range detector fallback
for small faces, and find_face, which picks the face to animate in a portrait.

The mediapipe graphs are not thread-safe: use one ``MediapipeFaceMesh`` per thread.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import numpy as np

from facecast.errors import InputError, NoFaceError
from facecast.face.frame import FACE_FRACTION_MIN, framing_origin
from facecast.face.image import ARRAY_SOURCE, ImageInput, array_to_rgb, as_image
from facecast.native import quiet_native_stderr, start_graph  # noqa: F401 (re-exported by face)
from facecast.landmarks import (
    LEFT_EYE_LOWER,
    LEFT_EYE_UPPER,
    LEFT_IRIS,
    NUM_LANDMARKS,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_UPPER,
    RIGHT_IRIS,
)
from facecast.options import MeshOptions
from facecast.types import FaceLandmarks

log = logging.getLogger(__name__)

DETECT_MAX_SIDE = 1024
"""Detection runs on a copy downscaled (area average) to this longer side. mediapipe samples
its 128-192 px model inputs from the image without antialiasing, so a face far larger than that
comes out aliased: on the 3511 px test photo, full-resolution landmarks disagree with a
re-detection on the framed portrait by 1.2 % of the inter-ocular distance, against 0.5 % from
the 1024 px copy. (mediapipe itself is fast at any size; the downscale costs ~70 ms on 12 MP.)"""

# Fallback detection: crop side as a multiple of the detector's box (which covers brows to
# chin only), so that the whole head and some context fit in the crop the mesh sees.
_CROP_PER_BOX = 2.2
# Faces narrower than this fraction of the image's longer side get a second, framed pass.
# Measured against a re-detection on the framed portrait: a face at 14 % of a 1080x1920 frame
# was off by 3 % IOD, 0.5-1 % after the second pass; faces at 26-36 % of the image were within
# 0.9-1.4 % without it, and the second pass did not improve them.
_REFINE_BELOW = 0.25
# Crops for the mesh need no more pixels than this: its models look at 128-192 px.
_CROP_MAX_SIDE = 512
# The detector works on 192x192; feeding it more is a waste of copying.
_DETECTOR_INPUT_SIDE = 384
_TILE_MIN_SIDE = 512


def _warm_up(graph) -> None:
    """One run on a blank frame: mediapipe opens the graph's models (and logs) on its own threads
    after the constructor returns; this waits for that inside the quiet block (facecast.native)."""
    graph.process(np.zeros((64, 64, 3), np.uint8))


class FaceTracker(Protocol):
    """Something that finds faces and their 478 mediapipe landmarks in an RGB image."""

    def detect(self, image: np.ndarray, *, source: str) -> list[FaceLandmarks]:
        """All faces in ``image`` (uint8 [H, W, 3] RGB), largest first, landmarks in its pixels."""
        ...


class MediapipeFaceMesh:
    """mediapipe face mesh (legacy ``solutions`` API, models shipped in the wheel).

    ``static_image_mode=True`` treats every image on its own (photos); ``False`` tracks the face
    from frame to frame (video: faster, steadier, and frames must come in order).

    Detection runs on a copy downscaled to ``detect_max_side``, and landmarks are mapped back to
    the full image's pixels. In static mode, a face narrower than 25 % of the image's longer
    side is measured again on a crop framed around it (the mesh is more precise when the face
    fills its view). When the mesh finds nothing (a small face in a large frame: the mesh's own
    detector is a short-range model), mediapipe's full-range face detector looks for faces, on
    the whole image and then on overlapping tiles, and the mesh runs on a crop around each.

    Holds native graphs: use it as a context manager or call ``close()``. Not thread-safe.
    """

    def __init__(
        self,
        *,
        static_image_mode: bool = True,
        max_faces: int = 5,
        refine_landmarks: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        detect_max_side: int = DETECT_MAX_SIDE,
    ) -> None:
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        if detect_max_side < 128:
            raise ValueError(f"detect_max_side must be >= 128, got {detect_max_side}")
        self.options = MeshOptions(
            static_image_mode, max_faces, refine_landmarks, min_detection_confidence,
            min_tracking_confidence, detect_max_side,
        )
        # Imported here: mediapipe takes ~1 s to import, and most facecast commands (--help,
        # audio-only steps) never need it.
        import mediapipe as mp

        self._mp = mp
        self._mesh = self._new_mesh(static_image_mode, max_faces)
        self._crop_mesh = None  # static single-face mesh for fallback crops, made on first use
        self._detector = None  # full-range face detector for the fallback, made on first use
        self._closed = False

    def _new_mesh(self, static: bool, max_faces: int):
        o = self.options
        return start_graph(lambda: self._mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=max_faces,
            refine_landmarks=o.refine_landmarks,
            min_detection_confidence=o.min_detection_confidence,
            min_tracking_confidence=o.min_tracking_confidence,
        ), _warm_up)

    def __enter__(self) -> MediapipeFaceMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the native graphs (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for graph in (self._mesh, self._crop_mesh, self._detector):
            if graph is not None:
                with quiet_native_stderr():
                    graph.close()
        self._mesh = self._crop_mesh = self._detector = None

    def detect(self, image: np.ndarray, *, source: str = ARRAY_SOURCE) -> list[FaceLandmarks]:
        """All faces in ``image`` (uint8 [H, W, 3] RGB), largest (landmark bbox area) first.

        Landmarks are float32 [478, 3] in ``image``'s pixels (z scaled like x).
        """
        if self._closed:
            raise RuntimeError("MediapipeFaceMesh is closed")
        rgb = array_to_rgb(image, source)
        h, w = rgb.shape[:2]
        if min(h, w) < 8:
            return []  # nothing to find, and mediapipe's resamplers misbehave on tiny inputs
        small = _downscale(rgb, self.options.detect_max_side)
        faces = self._mesh_faces(self._mesh, small, (0.0, 0.0, float(w), float(h)), (w, h))
        if not faces:
            log.debug("%s: the face mesh found no face in %dx%d; trying the full-range detector",
                      source, w, h)
            faces = self._faces_via_detector(rgb, small)
        elif self.options.static_image_mode:
            faces = [self._refine(rgb, f) for f in faces]
        faces.sort(key=_bbox_area, reverse=True)
        return faces

    def _mesh_faces(self, mesh, rgb: np.ndarray, box: tuple[float, float, float, float],
                    image_size: tuple[int, int]) -> list[FaceLandmarks]:
        """Run ``mesh`` on ``rgb``, which shows ``box`` = (x0, y0, width, height) of the full
        image in full-image pixels; return landmarks in full-image pixels."""
        with quiet_native_stderr():
            result = mesh.process(rgb)
        faces = []
        x0, y0, bw, bh = box
        for lms in result.multi_face_landmarks or ():
            rel = np.array([(p.x, p.y, p.z) for p in lms.landmark], dtype=np.float64)
            if rel.shape[0] < NUM_LANDMARKS:
                rel = _add_iris_estimates(rel)
            pts = np.empty((NUM_LANDMARKS, 3), np.float64)
            # Normalised coordinates span the whole input, so the downscale cancels exactly;
            # mediapipe's z is normalised by the input width, like x.
            pts[:, 0] = x0 + rel[:, 0] * bw
            pts[:, 1] = y0 + rel[:, 1] * bh
            pts[:, 2] = rel[:, 2] * bw
            faces.append(FaceLandmarks(points=pts.astype(np.float32), image_size=image_size))
        return faces

    def _refine(self, rgb: np.ndarray, face: FaceLandmarks) -> FaceLandmarks:
        """Landmarks again, from a crop framed around ``face``, when it is small in the image.

        The mesh's landmarks depend on the region its detector proposes; for a face that is a
        small part of the image (the detector sees it at ~20 px) that region is loose and the
        landmarks are off by ~3 % of the inter-ocular distance compared with a detection on a
        framed portrait. A crop like the framing (face ~45 % of it) fixes that; this is what
        tracking mode does on its own from the second frame on.
        """
        h, w = rgb.shape[:2]
        x0, _, x1, _ = face.bbox
        face_w = x1 - x0
        if face_w >= _REFINE_BELOW * max(w, h):
            return face
        # Framed like frame_portrait frames it, so that a detection on the framed portrait
        # sees the same region (the two then agree to ~1 % IOD instead of ~3 %).
        side = face_w / FACE_FRACTION_MIN
        fx0, fy0 = framing_origin(face, side)
        # Shifted inside the image rather than clipped, so that the face stays ~45 % of it.
        cx0 = int(round(min(max(fx0, 0), max(0, w - side))))
        cy0 = int(round(min(max(fy0, 0), max(0, h - side))))
        cx1, cy1 = min(w, cx0 + int(round(side))), min(h, cy0 + int(round(side)))
        if self._crop_mesh is None:
            self._crop_mesh = self._new_mesh(static=True, max_faces=1)
        crop = _downscale(np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1]), _CROP_MAX_SIDE)
        found = self._mesh_faces(
            self._crop_mesh, crop, (float(cx0), float(cy0), float(cx1 - cx0), float(cy1 - cy0)), (w, h)
        )
        if found and _iou(found[0].bbox, face.bbox) > 0.5:
            return found[0]
        return face  # the crop lost it (should not happen): keep the first estimate

    def _faces_via_detector(self, rgb: np.ndarray, small: np.ndarray) -> list[FaceLandmarks]:
        """Fallback for faces the mesh's short-range detector misses: find them with the
        full-range detector (whole image, then overlapping tiles for faces under ~5 % of the
        frame), and run the mesh on a crop around each."""
        if self._detector is None:
            # model_selection=1: the full-range model (faces up to ~5 m), which the mesh lacks.
            self._detector = start_graph(lambda: self._mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.options.min_detection_confidence
            ), _warm_up)
        h, w = rgb.shape[:2]
        boxes = self._detect_boxes(small, (0, 0, w, h))
        if not boxes:
            for tile in _tiles(w, h):
                tx0, ty0, tx1, ty1 = tile
                view = _downscale(np.ascontiguousarray(rgb[ty0:ty1, tx0:tx1]), _DETECTOR_INPUT_SIDE)
                boxes += self._detect_boxes(view, tile)
        if not boxes:
            return []
        if self._crop_mesh is None:
            self._crop_mesh = self._new_mesh(static=True, max_faces=1)
        kept: list[tuple[float, float, float, float, float]] = []
        for box in sorted(boxes, key=lambda b: -b[0]):  # best score first; overlapping tiles
            if all(_iou(box[1:], k[1:]) < 0.3 for k in kept):  # see the same face twice
                kept.append(box)
        faces: list[FaceLandmarks] = []
        for _, bx0, by0, bx1, by1 in kept[: self.options.max_faces]:
            cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
            side = _CROP_PER_BOX * max(bx1 - bx0, by1 - by0)
            x0, y0 = max(0, math.floor(cx - side / 2)), max(0, math.floor(cy - side / 2))
            x1, y1 = min(w, math.ceil(cx + side / 2)), min(h, math.ceil(cy + side / 2))
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            crop = _downscale(np.ascontiguousarray(rgb[y0:y1, x0:x1]), _CROP_MAX_SIDE)
            found = self._mesh_faces(
                self._crop_mesh, crop, (float(x0), float(y0), float(x1 - x0), float(y1 - y0)), (w, h)
            )
            for face in found:
                if all(_iou(face.bbox, f.bbox) < 0.5 for f in faces):
                    faces.append(face)
        return faces

    def _detect_boxes(self, view: np.ndarray, region: tuple[int, int, int, int]
                      ) -> list[tuple[float, float, float, float, float]]:
        """Detector boxes (score, x0, y0, x1, y1) in full-image pixels; ``view`` shows
        ``region`` = (x0, y0, x1, y1) of the full image, at any scale."""
        rx0, ry0, rx1, ry1 = region
        rw, rh = rx1 - rx0, ry1 - ry0
        boxes = []
        with quiet_native_stderr():
            detections = self._detector.process(view).detections
        for det in detections or ():
            rb = det.location_data.relative_bounding_box
            x0, y0 = rx0 + rb.xmin * rw, ry0 + rb.ymin * rh
            boxes.append((float(det.score[0]), x0, y0, x0 + rb.width * rw, y0 + rb.height * rh))
        return boxes


def _tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (x0, y0, x1, y1) covering a w x h image, a third of its shorter
    side (at least 512 px) each: a 64 px face becomes >= 10 % of a tile, which the full-range
    detector finds reliably, while it misses faces under ~4 % of its input."""
    side = min(max(_TILE_MIN_SIDE, min(w, h) // 3), w, h)
    stride = side * 3 // 4  # 25 % overlap, so that a face cut by one tile is whole in the next

    def starts(extent: int) -> list[int]:
        n = max(1, math.ceil((extent - side) / stride) + 1)
        return sorted({round(i * (extent - side) / max(1, n - 1)) for i in range(n)})

    return [(x, y, x + side, y + side) for y in starts(h) for x in starts(w)]


def _add_iris_estimates(rel: np.ndarray) -> np.ndarray:
    """[468, 3] -> [478, 3]: without refine_landmarks mediapipe has no iris points; put all 5
    points of each iris at the centre of its eye contour so that shapes stay [478, 3]."""
    out = np.empty((NUM_LANDMARKS, 3), rel.dtype)
    out[: rel.shape[0]] = rel
    right = rel[list(RIGHT_EYE_UPPER + RIGHT_EYE_LOWER)].mean(axis=0)
    left = rel[list(LEFT_EYE_UPPER + LEFT_EYE_LOWER)].mean(axis=0)
    out[list(RIGHT_IRIS)] = right
    out[list(LEFT_IRIS)] = left
    return out


def _downscale(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Area-averaged copy with the longer side <= max_side (the input itself when small)."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return rgb
    import cv2  # installed with mediapipe

    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _bbox_area(face: FaceLandmarks) -> float:
    x0, y0, x1, y1 = face.bbox
    return (x1 - x0) * (y1 - y0)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


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
    min_face_px: smallest usable face width (landmark bbox) in pixels.
    tracker: a FaceTracker to reuse; None = a MediapipeFaceMesh made (and closed) for this call.

    Raises NoFaceError when there is no face, or the chosen one is narrower than min_face_px;
    InputError when face_index is out of range.
    """
    rgb, name = as_image(image, source)
    if tracker is None:
        with MediapipeFaceMesh(static_image_mode=True) as own:
            faces = own.detect(rgb, source=name)
    else:
        faces = tracker.detect(rgb, source=name)
    h, w = rgb.shape[:2]
    if not faces:
        size_hint = ""
        if min(w, h) < min_face_px:
            size_hint = f" in this {w}x{h} image, which is smaller than a usable face"
        raise NoFaceError(
            f"{name}: no face found{size_hint}. Use a photo where one face is clearly visible, "
            f"frontal, at least {min_face_px} pixels wide"
        )
    by_position = sorted(faces, key=lambda f: (f.bbox[0] + f.bbox[2]) / 2)
    if face_index is not None:
        if not 0 <= face_index < len(by_position):
            raise InputError(
                f"{name}: face {face_index} does not exist: {len(by_position)} face(s) found, "
                f"numbered 0 to {len(by_position) - 1} from left to right. Pass --face with a "
                "number in that range"
            )
        face = by_position[face_index]
    else:
        face = faces[0]  # detect() returns the largest first
        if len(faces) > 1:
            log.warning(
                "%s: %d faces found; using the largest, face %d (faces are numbered from 0, left "
                "to right). Pass --face N to choose another.",
                name, len(faces), next(i for i, f in enumerate(by_position) if f is face),
            )
    x0, _, x1, _ = face.bbox
    width = x1 - x0
    if width < min_face_px:
        raise NoFaceError(
            f"{name}: the face is only {width:.0f} pixels wide, too small to animate; at least "
            f"{min_face_px} pixels are needed. Use a larger photo, or one taken closer"
        )
    return face
