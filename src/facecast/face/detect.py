"""Finding faces: mediapipe's face mesh (478 landmarks), with mediapipe's face detectors to find
the faces the mesh misses (small ones, several in a row) and to tell which way is up (a portrait
on its side or upside down). ``find_face`` (face/find.py) picks the face to animate.

The mediapipe graphs are not thread-safe: use one ``MediapipeFaceMesh`` per thread.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import numpy as np

from facecast.face.frame import FACE_FRACTION_MIN, framing_origin
from facecast.face.geometry import (
    bbox_area,
    centre,
    contains,
    downscale,
    face_roll,
    iou,
    panels,
    square_around,
    tiles,
    turn_face,
    turn_image,
    turn_points,
    upright_turns,
)
from facecast.face.image import ARRAY_SOURCE, array_to_rgb
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
# Which way is up: the short-range detector scores a crop around the face (the face ~45 % of
# it, at this side) in each of its four quarter turns: the upright turn scored 0.80-0.99, the
# opposite one 0.56-0.77. On the 7 test portraits, 6 video frames and the astronaut, each
# tilted by -45 to 45 degrees in steps of 15 and turned by 0-270 degrees (392 cases), the
# score-weighted circular mean of the four turns was within 43 degrees of the true roll (mean
# 13); a correct fit is thus within ~50 degrees of it, while the mesh's fits of an upright face
# over one upside down or on its side were 110-180 degrees off.
_SCORE_SIDE = 256
_TURN_TOLERANCE = 70.0
_TURN_EVIDENCE = 0.1  # scores differing less than this say nothing about which way is up
# A face whose best score is this far below the best face's, and under _FACE_SCORE_MIN, is
# dropped as a false find (the mesh fitted a face to a helmet in a turned astronaut photo: best
# score 0.58; real faces scored 0.80-0.99).
_FACE_SCORE_GAP = 0.2
_FACE_SCORE_MIN = 0.7


def _protobuf_bridge() -> None:
    """mediapipe 0.10.21's graphs call ``MessageFactory.GetPrototype``, which protobuf 5 removed
    (``GetMessageClass`` replaced it); on protobuf >= 5 (which the pipecat extra needs) the call
    fails inside mediapipe and prints an AttributeError to stderr on every graph start. Give the
    factory the old name for the new function, once; nothing changes on protobuf 4."""
    from google.protobuf import message_factory

    if not hasattr(message_factory.MessageFactory, "GetPrototype"):
        message_factory.MessageFactory.GetPrototype = (
            lambda self, descriptor: message_factory.GetMessageClass(descriptor))


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
    the full image's pixels. When the mesh finds nothing (a small face in a large frame: the
    mesh's own detector is a short-range model), mediapipe's full-range face detector looks for
    faces, on the whole image and then on overlapping tiles, and the mesh runs on a crop around
    each.

    In static mode, besides:
      - a face narrower than 25 % of the image's longer side is measured again on a crop framed
        around it (the mesh is more precise when the face fills its view);
      - the full-range detector also looks for the faces the mesh missed (the mesh's detector
        sees a wide picture letterboxed, where a row of faces shrinks to a few pixels), on the
        whole image and on square panels along a wide or tall one;
      - every face's orientation is checked: the short-range detector scores a crop around it in
        its four quarter turns, and a face whose landmarks say another way is up (the mesh fits
        an upright face over an upside-down one) is measured again on the crop turned upright.
        When nothing is found at all, the image is searched again in its three other quarter
        turns. Landmarks are always in the given image's pixels: those of a face on its side or
        upside down say so by their roll (``geometry.face_roll``), and ``frame_portrait`` turns
        the picture upright.

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
        _protobuf_bridge()
        import mediapipe as mp

        self._mp = mp
        self._mesh = self._new_mesh(static_image_mode, max_faces)
        self._crop_mesh = None  # static single-face mesh for crops, made on first use
        self._detector = None  # full-range face detector, made on first use
        self._scorer = None  # short-range face detector scoring orientations, made on first use
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
        for graph in (self._mesh, self._crop_mesh, self._detector, self._scorer):
            if graph is not None:
                with quiet_native_stderr():
                    graph.close()
        self._mesh = self._crop_mesh = self._detector = self._scorer = None

    def detect(self, image: np.ndarray, *, source: str = ARRAY_SOURCE) -> list[FaceLandmarks]:
        """All faces in ``image`` (uint8 [H, W, 3] RGB), largest (landmark bbox area) first, at
        most ``options.max_faces``.

        Landmarks are float32 [478, 3] in ``image``'s pixels (z scaled like x).
        """
        if self._closed:
            raise RuntimeError("MediapipeFaceMesh is closed")
        rgb = array_to_rgb(image, source)
        h, w = rgb.shape[:2]
        if min(h, w) < 8:
            return []  # nothing to find, and mediapipe's resamplers misbehave on tiny inputs
        small = downscale(rgb, self.options.detect_max_side)
        faces = self._find(rgb, small, source)
        if self.options.static_image_mode:
            if not faces:
                faces = self._find_turned(rgb, small, source)
            upright: list[tuple[FaceLandmarks, float]] = []
            for face in faces:
                face, score = self._orient(rgb, small, face, source)
                if all(iou(face.bbox, f.bbox) < 0.5 for f, _ in upright):  # two fits of one face
                    upright.append((face, score))
            top = max((s for _, s in upright), default=0.0)
            faces = [f for f, s in upright if s >= min(_FACE_SCORE_MIN, top - _FACE_SCORE_GAP)]
        faces.sort(key=bbox_area, reverse=True)
        return faces[: self.options.max_faces]

    def _find(self, rgb: np.ndarray, small: np.ndarray, source: str) -> list[FaceLandmarks]:
        """Faces in ``rgb`` (``small``: its copy downscaled to detect_max_side)."""
        h, w = rgb.shape[:2]
        faces = self._mesh_faces(self._mesh, small, (0.0, 0.0, float(w), float(h)), (w, h))
        if not faces:
            log.debug("%s: the face mesh found no face in %dx%d; trying the full-range detector",
                      source, w, h)
            return self._faces_via_detector(rgb, small, [])
        if not self.options.static_image_mode:
            return faces
        faces = [self._refine(rgb, f) for f in faces]
        return faces + self._faces_via_detector(rgb, small, faces)

    def _find_turned(self, rgb: np.ndarray, small: np.ndarray, source: str) -> list[FaceLandmarks]:
        """Faces found in the image's other quarter turns (the mesh and the detectors miss
        some faces on their side or upside down), in the image's pixels."""
        for k in (1, 3, 2):
            faces = self._find(turn_image(rgb, k), turn_image(small, k), source)
            if faces:
                log.debug("%s: no face found upright; found %d turned by %d degrees",
                          source, len(faces), 90 * k)
                return [turn_face(f, -k) for f in faces]
        return []

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

    def _crop_faces(self, rgb: np.ndarray, region: tuple[int, int, int, int]) -> list[FaceLandmarks]:
        """The static single-face mesh on ``region`` = (x0, y0, x1, y1) of ``rgb``; landmarks
        in ``rgb``'s pixels."""
        if self._crop_mesh is None:
            self._crop_mesh = self._new_mesh(static=True, max_faces=1)
        x0, y0, x1, y1 = region
        h, w = rgb.shape[:2]
        view = downscale(np.ascontiguousarray(rgb[y0:y1, x0:x1]), _CROP_MAX_SIDE)
        return self._mesh_faces(
            self._crop_mesh, view, (float(x0), float(y0), float(x1 - x0), float(y1 - y0)), (w, h)
        )

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
        found = self._crop_faces(rgb, (cx0, cy0, cx1, cy1))
        if found and iou(found[0].bbox, face.bbox) > 0.5:
            return found[0]
        return face  # the crop lost it (should not happen): keep the first estimate

    def _faces_via_detector(self, rgb: np.ndarray, small: np.ndarray,
                            known: list[FaceLandmarks]) -> list[FaceLandmarks]:
        """Faces other than ``known`` that the full-range detector finds (on the whole image
        and on panels along a wide one; with nothing known and nothing found, on overlapping
        tiles for faces under ~5 % of the frame), measured by the mesh on a crop around each."""
        if self._detector is None:
            # model_selection=1: the full-range model (faces up to ~5 m), which the mesh lacks.
            self._detector = start_graph(lambda: self._mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.options.min_detection_confidence
            ), _warm_up)
        h, w = rgb.shape[:2]
        boxes = self._detect_boxes(small, (0, 0, w, h))
        for region in panels(w, h):
            boxes += self._detect_boxes(self._view(rgb, region), region)
        if not boxes and not known:
            for region in tiles(w, h):
                boxes += self._detect_boxes(self._view(rgb, region), region)
        kept: list[tuple[float, float, float, float, float]] = []
        for box in sorted(boxes, key=lambda b: -b[0]):  # best score first; overlapping views
            if all(iou(box[1:], k[1:]) < 0.3 for k in kept):  # see the same face twice
                kept.append(box)
        # A box whose centre is inside a known face is that face.
        kept = [b for b in kept if not any(contains(f.bbox, *centre(b[1:])) for f in known)]
        faces: list[FaceLandmarks] = []
        for _, bx0, by0, bx1, by1 in kept[: self.options.max_faces]:
            side = _CROP_PER_BOX * max(bx1 - bx0, by1 - by0)
            x0, y0, x1, y1 = square_around((bx0, by0, bx1, by1), side, w, h)
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            for face in self._crop_faces(rgb, (x0, y0, x1, y1)):
                # The crop may show a neighbour's face: keep the one the box is about.
                if known and not contains((bx0, by0, bx1, by1), *centre(face.bbox)):
                    continue
                if all(iou(face.bbox, f.bbox) < 0.5 for f in known + faces):
                    faces.append(face)
        return faces

    def _view(self, rgb: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
        x0, y0, x1, y1 = region
        return downscale(np.ascontiguousarray(rgb[y0:y1, x0:x1]), _DETECTOR_INPUT_SIDE)

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

    def _orient(self, rgb: np.ndarray, small: np.ndarray, face: FaceLandmarks, source: str
                ) -> tuple[FaceLandmarks, float]:
        """(``face`` measured the right way up, its best detector score).

        The short-range detector scores a crop around the face in its four quarter turns; their
        score-weighted circular mean says which way is up (within 43 degrees on the 392 cases
        in _TURN_TOLERANCE's comment). A fit is trusted when its roll is within _TURN_TOLERANCE
        of that (or when the scores hardly differ: no evidence). A trusted upright fit is
        returned as it is; otherwise the mesh measures the face again on the crop turned upright
        (by the fit's own turn when trusted, else by the two turns nearest the detector's
        estimate), and the first trusted fit is returned (the original one when none is).
        """
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = face.bbox
        crop_box = square_around(face.bbox, max(x1 - x0, y1 - y0) / FACE_FRACTION_MIN, w, h)
        cx0, cy0, cx1, cy1 = crop_box
        # Scored on the detection copy: a crop of a 12 MP photo is slow to copy and shrink.
        sx, sy = small.shape[1] / w, small.shape[0] / h
        view = small[math.floor(cy0 * sy): math.ceil(cy1 * sy), math.floor(cx0 * sx): math.ceil(cx1 * sx)]
        view = downscale(np.ascontiguousarray(view), _SCORE_SIDE)
        scores = np.array([self._score(turn_image(view, k)) for k in range(4)])
        weights = scores - scores.min()
        quarter = np.arange(4) * (math.pi / 2)
        up = math.degrees(math.atan2((weights * np.sin(quarter)).sum(), (weights * np.cos(quarter)).sum()))

        def trusted(f: FaceLandmarks) -> bool:
            return weights.max() < _TURN_EVIDENCE or abs((face_roll(f) - up + 180) % 360 - 180) <= _TURN_TOLERANCE

        k0 = upright_turns(face)
        if k0 == 0 and trusted(face):
            return face, float(scores.max())
        if trusted(face):
            turns = [k0]
        else:  # the two quarter turns nearest the detector's estimate
            turns = [round(up / 90) % 4, (math.floor(up / 90) if up / 90 % 1 >= 0.5 else math.ceil(up / 90)) % 4]
        log.debug("%s: face at %s, roll %.0f: detector scores %s of its quarter turns say %.0f; "
                  "measuring again turned by %s", source, crop_box, face_roll(face),
                  " ".join(f"{s:.2f}" for s in scores), up, turns)
        crop = rgb[cy0:cy1, cx0:cx1]
        for k in turns:
            turned = turn_image(crop, k)
            for again in self._crop_faces(turned, (0, 0, turned.shape[1], turned.shape[0])):
                pts = turn_points(again.points, -k, again.image_size)
                pts[:, 0] += cx0
                pts[:, 1] += cy0
                new = FaceLandmarks(points=pts.astype(np.float32), image_size=(w, h))
                if trusted(new) and contains(face.bbox, *centre(new.bbox)):
                    return new, float(scores.max())
        return face, float(scores.max())

    def _score(self, view: np.ndarray) -> float:
        """The short-range detector's best face score in ``view`` (0 when it sees none)."""
        if self._scorer is None:
            # model_selection=0: the short-range model, for faces filling much of the view;
            # a low threshold, so that it scores what it sees.
            self._scorer = start_graph(lambda: self._mp.solutions.face_detection.FaceDetection(
                model_selection=0, min_detection_confidence=0.05
            ), _warm_up)
        with quiet_native_stderr():
            detections = self._scorer.process(view).detections
        return max((float(d.score[0]) for d in detections or ()), default=0.0)


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
