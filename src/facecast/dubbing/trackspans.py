"""The face track made in pieces by many processes at once (``DubOptions.processes``).

Tracking runs mediapipe on every frame, in order: on one process it bounds a many-core job (the
1080p dub on a 16-core machine: ~20 ms a frame of decode + track, RTF ~0.5, while the span
workers draw and encode at ~0.15). Here the video's frames are cut into pieces, each tracked by
a worker with its own StreamTracker, and the pieces joined in order:

    pre-roll   a piece starts tracking PRE_S before its first frame (its face is chosen, the
               tracking graph and the One-Euro smoothing settle), and those frames are dropped
    post-roll  it goes on ``lookahead`` + 1 frames past its last one, so a gap or the backward
               smoothing across the join sees what comes after, as one tracker would
    join       where both pieces tracked the frames after a join, their faces must be the same
               (centres within JOIN_IOD inter-ocular distances): a piece that chose another face
               (several faces and no --face) makes the whole track None, and the caller tracks
               the video in order instead

The first piece alone applies the face rule's warning and error (``StreamTracker(resumed=...)``).
``track_with_workers`` runs the pieces on workers of its own, gone when the track is made: what a
tracking worker keeps (~0.4-0.6 GB at 1080p: mediapipe's graphs, the decoder's buffers) does not
stay in the span workers that draw next.
The joined track equals one tracker's to within the settling of the smoothing (tests:
tests/test_dub_trackspans.py).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .mask import iod
from .track import StreamTracker
from .trackfile import VideoTrack, track_video_file, tracked_arrays, video_sha256

log = logging.getLogger(__name__)

__all__ = ["TrackPiece", "TrackTask", "plan_pieces", "track_file_in_pieces", "track_in_pieces", "track_piece",
           "track_with_workers"]

PRE_S = 1.0
"""Seconds tracked before a piece's first frame and dropped (the face search runs every 0.2 s;
the One-Euro filters forget their start within ~0.5 s)."""

PIECE_MIN_S = 4.0
"""The shortest piece (seconds): each costs PRE_S of tracking more and a graph's start."""

JOIN_IOD = 0.5
"""Two pieces follow the same face when its centres on the frames both tracked are this close
(inter-ocular distances)."""


@dataclass(frozen=True)
class TrackTask:
    """A worker's piece: track frames [first - pre, first + count + post) of ``video``, keep
    [first, first + count)."""

    video: str
    first: int
    count: int
    pre: int
    post: int
    face_index: int | None
    max_gap_s: float


@dataclass(frozen=True)
class TrackPiece:
    """A tracked piece: points float32 [count, 478, 3] (NaN: no face), detected / cuts bool
    [count]; ``after`` float32 [post, 478, 3]: the post-roll's points (for the join check);
    ``warnings``: what the tracker warned (the first piece only)."""

    first: int
    points: np.ndarray
    detected: np.ndarray
    cuts: np.ndarray
    after: np.ndarray
    warnings: tuple[str, ...]


def plan_pieces(frames: int, fps: float, processes: int) -> list[tuple[int, int]]:
    """(first, count) of the pieces of frames [0, frames): about two per process, none shorter
    than PIECE_MIN_S (so a short job is one piece)."""
    shortest = max(1, int(round(PIECE_MIN_S * fps)))
    n = max(1, min(2 * processes, frames // shortest))
    edges = [round(k * frames / n) for k in range(n + 1)]
    return [(a, b - a) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def track_piece(task: TrackTask) -> TrackPiece:
    """Runs in a worker: one piece tracked (see the module docstring)."""
    import cv2

    from ..media import open_video

    cv2.setNumThreads(1)
    src = open_video(task.video, chunk_frames=8)
    start = task.first - task.pre
    tracker = StreamTracker(src.fps, face_index=task.face_index, max_gap_s=task.max_gap_s, source=str(src.path),
                            first_index=start, resumed=task.first > 0)
    span = task.pre + task.count + task.post
    heard = _Warnings()
    track_log = logging.getLogger(StreamTracker.__module__)
    track_log.addHandler(heard)
    try:
        out = []
        for rgb in src.rgb_frames(start, span, threads=1):
            out += tracker.push(rgb)
        out += tracker.finish()
    finally:
        track_log.removeHandler(heard)
        tracker.close()
    points, detected, cuts = tracked_arrays(out, span, start)
    keep = slice(task.pre, task.pre + task.count)
    return TrackPiece(task.first, points[keep], detected[keep], cuts[keep], points[task.pre + task.count:],
                      tuple(heard.messages))


def track_in_pieces(src, pool, processes: int, *, frames: int, face_index: int | None = None,
                    max_gap_s: float = 0.25, progress: Callable[[int, int], None] | None = None) -> VideoTrack | None:
    """The track of frames [0, frames) of ``src`` (a media.VideoSource) made by ``pool``'s
    ``processes`` workers (spans.start_workers), as one StreamTracker would make it; None when
    two pieces followed different faces (track in order then). Its ``sha256`` is empty: it is
    this job's, never saved. ``progress(frames done, frames)`` as pieces finish in order."""
    fps = float(src.fps)
    pre = max(1, int(round(PRE_S * fps)))
    post = StreamTracker(fps, max_gap_s=max_gap_s).lookahead + 1
    tasks = [TrackTask(str(src.path), a, n, min(pre, a), post, face_index, max_gap_s)
             for a, n in plan_pieces(frames, fps, processes)]
    if not tasks:
        return None
    futures = [pool.submit(track_piece, t) for t in tasks]
    try:
        pieces = []
        for f in futures:
            pieces.append(f.result())
            if progress:
                progress(sum(len(p.detected) for p in pieces), frames)
    finally:
        for f in futures:
            f.cancel()
    for msg in pieces[0].warnings:
        log.warning("%s", msg)
    for a, b in zip(pieces[:-1], pieces[1:]):
        if not _same_face(a.after, b.points[:len(a.after)]):
            log.info("%s: the pieces of the track followed different faces at frame %d; tracking in order",
                     src.path, b.first)
            return None
    cat = [np.concatenate([getattr(p, k) for p in pieces]) for k in ("points", "detected", "cuts")]
    return VideoTrack("", fps, tuple(src.size), *cat, face_index)


def track_with_workers(src, processes: int, *, frames: int | None = None, face_index: int | None = None,
                       max_gap_s: float = 0.25, progress: Callable[[int, int], None] | None = None) -> VideoTrack | None:
    """``track_in_pieces`` on ``processes`` workers of its own, gone when it returns: the memory a
    worker's mediapipe and decoder leave behind (~0.4-0.6 GB a 1080p worker) goes with them, not
    into the span workers' job. ``frames``: from the start (None: the whole video)."""
    from .spans import start_workers

    pool = start_workers(processes)
    done = False
    try:
        track = track_in_pieces(src, pool, processes, frames=src.num_frames if frames is None else frames,
                                face_index=face_index, max_gap_s=max_gap_s, progress=progress)
        done = True
        return track
    finally:
        pool.shutdown(wait=done, cancel_futures=True)  # an error is not kept waiting for the running pieces


def track_file_in_pieces(src, processes: int, *, face_index: int | None = None, max_gap_s: float = 0.25,
                         progress: Callable[[int, int], None] | None = None) -> VideoTrack:
    """The whole video's track for a track file (`facecast dub-track --processes N`), with its
    SHA-256: in pieces on ``processes`` workers, or by one tracker where they disagree."""
    track = track_with_workers(src, processes, face_index=face_index, max_gap_s=max_gap_s, progress=progress)
    if track is None:
        return track_video_file(src, face_index=face_index, max_gap_s=max_gap_s, progress=progress)
    return dataclasses.replace(track, sha256=video_sha256(src.path))


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the faces of two trackings of the same frames (points [n, 478, 3]) are one face
    wherever both found one."""
    both = np.isfinite(a[:, 0, 0]) & np.isfinite(b[:, 0, 0])
    if not both.any():
        return True
    ca, cb = a[both, :, :2].mean(axis=1), b[both, :, :2].mean(axis=1)
    size = np.array([iod(p) for p in a[both]])
    return bool(np.all(np.linalg.norm(ca - cb, axis=1) <= JOIN_IOD * np.maximum(size, 1.0)))


class _Warnings(logging.Handler):
    """Keeps the messages of warnings logged while a piece is tracked (the worker's own log goes
    nowhere; the main process logs them once)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
