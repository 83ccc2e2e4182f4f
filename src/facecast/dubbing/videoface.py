"""A video of the person as a live face: `dub`'s footage source, prepared once for live streams.

    VideoFace          opened once (per video and size): decoded at the stream's size into a
                       temporary file (RAM stays flat whatever the clip's length), tracked once
                       (an in-process cache keyed by the file's SHA-256, or a given track file),
                       its mouths collected (dub's MouthLibrary), its back-and-forth loop planned
                       between low-motion frames. Shared, read-only, by any number of streams.
    VideoFaceRenderer  one stream's drawer: output frame f -> the loop's source frame, the mouth
                       redrawn for the motion parameters (dub's FootageMouth or MeshMouth), only
                       the lower face changing.
    open_video_face    the factory, with the live side's messages for bad input.

The clip plays forward from its first frame; at its end (or after ``loop_s``) it turns at the
slowest head motion near there and plays back and forth down to another low-motion frame, as
`dub` extends a video its speech outlasts (footage.Timeline): every output frame's neighbour is
a neighbouring real frame, so the background never jumps. Output frame f is shown at f / fps of
the stream; the source frame is the one at that time on the video's own rate.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ..errors import InputError, NoFaceError
from ..options import Range, check_ranges, check_type
from ..types import FaceLandmarks, MotionFrames, Portrait, VideoFrames
from .calibrate import SpeakerStats, default_calibration, mouth_shape
from .footage import FootageFrame, Timeline, head_speed
from .options import DubOptions

log = logging.getLogger(__name__)

__all__ = ["VideoFace", "VideoFaceOptions", "VideoFaceRenderer", "open_video_face"]


@dataclass(frozen=True)
class VideoFaceOptions:
    """A live video face.

    loop_s: seconds of the video (from its start) the stream plays back and forth, 1 ... 600
        (frames are kept in a temporary file: ~0.2 MB a frame at 256 px, ~0.8 MB at 512 px).
    dub: how the mouth is drawn (``mouth``, ``library_size``, ``library_mb``, ``mask_grow``,
        ``feather``, ``max_gap_s``, ``render``); its speech and encoder fields do not apply.
    """

    loop_s: float = 60.0
    dub: DubOptions = DubOptions()

    RANGES: ClassVar[dict] = {"loop_s": Range(1, 600, "s")}

    def __post_init__(self) -> None:
        check_ranges(self)
        check_type(self, "dub", DubOptions)


_TRACKS: OrderedDict = OrderedDict()  # (sha256, face_index) -> VideoTrack at the source size
_TRACKS_LOCK = threading.Lock()
TRACK_CACHE = 8
"""Tracks of this many videos stay cached in the process (a 60 s clip's: ~9 MB)."""


def cached_track(path, face_index: int | None, max_gap_s: float):
    """The face track of the video at ``path`` (at its own size), tracked at most once per
    process and content."""
    from .trackfile import track_video_file, video_sha256

    key = (video_sha256(path), face_index)
    with _TRACKS_LOCK:
        if key in _TRACKS:
            _TRACKS.move_to_end(key)
            return _TRACKS[key]
    track = track_video_file(path, face_index=face_index, max_gap_s=max_gap_s, sha256=key[0])
    with _TRACKS_LOCK:
        _TRACKS[key] = track
        while len(_TRACKS) > TRACK_CACHE:
            _TRACKS.popitem(last=False)
    return track


def open_video_face(video, *, size: int | None = 512, face_index: int | None = None,
                    options: VideoFaceOptions = VideoFaceOptions(), track=None) -> "VideoFace":
    """A ready VideoFace for ``video`` (a path) scaled so its longer side is at most ``size``.
    ``track``: its precomputed face track (trackfile.VideoTrack or track file), else tracked here
    (once per process). InputError / NoFaceError say what is wrong with the file."""
    from ..media import open_video

    try:
        src = open_video(video, chunk_frames=8, max_side=size)
    except InputError as exc:
        msg = str(exc)
        if "audio only" in msg:
            raise InputError(f"{video}: is audio only (no picture). A live face is a portrait image, a video of the "
                             "person or a twin; send the audio as speech (AudioIn) instead.") from None
        raise
    return VideoFace(src, face_index=face_index, options=options, track=track)


class VideoFace:
    """A prepared video face (see the module docstring). ``size`` (W, H), ``fps`` (the stream's
    frames map onto the video's time), ``num_frames`` (frames of the clip used), ``portrait``
    (its first frame with a face, for code that wants a Portrait), ``library``, ``calibration``."""

    def __init__(self, src, *, face_index: int | None = None, options: VideoFaceOptions = VideoFaceOptions(),
                 track=None):
        from .trackfile import VideoTrack, check_track, load_track

        self.options = options
        self.name = str(src.path)
        W, H = src.size
        self.size = (W - W % 2, H - H % 2)
        self.fps = float(src.fps)
        if track is None:
            track = cached_track(src.path, face_index, options.dub.max_gap_s)
            track = track.scaled(src.size)
        elif isinstance(track, VideoTrack):
            track = check_track(track, src)
        else:
            track = load_track(track, src, face_index=face_index)
        if not track.detected.any():
            raise NoFaceError(f"{self.name}: no face found in any frame. A video face needs the person's face visible "
                              "(frontal, at least ~64 pixels wide) in the clip.")
        n = min(track.num_frames, int(round(options.loop_s * self.fps)))
        self.num_frames = n
        self._points = track.points[:n]
        self._detected = track.detected[:n]
        self.nbytes = self.size[0] * self.size[1] * 3
        self._file = tempfile.TemporaryFile(prefix="facecast-videoface-")
        self.stats = SpeakerStats()
        self.library = None
        if options.dub.mouth != "mesh":
            from .mouths import MouthLibrary

            self.library = MouthLibrary(options.dub, self.size)
        try:
            self._decode(src)
        except BaseException:
            self._file.close()
            raise
        self.calibration = default_calibration(self.stats)
        speed = head_speed([self.points(j) for j in range(self.num_frames)])
        self.timeline = Timeline(self.fps, self.num_frames)
        self.timeline.plan(0, self.num_frames, speed, 0)
        first = next(j for j in range(self.num_frames) if self._detected[j])
        f = self.frame(first)
        self.portrait = Portrait(f.image, FaceLandmarks(f.points, self.size), self.name)
        self.mouth = self._choose_mouth()
        self._meshes: dict = {}  # RenderOptions -> MeshRenderer (the mesh mouth's), shared by streams
        self._lock = threading.Lock()
        if self.mouth == "mesh":
            self.mesh_renderer(options.dub.render)  # built now, not at a stream's first frame
        from .source import release_freed_memory

        release_freed_memory()  # the decode and tracking's frames: ~0.45 GB kept by glibc otherwise

    def _decode(self, src) -> None:
        """Every used frame into the temporary file; tracked ones offered to the library."""
        W, H = self.size
        j = 0
        for chunk in src:
            for img in chunk.frames.numpy():
                if j >= self.num_frames:
                    return
                img = np.ascontiguousarray(img[:H, :W])
                os.pwrite(self._file.fileno(), img.data, j * self.nbytes)
                pts = self.points(j)
                if pts is not None and self._detected[j]:
                    shape = mouth_shape(pts[None])[0]
                    self.stats.add(shape)
                    if self.library is not None:
                        self.library.offer(FootageFrame(j, img, pts, True), shape)
                j += 1
        self.num_frames = j  # the file decoded to fewer frames than it said

    def _choose_mouth(self) -> str:
        kind = self.options.dub.mouth
        if kind == "auto":
            ok, why = self.library.usable(self.stats)
            if not ok:
                log.warning("%s: %s; drawing the mouth with the mesh renderer instead", self.name, why)
            kind = "footage" if ok else "mesh"
        return kind

    def mesh_renderer(self, render_options):
        """The MeshRenderer of the mesh mouth for ``render_options`` (built once: setting one up
        triangulates the face, ~1 s, which a stream's first frame must not wait for)."""
        from ..render import MeshRenderer

        with self._lock:
            r = self._meshes.get(render_options)
            if r is None:
                r = self._meshes[render_options] = MeshRenderer(self.portrait, render_options)
            return r

    def points(self, j: int) -> np.ndarray | None:
        p = self._points[j]
        return p if np.isfinite(p[0, 0]) else None

    def frame(self, j: int) -> FootageFrame:
        """Source frame ``j`` (0 <= j < num_frames) with its face (points None: no face)."""
        buf = os.pread(self._file.fileno(), self.nbytes, j * self.nbytes)
        image = np.frombuffer(buf, np.uint8).reshape(self.size[1], self.size[0], 3).copy()
        pts = self.points(j)
        return FootageFrame(j, image, None if pts is None else pts.copy(), bool(self._detected[j]))

    def source_index(self, f: int, fps: float) -> int:
        """The source frame shown at output frame ``f`` of a stream at ``fps``."""
        v = int(math.floor(f / fps * self.fps + 1e-6))
        return self.timeline.source(v) if self.timeline.bouncing else min(v, self.num_frames - 1)

    def renderer(self, fps: float, render_options=None) -> "VideoFaceRenderer":
        return VideoFaceRenderer(self, fps, render_options)

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return (f"VideoFace({self.name!r}, {self.size[0]}x{self.size[1]} @ {self.fps:g} fps, {self.num_frames} frames, "
                f"loop {self.timeline.t0}-{self.timeline.t1}, mouth {self.mouth})")


class VideoFaceRenderer:
    """One stream's frames over a VideoFace: ``render(MotionFrames) -> VideoFrames`` (the
    StreamSession's render seam). Holds the stream's mouth drawer (its temporal state)."""

    def __init__(self, face: VideoFace, fps: float, render_options=None):
        import dataclasses

        self.face, self.fps = face, float(fps)
        o = face.options.dub
        if render_options is not None:
            o = dataclasses.replace(o, render=render_options)
        if face.mouth == "footage":
            from .mouths import FootageMouth

            self.drawer = FootageMouth(face.library, o, face.size)
        else:
            from .meshmouth import MeshMouth

            self.drawer = MeshMouth(o, face.size, self.fps, face.stats)
            self.drawer.renderer = face.mesh_renderer(o.render)

    def render(self, motion: MotionFrames) -> VideoFrames:
        face = self.face
        W, H = face.size
        n = motion.num_frames
        frames = [face.frame(face.source_index(motion.first_frame + k, self.fps)) for k in range(n)]
        out = np.empty((n, H, W, 3), np.uint8)
        for k, f in enumerate(frames):
            out[k] = f.image
        idx = [k for k, f in enumerate(frames) if f.points is not None]
        if idx:
            params = motion.params[idx]
            self.drawer.draw([frames[k] for k in idx], face.calibration.target(params), params, [out[k] for k in idx])
        return VideoFrames(torch.from_numpy(out), motion.fps, motion.first_frame)
