"""A video's face track, computed once and reused: a file keyed by the video's content.

Tracking (mediapipe) is the one stage of `dub` that needs mediapipe; a machine without it (the
GPU box) dubs from a track made elsewhere, and a live video face is tracked once however many
sessions show it.

    VideoTrack          the tracked face of every frame of one video (points, detected, cuts)
    track_video_file    run dub's StreamTracker over a whole video -> VideoTrack
    save_track          write it (.npz, atomically), load_track read and check it against a video
    ReplayTracker       StreamTracker's interface over a VideoTrack (no mediapipe, no OpenCV)
    video_sha256        the key: SHA-256 of the video file's bytes

A track file holds float32 landmarks (5.6 KB a frame, ~5 KB compressed: 1.5 MiB for 12 s at 25 fps).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from .track import StreamTracker, TrackedFrame

log = logging.getLogger(__name__)

__all__ = ["ReplayTracker", "VideoTrack", "load_track", "save_track", "track_video_file", "tracked_arrays",
           "video_sha256"]

FORMAT = "facecast-track"
VERSION = 1


def video_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's bytes (read in 4 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class VideoTrack:
    """The dubbed face through a whole video. points float32 [n, 478, 3] in pixels of frames of
    ``size`` (W, H), NaN where no face (the frame passes through); detected bool [n] (seen by the
    tracker, not interpolated); cuts bool [n] (a frame that starts a new shot). ``sha256``: the
    video file's; ``face_index``: the face it follows (None: the largest)."""

    sha256: str
    fps: float
    size: tuple[int, int]
    points: np.ndarray
    detected: np.ndarray
    cuts: np.ndarray
    face_index: int | None = None

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])

    @property
    def has_face(self) -> np.ndarray:
        """bool [n]: frames with landmarks (detected or interpolated)."""
        return np.isfinite(self.points[:, 0, 0])

    def frame(self, i: int) -> TrackedFrame:
        ok = bool(np.isfinite(self.points[i, 0, 0]))
        return TrackedFrame(i, self.points[i].copy() if ok else None, bool(self.detected[i]), bool(self.cuts[i]))

    def scaled(self, size: tuple[int, int]) -> "VideoTrack":
        """The same track for the video's frames decoded at ``size`` (W, H): x, y (and z, which
        mediapipe gives in x's pixel units) scaled."""
        if tuple(size) == tuple(self.size):
            return self
        sx, sy = size[0] / self.size[0], size[1] / self.size[1]
        pts = self.points * np.array([sx, sy, sx], np.float32)
        return VideoTrack(self.sha256, self.fps, (int(size[0]), int(size[1])), pts, self.detected, self.cuts,
                          self.face_index)


def track_video_file(video, *, face_index: int | None = None, max_gap_s: float = 0.25, sha256: str | None = None,
                     progress: Callable[[int, int | None], None] | None = None) -> VideoTrack:
    """Track ``video`` (a path, or a media.VideoSource) from start to end with dub's streaming
    tracker (the same landmarks `dub` would find itself). A video without a face gives a track
    without points (the caller decides what that means); InputError for an unreadable video."""
    from ..media import open_video

    src = video if hasattr(video, "fps") and hasattr(video, "path") else open_video(video, chunk_frames=25)
    tracker = StreamTracker(src.fps, face_index=face_index, max_gap_s=max_gap_s, source=str(src.path))
    out: list[TrackedFrame] = []
    try:
        for chunk in src:
            for img in chunk.frames.numpy():
                out += tracker.push(img)
            if progress:
                progress(chunk.first_frame + chunk.num_frames, src.num_frames)
        out += tracker.finish()
    finally:
        tracker.close()
    points, detected, cuts = tracked_arrays(out, len(out))
    return VideoTrack(sha256 or video_sha256(src.path), float(src.fps), tuple(src.size), points, detected, cuts,
                      face_index)


def tracked_arrays(frames: list[TrackedFrame], n: int, start: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points float32 [n, 478, 3], NaN without a face; detected, cuts bool [n]) of the tracked
    ``frames`` of video frames [start, start + n) (a frame not among them: no face)."""
    points = np.full((n, 478, 3), np.nan, np.float32)
    detected = np.zeros(n, bool)
    cuts = np.zeros(n, bool)
    for t in frames:
        k = t.index - start
        if t.points is not None:
            points[k] = t.points
        detected[k], cuts[k] = t.detected, t.cut
    return points, detected, cuts


def save_track(track: VideoTrack, path: str | os.PathLike) -> Path:
    """Write ``track`` to ``path`` (.npz) atomically: a temporary file in the same folder,
    renamed into place once complete."""
    path = Path(path)
    meta = {"format": FORMAT, "version": VERSION, "sha256": track.sha256, "fps": track.fps,
            "size": list(track.size), "face_index": track.face_index}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, meta=np.array(json.dumps(meta)), points=track.points,
                                detected=track.detected, cuts=track.cuts)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_track(path: str | os.PathLike, video=None, *, face_index: int | None = None) -> VideoTrack:
    """Read a track file; with ``video`` (a path or VideoSource) check it belongs to that video
    (same SHA-256 and frame count; a video decoded at another size gets the points scaled).
    InputError names the file and what is wrong."""
    name = str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            points, detected, cuts = z["points"], z["detected"], z["cuts"]
    except FileNotFoundError:
        raise InputError(f"{name}: no such track file. Make one with facecast.dubbing.trackfile.track_video_file "
                         "and save_track (or `facecast dub-track VIDEO -o FILE`).") from None
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise InputError(f"{name}: not a facecast track file ({exc}). Make it again with `facecast dub-track`.") \
            from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{name}: not a facecast track file. Make it again with `facecast dub-track`.")
    if meta.get("version") != VERSION:
        raise InputError(f"{name}: track file version {meta.get('version')}, this facecast reads {VERSION}. "
                         "Make it again with `facecast dub-track`.")
    if points.ndim != 3 or points.shape[1:] != (478, 3) or len(detected) != len(points) or len(cuts) != len(points):
        raise InputError(f"{name}: the track file is damaged (arrays of {points.shape}). Make it again.")
    track = VideoTrack(str(meta["sha256"]), float(meta["fps"]), tuple(int(v) for v in meta["size"]),
                       points.astype(np.float32, copy=False), detected.astype(bool), cuts.astype(bool),
                       meta.get("face_index"))
    if track.face_index != face_index:
        raise InputError(f"{name}: the track follows face {_face(track.face_index)}, this job asks for face "
                         f"{_face(face_index)}. Track the video again with that face.")
    if video is not None:
        track = check_track(track, video, name)
    return track


def check_track(track: VideoTrack, video, name: str = "the track") -> VideoTrack:
    """``track`` for ``video`` (a path or VideoSource): InputError unless it is that video's."""
    vpath = getattr(video, "path", video)
    digest = video_sha256(vpath)
    if digest != track.sha256:
        raise InputError(f"{name}: was made for another video (SHA-256 {track.sha256[:12]}..., {vpath} is "
                         f"{digest[:12]}...). Track {vpath} itself.")
    n = getattr(video, "num_frames", None)
    if n is not None and abs(n - track.num_frames) > 1:
        raise InputError(f"{name}: has {track.num_frames} frames, {vpath} has {n}. Track it again.")
    size = getattr(video, "size", None)
    return track.scaled(size) if size is not None else track


def _face(i: int | None) -> str:
    return "the largest" if i is None else str(i)


class ReplayTracker:
    """StreamTracker's interface over a precomputed VideoTrack: ``push(frame)`` hands the frame's
    stored TrackedFrame straight back (no look-ahead needed: the smoothing is in the track). No
    mediapipe, no OpenCV. Frames beyond the track's end have no face."""

    def __init__(self, track: VideoTrack):
        self.track = track
        self._next = 0
        self.detected = int(track.detected.sum())
        self.cuts = int(track.cuts.sum())

    def push(self, frame: np.ndarray) -> list[TrackedFrame]:
        i = self._next
        self._next += 1
        if i >= self.track.num_frames:
            return [TrackedFrame(i, None, False)]
        return [self.track.frame(i)]

    def finish(self) -> list[TrackedFrame]:
        return []

    def close(self) -> None:
        pass
