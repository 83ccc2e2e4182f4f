"""Tracked footage, streaming: each source frame decoded, its face tracked, handed out in order;
and the output timeline over it, which plays the video back and forth from low-motion frames
when the speech outlasts it.

    FootageFrame   one source frame: the decoded picture and the tracked face (or none)
    FootageReader  decode + track, frame by frame, with a scan ahead (the mouth library and the
                   speaker calibration see the first seconds before dubbing starts, and those
                   frames are not tracked twice) and a ring of the last seconds in a temporary
                   file (the back-and-forth part; memory stays flat whatever the length)
    Timeline       output frame -> source frame
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..errors import InputError
from ..landmarks import LEFT_EYE_CORNERS, NOSE_TIP, RIGHT_EYE_CORNERS
from .track import StreamTracker, TrackedFrame

log = logging.getLogger(__name__)

_HEAD = list(RIGHT_EYE_CORNERS + LEFT_EYE_CORNERS) + [NOSE_TIP, 6, 168, 10, 152, 234, 454]
"""Landmarks whose motion is the head's (eyes, nose, forehead, chin, temples): the turn points of
the back-and-forth loop are frames where these are slowest."""


@dataclass
class FootageFrame:
    """A source frame. image: uint8 [H, W, 3] RGB; points: float32 [478, 3] px or None (no face:
    the frame passes through); detected: seen by the tracker (not interpolated)."""

    index: int
    image: np.ndarray
    points: np.ndarray | None
    detected: bool


class TailRing:
    """The last ``slots`` source frames (pictures in a temporary file, landmarks in memory):
    what the back-and-forth loop plays. The file is unlinked at once (nothing is left behind).
    With ``pool`` the pictures are written on its threads (a 1080p frame is 6 MB: ~5-30 ms of
    disk time), and reading a slot waits for its write."""

    def __init__(self, slots: int, size: tuple[int, int], pool=None):
        W, H = size
        self.slots = max(1, slots)
        self.shape = (H, W, 3)
        self.nbytes = H * W * 3
        self.pool = pool
        self._file = tempfile.TemporaryFile(prefix="facecast-dub-")
        self._index = np.full(self.slots, -1, np.int64)
        self._points = np.full((self.slots, 478, 3), np.nan, np.float32)
        self._has = np.zeros(self.slots, bool)
        self._detected = np.zeros(self.slots, bool)
        self._writes: dict[int, object] = {}  # slot -> its write in flight (a future)

    def _write(self, image: np.ndarray, s: int) -> None:
        os.pwrite(self._file.fileno(), np.ascontiguousarray(image).data, s * self.nbytes)

    def _wait(self, s: int) -> None:
        fut = self._writes.pop(s, None)
        if fut is not None:
            fut.result()

    def put(self, f: FootageFrame) -> None:
        s = f.index % self.slots
        self._wait(s)  # the slot's previous write first (never two at one offset)
        if self.pool is None:
            self._write(f.image, s)
        else:
            self._writes[s] = self.pool.submit(self._write, f.image, s)
        self._index[s] = f.index
        self._has[s] = f.points is not None
        self._detected[s] = f.detected
        if f.points is not None:
            self._points[s] = f.points

    def __contains__(self, j: int) -> bool:
        return bool(self._index[j % self.slots] == j)

    def get(self, j: int) -> FootageFrame:
        s = j % self.slots
        if self._index[s] != j:
            raise KeyError(f"frame {j} is not in the ring")
        self._wait(s)
        buf = os.pread(self._file.fileno(), self.nbytes, s * self.nbytes)
        image = np.frombuffer(buf, np.uint8).reshape(self.shape).copy()
        return FootageFrame(j, image, self._points[s].copy() if self._has[s] else None, bool(self._detected[s]))

    def points(self, j: int) -> np.ndarray | None:
        s = j % self.slots
        return self._points[s] if self._index[s] == j and self._has[s] else None

    def close(self) -> None:
        try:
            for s in list(self._writes):
                fut = self._writes.pop(s)
                if not fut.cancel():
                    fut.exception()  # wait: the file is still written to
        finally:
            self._file.close()


class FootageReader:
    """Source frames in order, decoded and tracked as they are asked for.

    ``scan(n)`` tracks the first n frames ahead (each passes through ``observe`` once: the mouth
    library and the calibration), keeping only their landmarks; ``next()`` then decodes those
    frames again and pairs them with the stored landmarks, and tracks the rest itself.
    ``ring``: keep the last ``ring_slots`` frames for the back-and-forth loop (frames from
    ``ring_from`` on; all of them, cyclically, when the length is unknown). ``pool``: a thread
    pool that converts the decoded frames to RGB ahead of time (``VideoSource.frames``).
    Pictures are handed out as decoded (possibly strided views): never written to.
    """

    def __init__(self, video, tracker: StreamTracker, *, observe: Callable[[FootageFrame], None] | None = None,
                 ring_slots: int = 0, crop: tuple[int, int] | None = None, timings=None, pool=None,
                 ahead: int = 8):
        from ..timing import Timings

        self.timings = timings if timings is not None else Timings()
        self.video = video
        self.crop = crop or video.size  # (W, H): odd sides lose their last row/column
        self.tracker = tracker
        self.pool, self.ahead = pool, ahead
        self.observe = observe or (lambda f: None)
        self.num_frames = video.num_frames  # None: unknown until the end
        self.ring = TailRing(ring_slots, self.crop, pool) if ring_slots else None
        self.ring_from = max(0, self.num_frames - ring_slots) if (ring_slots and self.num_frames) else 0
        self._live = self._decode()
        self._images: deque[tuple[int, np.ndarray]] = deque()  # decoded, waiting for the tracker
        self._tracked: deque[FootageFrame] = deque()  # tracked by the live pass, not yet handed out
        self._scanned: list[TrackedFrame] = []  # landmarks of frames tracked ahead
        self._replay: Iterator[np.ndarray] | None = None
        self._next = 0  # next frame next() hands out
        self.ended = False  # the live decoder reached the end
        self.decoded = 0

    def _decode(self) -> Iterator[np.ndarray]:
        W, H = self.crop
        for j, frame in enumerate(self.video.frames(self.pool, self.ahead)):
            self._check_truncated(j)
            yield frame if frame.shape[:2] == (H, W) else frame[:H, :W]

    def _check_truncated(self, j: int) -> None:
        """A file that stops decoding well before its stated length (cut off, damaged) is an
        error when the job reaches the missing part: no output that looks complete."""
        n, du = self.video.num_frames, self.video.decoded_until
        if n is None or du is None or j < du or n - du <= max(3, 0.02 * n):
            return
        fps = self.video.fps
        raise InputError(f"{self.video.path}: the video is truncated or damaged: it decodes up to frame {du} of {n} "
                         f"({du / fps:.1f} s of {n / fps:.1f} s). Re-export or re-download it.")

    def _pump(self) -> bool:
        """Decode and track one more frame; False at the end of the video."""
        if self.ended:
            return False
        with self.timings.stage("video decode"):
            img = next(self._live, None)
        if img is None:
            self.ended = True
            done = self.tracker.finish()
            if self.num_frames is None or self.decoded < self.num_frames:
                self.num_frames = self.decoded
        else:
            self._images.append((self.decoded, img))
            self.decoded += 1
            with self.timings.stage("track"):
                done = self.tracker.push(img)
        for t in done:
            j, image = self._images.popleft()
            assert j == t.index
            f = FootageFrame(j, image, t.points, t.detected)
            self.observe(f)
            if self.ring is not None and j >= self.ring_from:
                self.ring.put(f)
            self._tracked.append(f)
        return not self.ended or bool(done)

    def scan(self, n: int) -> None:
        """Track frames [0, n) ahead (their pictures are not kept)."""
        while len(self._scanned) < n:
            if not self._tracked:
                if not self._pump() and not self._tracked:
                    break
                continue
            f = self._tracked.popleft()
            self._scanned.append(TrackedFrame(f.index, f.points, f.detected))
        if self._scanned:
            self._replay = self._decode()

    @property
    def scanned(self) -> int:
        return len(self._scanned)

    def scanned_points(self, n: int) -> np.ndarray:
        """float32 [n, 478, 3] landmarks of the first n scanned frames, NaN where the face was not
        detected (interpolated frames too: calibration wants measurements)."""
        out = np.full((n, 478, 3), np.nan, np.float32)
        for k in range(min(n, len(self._scanned))):
            t = self._scanned[k]
            if t is not None and t.points is not None and t.detected:
                out[k] = t.points
        return out

    def next(self) -> FootageFrame | None:
        """The next source frame, or None after the last."""
        j = self._next
        if j < len(self._scanned):
            with self.timings.stage("video decode"):
                img = next(self._replay)
            t = self._scanned[j]
            self._scanned[j] = None  # type: ignore[call-overload]  # handed out: forget
            self._next += 1
            return FootageFrame(j, img, t.points, t.detected)
        if self._replay is not None:
            self._replay.close()
            self._replay = None
            self._scanned = []
        while not self._tracked:
            if not self._pump() and not self._tracked:
                return None
        f = self._tracked.popleft()
        self._next += 1
        return f

    def read_to_end(self) -> None:
        """Decode and track the rest (into the ring)."""
        while self._pump():
            pass

    def close(self) -> None:
        self._live.close()
        if self._replay is not None:
            self._replay.close()
        self.tracker.close()
        if self.ring is not None:
            self.ring.close()


def head_speed(points: list[np.ndarray | None]) -> np.ndarray:
    """Per frame: mean speed of the head landmarks (IOD per frame, central difference); inf where
    the face is missing around the frame."""
    n = len(points)
    out = np.full(n, np.inf)
    for k in range(n):
        a, b = points[max(k - 1, 0)], points[min(k + 1, n - 1)]
        c = points[k]
        if a is None or b is None or c is None:
            continue
        iod = float(np.linalg.norm(c[list(LEFT_EYE_CORNERS), :2].mean(0) - c[list(RIGHT_EYE_CORNERS), :2].mean(0)))
        out[k] = float(np.linalg.norm(b[_HEAD, :2] - a[_HEAD, :2], axis=1).mean()) / max(iod, 1.0) / max(min(k + 1, n - 1) - max(k - 1, 0), 1)
    return out


class Timeline:
    """Output frame -> source frame. Plays the video forward; once the output must outlast it
    (``bounce``), it turns at a low-motion frame near the end and plays back and forth between
    that frame and another low-motion frame up to ``loop_frames`` earlier (as the twin's
    background loop does: every frame's neighbour is a neighbouring real frame, no jump)."""

    def __init__(self, fps: float, loop_frames: int):
        self.fps = fps
        self.loop_frames = max(loop_frames, 1)
        self.t0 = self.t1 = None  # turn points, once bouncing

    @property
    def bouncing(self) -> bool:
        return self.t1 is not None

    def plan(self, first: int, end: int, speed: np.ndarray, lo: int) -> None:
        """Choose the turn points: output frames from ``first`` on are not shown yet, the video
        has ``end`` frames, ``speed`` [end - lo] is the head speed of frames lo..end-1."""
        fps = self.fps
        last = end - 1
        cand = np.arange(max(first - 1, last - int(round(fps)), lo), last + 1)
        t1 = int(cand[np.argmin(speed[cand - lo])]) if cand.size else last
        t1 = max(min(t1, last), 0)
        low = max(lo, t1 - self.loop_frames + 1)
        span = min(int(round(2 * fps)), max((t1 - low) // 2, 1))
        cand = np.arange(low, max(t1 - span, low) + 1)
        if t1 - low < 1:
            t0 = max(t1 - 1, 0)
        else:
            # Low motion first; among near-equals, the earlier (a longer loop repeats less often).
            s = speed[cand - lo]
            t0 = int(cand[np.argmin(s + 0.002 * (cand - low) / max(len(cand), 1))])
        self.t0, self.t1 = min(t0, t1), t1
        log.info("speech outlasts the video: playing frames %d-%d back and forth", self.t0, self.t1)

    def source(self, i: int) -> int:
        """Source frame of output frame ``i`` (while bouncing)."""
        from ..twin.generate import pingpong_index

        if i <= self.t1:
            return i
        m = self.t1 - self.t0 + 1
        return int(self.t1 - pingpong_index(np.array([i - self.t1]), self.fps, m, self.fps)[0])
