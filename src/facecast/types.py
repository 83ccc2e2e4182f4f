"""Typed chunks that cross stage boundaries.

Every chunk carries its units explicitly: audio carries ``sample_rate`` and a start time in
seconds, per-frame data carries ``fps`` and the index of its first frame on the global frame grid
(frame ``i`` is shown at ``i / fps`` seconds). Stages never pass bare arrays to each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # only in annotations: importing the types does not load torch (span workers)
    import torch

from facecast.landmarks import LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS

ANALYSIS_RATE = 16_000
"""Hz of the mono analysis audio every speech stage reads (alignment, loudness, VAD, mouth models)."""


@dataclass(frozen=True)
class AudioChunk:
    """A run of PCM audio.

    samples: float32 [channels, n] in [-1, 1].
    sample_rate: Hz.  start: seconds on the job's timeline of the first sample.
    """

    samples: np.ndarray
    sample_rate: int
    start: float = 0.0

    def __post_init__(self) -> None:
        if self.samples.ndim != 2:
            raise ValueError(f"AudioChunk.samples must be [channels, n], got {self.samples.shape}")

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    @property
    def end(self) -> float:
        return self.start + self.duration

    def mono(self) -> np.ndarray:
        """float32 [n]: the channel mean."""
        return self.samples.mean(axis=0, dtype=np.float32)


@dataclass(frozen=True)
class PhoneSpan:
    """One phone on the timeline. ``phone`` is an ARPAbet symbol without stress digits
    (``AA``, ``M``, ``F`` ...) or ``SIL`` for silence/pause.  start/end: seconds."""

    phone: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Speech:
    """A stretch of speech for the motion stage: its phone timeline and per-frame loudness.

    phones: PhoneSpans in absolute seconds, sorted, covering [start, end) (gaps are silence).
    energy: float32 [num_frames] speech loudness envelope in [0, 1] sampled on the frame grid
        starting at ``first_frame`` (0 = silence, 1 = loud speech).
    voiced: bool [num_frames] speech/silence map on the same grid (VAD).
    alt_phones: a second, independent phone timeline of the same audio (recognised English words
        force-aligned, ``Aligner.align_words``), or () when there is none. The mouth is then the
        mean of the mouths the two timelines give: where they agree it moves fully, where they
        disagree it moves less (``facecast eval`` on the 10 real clips, with the jaw contrast of
        ``motion._JAW_SPREAD``: mean aperture r 0.230 -> 0.256; docs/quality.md, issue #3).
    pitch: float32 [num_frames] voice pitch in semitones above 100 Hz, NaN where there is none
        (`analysis.pitch_track`), or None when not measured (the brows and nods then follow
        loudness and phone lengths alone).
    heard_frames: frames [first_frame, first_frame + heard_frames) lie inside the audio received
        so far; the rest (the end of a live stream's window, past the audio that has arrived)
        are not heard yet: their energy is a placeholder, not silence. None = all of them
        (offline jobs, and a live stream whose input ended).
    """

    phones: tuple[PhoneSpan, ...]
    energy: np.ndarray
    voiced: np.ndarray
    fps: float
    first_frame: int
    alt_phones: tuple[PhoneSpan, ...] = ()
    pitch: np.ndarray | None = None
    heard_frames: int | None = None

    @property
    def num_frames(self) -> int:
        return int(self.energy.shape[0])

    @property
    def num_heard(self) -> int:
        """How many frames from the first lie inside the audio received (``heard_frames``)."""
        n = self.num_frames
        return n if self.heard_frames is None else min(max(int(self.heard_frames), 0), n)


@dataclass(frozen=True)
class MouthShapes:
    """A twin's mouth, frame by frame: what its audio-to-mouth model gives its renderer.

    points: float32 [n, 53, 2] mouth landmarks in the twin's mouth-crop units (0..1).
    fps: frames per second.  first_frame: global index of row 0 (shown at first_frame / fps s).
    """

    points: np.ndarray
    fps: float
    first_frame: int

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])


# Names of the columns of MotionFrames.params, in order. Units are in the comments.
MOTION_PARAMS: tuple[str, ...] = (
    "jaw_open",      # 0..1, 1 = wide open "aa" (about 0.35 inter-ocular distances of chin travel)
    "lip_spread",    # -1..1, + = corners pulled out ("ee"), - = corners pulled in
    "lip_round",     # 0..1, rounding/protrusion ("oo", "w")
    "lip_close",     # 0..1, lips pressed together regardless of jaw (p/b/m)
    "labiodental",   # 0..1, lower lip tucked under the upper teeth (f/v)
    "upper_lip",     # 0..1, upper lip raised (shows upper teeth)
    "blink",         # 0..1, 1 = eyelids closed
    "head_yaw",      # radians, + = turn to the subject's left
    "head_pitch",    # radians, + = nod down
    "head_roll",     # radians, + = tilt clockwise in the image
    "smile",         # -1..1, + = mouth corners up and out, cheeks up (smile), - = corners down (sad)
    "brow_raise",    # -1..1, + = brows up (surprise, emphasis), - = brows down and together (frown)
    "brow_inner",    # -1..1, + = inner ends of the brows up (sad, worried), - = down
)
MOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(MOTION_PARAMS)}


@dataclass(frozen=True)
class MotionFrames:
    """Per-frame animation parameters.

    params: float32 [n, len(MOTION_PARAMS)].  fps: frames per second.
    first_frame: global index of row 0 (row k is shown at (first_frame + k) / fps seconds).
    """

    params: np.ndarray
    fps: float
    first_frame: int

    def __post_init__(self) -> None:
        if self.params.ndim != 2 or self.params.shape[1] != len(MOTION_PARAMS):
            raise ValueError(f"MotionFrames.params must be [n, {len(MOTION_PARAMS)}], got {self.params.shape}")

    @property
    def num_frames(self) -> int:
        return int(self.params.shape[0])

    def column(self, name: str) -> np.ndarray:
        return self.params[:, MOTION_INDEX[name]]


@dataclass(frozen=True)
class VideoFrames:
    """Rendered frames.

    frames: uint8 tensor [n, H, W, 3] RGB, on any device.  fps: frames per second.
    first_frame: global index of frames[0] (its pts in 1/fps units).
    """

    frames: torch.Tensor
    fps: float
    first_frame: int

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def pts_seconds(self) -> np.ndarray:
        return (self.first_frame + np.arange(self.num_frames)) / self.fps


@dataclass(frozen=True)
class I420Frames:
    """Frames as planar YUV 4:2:0, BT.601 limited range: what H.264 encodes.

    data: uint8 tensor [n, H * 3 // 2, W] on any device, each frame laid out as FFmpeg's
        ``yuv420p`` (rows 0..H-1 the luma plane, then U and V, each H/2 x W/2 packed into H/4
        rows of W). Made by ``encode.to_i420`` on the device that rendered the frames, so the
        host receives half the bytes of RGB and the encoders skip their colour conversion.
    fps, first_frame: as in VideoFrames.
    """

    data: torch.Tensor
    fps: float
    first_frame: int

    @property
    def num_frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the picture."""
        return int(self.data.shape[2]), int(self.data.shape[1]) * 2 // 3


@dataclass(frozen=True)
class FaceLandmarks:
    """Landmarks of one face in one image.

    points: float32 [478, 3] mediapipe face-mesh landmarks in pixels of the image they were
        found in (x right, y down, z depth in the same pixel scale, smaller = nearer).
    image_size: (width, height) of that image.
    """

    points: np.ndarray
    image_size: tuple[int, int]

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in pixels."""
        xy = self.points[:, :2]
        return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())

    @property
    def interocular(self) -> float:
        """Distance between the eye centres in pixels (outer+inner corner means)."""
        right = self.points[list(RIGHT_EYE_CORNERS), :2].mean(axis=0)
        left = self.points[list(LEFT_EYE_CORNERS), :2].mean(axis=0)
        return float(np.linalg.norm(left - right))


@dataclass(frozen=True)
class Portrait:
    """A portrait prepared for rendering: the framed RGB image and the face in it.

    image: uint8 [H, W, 3] RGB at the output size.  face: landmarks in that image's pixels.
    source: where it came from (for error messages).
    """

    image: np.ndarray
    face: FaceLandmarks
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
