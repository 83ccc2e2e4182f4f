"""The dubbed face through a video, streaming: mediapipe in tracking mode, one chosen face, short
gaps interpolated, zero-phase One-Euro smoothing over a bounded look-ahead, shot cuts reset.

``face.track_video`` does the same over a whole video held in memory (for `facecast eval` and
the twin); `dub` streams videos of any length, so here every frame leaves the tracker
``lookahead`` frames after it came in, and memory holds only those frames' landmarks.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..types import FaceLandmarks
from .mask import iod

log = logging.getLogger(__name__)

# One-Euro settings in inter-ocular distances (IOD) and seconds, as face.track uses them (tuned
# there: still-face jitter cut ~3x, lip closures kept).
_MIN_CUTOFF_HZ = 1.0
_BETA = 20.0
_D_CUTOFF_HZ = 8.0

CUT_DIFF = 28.0
"""Mean absolute difference (0-255 grey levels) between 32x18 thumbnails of consecutive frames
above which a frame starts a new shot: tracking and smoothing restart there."""

TRACK_FACE_PX = 160
"""The tracker sees frames downscaled by an integer factor while the face stays this wide (px)."""

SEARCH_EVERY_S = 0.2
"""While no face has been found yet, look for one every this many seconds (a full detection is
~10x the cost of tracking)."""


@dataclass(frozen=True)
class TrackedFrame:
    """One frame's face: ``points`` float32 [478, 3] (px, smoothed; None = no face, the frame
    passes through untouched), ``detected``: the tracker saw the face in this very frame (False
    for interpolated gap frames), ``cut``: the frame starts a new shot."""

    index: int
    points: np.ndarray | None
    detected: bool
    cut: bool = False


def _centre(pts: np.ndarray) -> np.ndarray:
    return pts[:, :2].mean(0)


class OneEuro:
    """Streaming One-Euro filter over [478, 3] landmark arrays (Casiez et al. 2012), the
    cutoff adapting to each point's speed in IOD/s."""

    def __init__(self, fps: float):
        self.fps = fps
        self.reset()

    def reset(self) -> None:
        self.prev: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    def _alpha(self, cutoff):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.fps)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        if self.prev is None:
            self.prev, self.dx = x, np.zeros_like(x)
            return x
        a_d = self._alpha(_D_CUTOFF_HZ)
        self.dx = a_d * (x - self.prev) * self.fps + (1 - a_d) * self.dx
        speed = np.linalg.norm(self.dx, axis=-1, keepdims=True) / max(iod(x), 1.0)
        a = self._alpha(_MIN_CUTOFF_HZ + _BETA * speed)
        self.prev = a * x + (1 - a) * self.prev
        return self.prev


def thumb(frame: np.ndarray) -> np.ndarray:
    """32x18 grey thumbnail (float32) for shot-cut detection: each cell the mean of >= 8 x 8 of
    its pixels (every ``step``-th row and column: a full 720p frame cost 1.2 ms, this 0.1-0.4)."""
    import cv2

    h, w = frame.shape[:2]
    step = max(1, min(h // 144, w // 256))
    small = cv2.resize(frame[::step, ::step], (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
    return small.mean(axis=2) if small.ndim == 3 else small


class StreamTracker:
    """Push frames in order, get TrackedFrames back ``lookahead`` frames later (``finish``
    returns the rest). ``face_index`` chooses the face left to right at the first frame with
    faces (None: the largest, with a warning when there are several); from then on the face
    nearest the last position is followed, and chosen again by the same rule after a cut.

    A piece of a longer video (trackspans.py): ``first_index`` is the video frame the first push
    shows; ``resumed``: the rule was applied before this piece, so choosing here neither warns
    nor fails (as after a cut)."""

    def __init__(self, fps: float, *, face_index: int | None = None, max_gap_s: float = 0.25, source: str = "",
                 first_index: int = 0, resumed: bool = False):
        self.fps = fps
        self.face_index = face_index
        self.source = source
        self.resumed = resumed
        self.max_gap = int(round(max_gap_s * fps))
        self.lookahead = max(self.max_gap + 1, int(round(0.2 * fps)))
        self._mesh = None
        self._max_faces = 1
        self._chosen = False  # a face has been chosen (the rule applied once)
        self._last: np.ndarray | None = None  # centre of the followed face, px
        self._last_iod = 0.0
        self._search_every = max(1, int(round(SEARCH_EVERY_S * fps)))
        self._pending: deque[list] = deque()  # [index, raw points | None, cut]
        self._prev_raw: tuple[int, np.ndarray] | None = None  # last emitted detected frame (for gaps)
        self._fwd = OneEuro(fps)
        self._thumb: np.ndarray | None = None
        self._next = first_index
        self._finishing = False
        self._seen_at = -1  # last frame the face was detected in
        self.detected = 0  # frames the face was seen in
        self.cuts = 0

    # -- detection ----------------------------------------------------------------------------

    def _tracker(self, shape: tuple[int, ...]):
        if self._mesh is None:
            from ..face import MediapipeFaceMesh

            self._mesh = MediapipeFaceMesh(static_image_mode=False, max_faces=self._max_faces,
                                           detect_max_side=self._detect_side(shape))
        return self._mesh

    def _detect_side(self, shape: tuple[int, ...]) -> int:
        """The side the tracker sees frames at: an integer fraction of the frame (a cheap area
        downscale) that keeps the face >= TRACK_FACE_PX wide (the mesh looks at a 192 px crop
        of 1.5 faces: more pixels are wasted), at most DETECT_MAX_SIDE."""
        from ..face import DETECT_MAX_SIDE

        longest = max(shape[:2])
        k = max(1, int(longest // DETECT_MAX_SIDE) + (longest % DETECT_MAX_SIDE > 0))
        while self._last_iod and 2.2 * self._last_iod / (k + 1) >= TRACK_FACE_PX and longest / (k + 1) >= 256:
            k += 1
        return max(128, longest // k)

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def _choose(self, faces: list[FaceLandmarks]) -> FaceLandmarks:
        by_x = sorted(faces, key=lambda f: float(_centre(f.points)[0]))
        if self.face_index is not None:
            if self.face_index >= len(by_x):
                if not (self._chosen or self.resumed):
                    raise InputError(
                        f"{self.source}: face {self.face_index} does not exist: {len(by_x)} face(s) found, numbered "
                        f"0 to {len(by_x) - 1} from left to right. Pass --face with a number in that range.")
                return by_x[-1]
            return by_x[self.face_index]
        face = faces[0]  # detect() sorts the largest first
        if len(faces) > 1 and not (self._chosen or self.resumed):
            log.warning("%s: %d faces found; dubbing the largest, face %d (faces are numbered from 0, left to "
                        "right). Pass --face N to choose another.", self.source, len(faces),
                        next(i for i, f in enumerate(by_x) if f is face))
        return face

    def _detect(self, index: int, frame: np.ndarray) -> np.ndarray | None:
        searching = not self._chosen or index - self._seen_at > self.fps  # no face yet, or gone for 1 s
        if searching and index % self._search_every:
            return None  # looking for a face (a cutaway, the speaker away): not every frame
        if not self._chosen:
            from ..face import MediapipeFaceMesh

            with MediapipeFaceMesh(static_image_mode=True, max_faces=5) as still:
                faces = still.detect(frame, source=self.source)
            if not faces:
                return None
            face = self._choose(faces)
            self._chosen = True
            self._max_faces = min(len(faces), 5)
            self._last, self._last_iod = _centre(face.points), iod(face.points)
            self._seen_at = index
            return face.points
        faces = self._tracker(frame.shape).detect(frame, source=self.source)
        if not faces:
            return None
        if self._last is None:
            face = self._choose(faces)
        else:
            face = min(faces, key=lambda f: float(np.linalg.norm(_centre(f.points) - self._last)))
            if np.linalg.norm(_centre(face.points) - self._last) > 1.5 * max(self._last_iod, 1.0):
                return None  # only other faces in view: ours is not there
        self._last, self._last_iod = _centre(face.points), iod(face.points)
        self._seen_at = index
        return face.points

    # -- streaming ----------------------------------------------------------------------------

    def push(self, frame: np.ndarray) -> list[TrackedFrame]:
        """Track one frame (uint8 [H, W, 3] RGB, in order); returns the frames now final."""
        index = self._next
        self._next += 1
        t = thumb(frame)
        cut = self._thumb is not None and float(np.abs(t - self._thumb).mean()) > CUT_DIFF
        self._thumb = t
        if cut:
            self.cuts += 1
            self.close()  # a new shot: a fresh tracking graph, and the face chosen again
            self._last = None
        pts = self._detect(index, frame)
        if pts is not None:
            self.detected += 1
        self._pending.append([index, pts, cut])
        out = []
        while len(self._pending) > self.lookahead:
            out.append(self._emit())
        return out

    def finish(self) -> list[TrackedFrame]:
        self._finishing = True
        out = [self._emit() for _ in range(len(self._pending))]
        self.close()
        return out

    def _emit(self) -> TrackedFrame:
        index, pts, cut = self._pending.popleft()
        if cut:
            self._fwd.reset()
            self._prev_raw = None
        detected = pts is not None
        if pts is None:
            pts = self._fill(index)
        if pts is None:
            self._fwd.reset()
            return TrackedFrame(index, None, False, cut)
        if detected:
            self._prev_raw = (index, pts)
        fwd = self._fwd(pts)
        bwd = self._backward(pts)
        return TrackedFrame(index, ((fwd + bwd) / 2).astype(np.float32), detected, cut)

    def _fill(self, index: int) -> np.ndarray | None:
        """Points for a frame without a detection: interpolated between the detections around it
        when the gap is short and inside one shot; None otherwise."""
        nxt = None
        for j, p, c in self._pending:
            if c:
                break  # the next detection is in another shot
            if p is not None:
                nxt = (j, p)
                break
        prev = self._prev_raw
        if prev is not None and nxt is not None:
            if nxt[0] - prev[0] - 1 > self.max_gap:
                return None
            t = (index - prev[0]) / (nxt[0] - prev[0])
            return ((1 - t) * prev[1] + t * nxt[1]).astype(np.float32)
        if prev is not None and index - prev[0] <= self.max_gap and self._finishing and not any(
                p is not None for _, p, _ in self._pending):
            return prev[1]  # the end of the video: hold
        if prev is None and nxt is not None and nxt[0] - index <= self.max_gap and nxt[0] <= self.max_gap:
            return nxt[1]  # the start of the video: hold
        return None

    def _backward(self, pts: np.ndarray) -> np.ndarray:
        """The backward One-Euro pass from the furthest look-ahead frame of this shot down to
        this frame (its start converges within the look-ahead)."""
        run = []
        for _, p, c in self._pending:
            if c or p is None:
                break
            run.append(p)
        if not run:
            return pts.astype(np.float64)
        f = OneEuro(self.fps)
        for p in reversed(run):
            f(p)
        return f(pts)
