"""Video faces in a show: a real talking video of the person, re-lip-synced to its lines.

The face is `dub`'s live video face (``dubbing.videoface.VideoFace``): the footage decoded once
into a temporary file (RAM stays flat whatever its length), tracked once (or replayed from a
track file), played back and forth from low-motion frames, the mouth redrawn from the person's
own frames. ``VideoFaceSource`` puts it behind the show's ``FaceSource`` seam:

    animate(segment, speech)  the portrait's motion model on the segment's speech: the speaker's
                              own phones while it speaks, silence (mouth closed and relaxed)
                              while it listens
    render(motion)            the footage at those times (output frame f at f / fps, whatever
                              the video's own rate), mouth redrawn, cropped to the face's square

The square: as for a portrait, centred on the face (its median place over the loop) with the eye
line at 42 % of its height, shifted to stay inside the picture; its side is the picture's
shorter side (a video is never padded or stretched; a face that is small in its picture stays
small). The video is decoded so that square comes out at the layout's face size (never upscaled
on decode; a smaller video is scaled up by the layout, keeping its aspect).

Head motion, blinks and gaze are the footage's own: the listener nods and gaze the show adds to
portraits do not apply (``own_head``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np

from ..errors import InputError, NoFaceError
from ..motion import MotionModel
from ..options import SayOptions
from ..types import FaceLandmarks, MotionFrames, Speech, VideoFrames

log = logging.getLogger(__name__)

__all__ = ["VideoFaceSource", "open_video_source", "track_beside", "TRACK_SUFFIX"]

TRACK_SUFFIX = ".track.npz"
"""A track file beside the video (``ana.mp4`` -> ``ana.track.npz``) is used without being named."""

LOST_FACE = 0.05
"""More than this fraction of the loop's frames without a face gets a warning (those frames pass
through with their own mouth)."""
SMALL_FACE = 0.25
"""A face narrower than this fraction of its square gets a warning (film the head and shoulders)."""


def track_beside(video: Path) -> Path | None:
    """The track file made for ``video`` by convention (``STEM.track.npz`` beside it), if any."""
    p = video.with_name(video.stem + TRACK_SUFFIX)
    return p if p.is_file() else None


class VideoFaceSource:
    """A VideoFace as a show's FaceSource (see the module docstring). ``size`` is the square
    (side, side); ``crop`` (x, y, side) its place in the decoded footage."""

    needs_speech = True
    own_head = True

    def __init__(self, face, options: SayOptions, name: str) -> None:
        self.face, self.name = face, name
        self.fps = options.fps
        self.motion = MotionModel(options.motion)
        self.renderer = face.renderer(options.fps, options.render)
        self.crop = face_square(face)
        side = self.crop[2]
        self.size = (side, side)

    def animate(self, segment, speech: Speech | None) -> MotionFrames:
        return self.motion.frames(speech)

    def render(self, drive: MotionFrames) -> VideoFrames:
        out = self.renderer.render(drive)
        x, y, s = self.crop
        return VideoFrames(out.frames[:, y:y + s, x:x + s].contiguous(), out.fps, out.first_frame)

    def close(self) -> None:
        self.face.close()


def face_square(face) -> tuple[int, int, int]:
    """(x, y, side) of the face's square in the decoded footage (see the module docstring)."""
    from ..face.frame import framing_origin

    W, H = face.size
    side = min(W, H) // 2 * 2
    pts = [face.points(j) for j in range(face.num_frames)]
    lost = sum(p is None for p in pts) / max(len(pts), 1)
    if lost > LOST_FACE:
        log.warning("%s: the face is lost in %.0f%% of the frames the show plays; there the video's own mouth shows "
                    "(not redrawn). Use a clip where the face stays in view.", face.name, 100 * lost)
    pts = np.stack([p for p in pts if p is not None])
    median = FaceLandmarks(np.median(pts, axis=0).astype(np.float32), (W, H))
    x0, y0 = framing_origin(median, side)
    x = int(round(min(max(x0, 0), W - side)))
    y = int(round(min(max(y0, 0), H - side)))
    fx0, _, fx1, _ = median.bbox
    if (fx1 - fx0) < SMALL_FACE * side:
        log.warning("%s: the face is small in the picture (%.0f%% of its square's width); a video face is not "
                    "zoomed: film the head and shoulders for a larger face", face.name, 100 * (fx1 - fx0) / side)
    return x, y, side


def decode_side(size: tuple[int, int], side: int) -> int | None:
    """The ``max_side`` to decode a ``size`` (W, H) video at so its shorter side comes out at
    ``side`` (None: the video is not larger than that; never upscaled on decode)."""
    w, h = size
    if min(w, h) <= side:
        return None
    return max(2, int(math.ceil(side * max(w, h) / min(w, h) / 2)) * 2)


def open_video_source(path: Path, options: SayOptions, side: int, *, track: Path | None = None,
                      loop_s: float = 30.0) -> VideoFaceSource:
    """The VideoFaceSource of the video at ``path`` for a ``side`` x ``side`` tile. ``track``: its
    track file (``facecast dub-track``), else ``STEM.track.npz`` beside it when present, else it
    is tracked here (mediapipe, once per process). ``loop_s``: seconds of the video played back
    and forth. InputError / NoFaceError say what is wrong (no picture, damaged, no face, a track
    of another video); nothing is left behind."""
    from ..dubbing.videoface import VideoFace, VideoFaceOptions

    probe = _open(path, None)
    src = _open(path, decode_side(probe.size, side))
    track = track if track is not None else track_beside(path)
    dub = dataclasses.replace(VideoFaceOptions().dub, render=options.render)
    try:
        face = VideoFace(src, face_index=options.face_index, options=VideoFaceOptions(loop_s=loop_s, dub=dub),
                         track=track)
    except NoFaceError:
        raise NoFaceError(f"{path}: no face found in any frame of the video. A video face needs the person's face "
                          "visible (frontal, at least ~64 pixels wide).") from None
    try:
        _check_decoded(src, face)
        return VideoFaceSource(face, options, str(path))
    except BaseException:
        face.close()
        raise


def _open(path: Path, max_side: int | None):
    from ..media import open_video

    try:
        return open_video(path, chunk_frames=8, max_side=max_side)
    except InputError as exc:
        if "audio only" in str(exc):
            raise InputError(f"{path}: is audio only (no picture). A face is a portrait image, a video of the person "
                             "or a twin; to play a recording as someone's speech write [audio: FILE] in their line."
                             ) from None
        raise


def _check_decoded(src, face) -> None:
    """A video that stops decoding before the part the show plays (cut off, damaged) is an error,
    not a frozen last frame."""
    du, n = src.decoded_until, face.num_frames
    if du is not None and n - du > max(3, 0.02 * n):
        raise InputError(f"{src.path}: the video is truncated or damaged: it decodes up to frame {du} of {n} "
                         f"({du / src.fps:.1f} s of {n / src.fps:.1f} s). Re-export or re-download it.")
