"""Options are frozen dataclasses built at the edge (CLI, server) and passed down unchanged."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MotionOptions:
    """How the face moves.

    lookahead_s: how far ahead of a frame the mouth may start forming the next phone
        (anticipatory coarticulation). Streaming has its own look-ahead
        (StreamOptions.lookahead_s), which bounds lead_s + this in live use.
    expressiveness: global gain on mouth movement (1 = natural, 0.5 = mumbly, 1.5 = emphatic).
    head_motion: gain on head motion (0 = still head).
    blinks_per_minute: mean blink rate. People blink ~17/min at rest and ~26/min while talking
        (Bentivoglio et al. 1997); the speakers of `facecast eval`'s real clips 25/min (median).
    seed: seeds blinks and idle motion, so a job is reproducible.
    drive: "phones" (visemes from the phone timeline, loudness as gain) or "loudness" (the jaw
        follows loudness alone: the baseline `facecast eval` compares against).
    lead_s: the mouth leads the sound by this much (real lips start moving ~100 ms before the
        acoustics; `facecast eval` measured our mouth 2-3 frames late without it).
    pause_jaw: jaw opening (before jaw_scale) held through pauses under 0.5 s between speech;
        real speakers keep their lips apart there (`facecast eval`: 23 % of their silent frames
        closed, ours 95 %).
    jaw_scale: jaw opening per unit of viseme target (0.65: real speakers open 0.08-0.14 IOD on
        open vowels, 1.0 opened 1.7-2.4x wider in `facecast eval`).
    """

    lookahead_s: float = 0.10
    expressiveness: float = 1.0
    head_motion: float = 1.0
    blinks_per_minute: float = 20.0
    seed: int = 0
    drive: str = "phones"
    lead_s: float = 0.08
    jaw_scale: float = 0.65
    pause_jaw: float = 0.15


@dataclass(frozen=True)
class RenderOptions:
    """How frames are drawn.

    device: "cpu", "cuda", "cuda:N" or "auto" (CUDA when it works, else CPU - stated in the log).
    batch_frames: frames rendered per batched launch; None = 25 on the CPU (memory) and 100 on
        CUDA, where each launch costs ~1 ms of host time: on the H100 box 100 instead of 25
        took the offline render from 0.032 to 0.019 s per audio second (docs/benchmarks.md).
    dtype: "float32" or "float16"/"bfloat16" (GPU only; CPU always runs float32).
    mouth_interior: draw teeth/tongue/cavity where the lips part.
    backend: "auto" (OpenCV remap on the CPU, torch grid_sample on CUDA), "torch" or "opencv".
    """

    device: str = "cpu"
    batch_frames: int | None = None
    dtype: str = "float32"
    mouth_interior: bool = True
    backend: str = "auto"


@dataclass(frozen=True)
class EncodeOptions:
    """H.264 + AAC output. crf: quality (lower = better, 18-28 sensible). preset: libx264 speed.

    workers: H.264 encoders running in parallel threads, each on its own ``segment_s`` seconds of
        video (every segment starts with a keyframe; the file is one ordinary stream). 1 = one
        encoder. Worth it where one encoder is the bottleneck: the GPU box's offline jobs
        (docs/benchmarks.md), not 2 cores that also render.
    """

    crf: int = 23
    preset: str = "veryfast"
    codec: str = "libx264"
    workers: int = 1
    segment_s: float = 2.0


@dataclass(frozen=True)
class SayOptions:
    """Everything `say` needs besides the inputs.

    size: output width = height in pixels (even), or None to keep the portrait's own framing.
    fps: output frame rate.
    face_index: which face to animate when the portrait has several (0-based, left to right);
        None = the largest.
    segment_max_s: longest stretch of audio processed at once; bounds memory whatever the
        input length (segments are cut at pauses where possible).
    first_segment_s: length of the first segment, kept short so the first frames leave early.
    workers: processes that recognise phones of upcoming segments in parallel (0 = inline);
        worth it on many-core machines (the GPU box), not on 2 cores.
    words: audio without a transcript also gets a second phone timeline from recognised English
        words (better lip sync, docs/quality.md; about 4x the alignment CPU: ~0.3 s instead of
        ~0.07 s per audio second on the dev box). False: phone recognition only.
    """

    size: int | None = 512
    fps: float = 25.0
    face_index: int | None = None
    segment_max_s: float = 12.0
    first_segment_s: float = 2.0
    workers: int = 0
    words: bool = True
    motion: MotionOptions = MotionOptions()
    render: RenderOptions = RenderOptions()
    encode: EncodeOptions = EncodeOptions()

    @property
    def word_timeline(self) -> bool:
        """Whether audio without a transcript also gets the recognised-word phone timeline."""
        return self.words and self.motion.drive == "phones"
