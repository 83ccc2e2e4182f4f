"""What a talking face is drawn over, behind one small interface: the seam `say`, `dub` and
the live side share.

    FaceSource.animate(segment, speech) -> the per-frame drive of the face (MotionFrames for a
                                           portrait's rig, MouthShapes for a twin)
    FaceSource.render(drive)            -> VideoFrames

Kinds:
    PortraitSource  a still portrait: the procedural mouth (MotionModel) over a landmark rig
                    (MeshRenderer; on CUDA replayed from CUDA graphs)
    TwinSource      a twin (.twin): its audio-to-mouth model over its background loop of real
                    footage (the person's head motion and blinks)
    (tracked footage, a per-frame base image and landmarks, arrives with `dub`)

``open_face`` decides the kind from what the input is (content, not its name).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol, Union, runtime_checkable

import numpy as np

from .motion import MotionModel
from .options import SayOptions
from .segments import Segment
from .timing import Timings
from .types import MotionFrames, MouthShapes, Portrait, Speech, VideoFrames

log = logging.getLogger(__name__)

FaceInput = Union[str, Path, np.ndarray, Portrait, "FaceSource"]
"""A portrait image (path or RGB array), a prepared Portrait, a .twin file, or a ready FaceSource."""


@runtime_checkable
class FaceSource(Protocol):
    """A face that speaks: animated from each segment's speech, rendered frame by frame.

    name: the input it came from (for messages).  size: output (width, height) in pixels.
    needs_speech: True when ``animate`` reads the segment's Speech (phones, loudness, voicing);
        False when it listens to the segment's audio alone (``speech`` is then None and the
        alignment stage is skipped).
    """

    name: str
    size: tuple[int, int]
    needs_speech: bool

    def animate(self, segment: Segment, speech: Speech | None) -> MotionFrames | MouthShapes:
        ...

    def render(self, drive) -> VideoFrames:
        ...


def prepare_portrait(portrait: str | Path | np.ndarray | Portrait, options: SayOptions) -> Portrait:
    """Image path / array -> framed Portrait (landmarks in output pixels), turned upright when
    the face is on its side or upside down (said in its notes). Raises InputError when there is
    no usable face, or its mouth is covered."""
    if isinstance(portrait, Portrait):
        return portrait
    from . import face

    image = face.load_image(portrait)
    source = str(portrait) if not isinstance(portrait, np.ndarray) else "<array>"
    landmarks = face.find_face(image, source=source, face_index=options.face_index)
    face.check_mouth_visible(image, landmarks, source=source)
    return face.frame_portrait(image, landmarks, size=options.size, source=source)


def make_renderer(portrait: Portrait, options: SayOptions):
    """MeshRenderer; on CUDA the same warp replayed from CUDA graphs (render.GraphedRenderer),
    which frees the host (and the GIL) for the encoders."""
    from .device import resolve_device
    from .render import MeshRenderer

    ro = options.render
    if resolve_device(ro.device).type == "cuda" and ro.mouth_interior and ro.backend in ("auto", "torch"):
        from .render import GraphedRenderer

        return GraphedRenderer(portrait, ro)
    return MeshRenderer(portrait, ro)


class PortraitSource:
    """A still portrait, animated by the procedural motion model and drawn by the rig.

    ``renderer`` is any object with ``render(MotionFrames) -> VideoFrames`` (the bench wraps it
    to time the render with CUDA events)."""

    needs_speech = True

    def __init__(self, portrait: Portrait, options: SayOptions, renderer=None) -> None:
        self.portrait = portrait
        self.name = portrait.source
        self.size = (int(portrait.image.shape[1]), int(portrait.image.shape[0]))
        self.renderer = renderer if renderer is not None else make_renderer(portrait, options)
        self.motion = MotionModel(options.motion)

    def animate(self, segment: Segment, speech: Speech | None) -> MotionFrames:
        return self.motion.frames(speech)

    def render(self, drive: MotionFrames) -> VideoFrames:
        return self.renderer.render(drive)


class TwinSource:
    """A twin: its mouth model listens to the audio, its renderer redraws the lower face of its
    background loop (played back and forth) for those mouth shapes."""

    needs_speech = False

    def __init__(self, twin, fps: float, name: str = "") -> None:
        from .twin.generate import MouthStream

        self.twin = twin
        self.name = name or f"twin {twin.sha256[:12]}"
        self.size = tuple(twin.size)
        self.mouths = MouthStream(twin, fps)

    def animate(self, segment: Segment, speech: Speech | None) -> MouthShapes:
        self.mouths.push(segment.start, segment.analysis)
        points = self.mouths.frames(segment.first_frame, segment.num_frames)
        return MouthShapes(points, self.mouths.fps, segment.first_frame)

    def render(self, drive: MouthShapes) -> VideoFrames:
        return self.twin.render(drive.points, drive.first_frame, drive.fps)


def is_twin_input(face) -> bool:
    """Whether ``face`` is a twin, by what it is, not its name: a loaded Twin, or a safetensors
    file (a twin, or one the twin loader then says is not a facecast twin). An image named
    .twin is an image, a twin renamed .png is a twin."""
    if isinstance(face, (str, os.PathLike)):
        from .twin.file import safetensors_metadata

        return safetensors_metadata(face) is not None
    if isinstance(face, (np.ndarray, Portrait)) or isinstance(face, FaceSource):
        return False
    from .twin.generate import Twin

    return isinstance(face, Twin)


def is_video_input(face) -> bool:
    """Whether ``face`` is a video of the person for the live side (a prepared
    dubbing.videoface.VideoFace, or a file whose content is moving pictures or sound), by what it
    is, not its name: an image (whatever its name) and a twin are not. Audio-only files count, so
    that they get the video face's message (a face needs a picture) rather than an image error."""
    if isinstance(face, (str, os.PathLike)):
        if not os.path.isfile(face) or is_twin_input(face):
            return False
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(face):
                return False  # an image (any name)
        except (UnidentifiedImageError, OSError, ValueError):
            pass
        import av

        try:
            with av.open(str(face)) as c:
                return bool(c.streams.video or c.streams.audio)
        except (av.error.FFmpegError, OSError, ValueError):
            return False
    if isinstance(face, (np.ndarray, Portrait)) or isinstance(face, FaceSource):
        return False
    from .dubbing.videoface import VideoFace

    return isinstance(face, VideoFace)


def load_twin_input(face, device: str = "cpu", size: int | None = 512):
    """The Twin of a twin input (``is_twin_input``): itself when loaded, else the file loaded on
    ``device`` with its longer side ``size`` (InputError from the loader for a foreign file)."""
    from .device import resolve_device
    from .twin.generate import Twin

    return face if isinstance(face, Twin) else Twin.load(face, device=resolve_device(device), size=size)


def face_needs_speech(face: FaceInput) -> bool:
    """``FaceSource.needs_speech`` of what ``open_face(face)`` gives, known without opening it."""
    if isinstance(face, FaceSource):
        return face.needs_speech
    return not is_twin_input(face)


def open_face(face: FaceInput, options: SayOptions, timings: Timings | None = None) -> FaceSource:
    """The FaceSource for ``face``: a ready source as is; a twin (``is_twin_input``: by content,
    whatever the file's name) as a TwinSource on ``options.render.device``; anything else as a
    portrait image.
    Time goes to ``timings`` as "face" (finding and framing the face) and "setup" (models)."""
    timings = timings if timings is not None else Timings()
    if isinstance(face, FaceSource):
        return face
    if is_twin_input(face):
        with timings.stage("setup"):
            twin = load_twin_input(face, options.render.device, options.size)
        return TwinSource(twin, options.fps, name=str(face) if isinstance(face, (str, os.PathLike)) else "")
    with timings.stage("face"):
        portrait = prepare_portrait(face, options)
        for note in portrait.notes:
            log.warning("%s: %s", portrait.source, note)
    with timings.stage("setup"):
        return PortraitSource(portrait, options)
