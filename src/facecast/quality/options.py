"""Options of `facecast eval` and `facecast bench`: frozen dataclasses, validated on construction
(InputError naming the CLI flag and what it accepts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..dubbing.options import DubOptions
from ..options import MotionOptions, Range, SayOptions

__all__ = ["EvalOptions", "BenchOptions", "EVAL_MODES", "EVAL_BASELINES"]

EVAL_MODES: tuple[str, ...] = ("photo", "twin", "dub")
"""How a clip becomes a task; clips.MODES maps each name to its clip preparation."""
EVAL_BASELINES: tuple[str, ...] = ("real", "still", "loudness")
"""Reference rows besides facecast; rows.GENERATORS holds a generator for each (and facecast)."""


@dataclass(frozen=True)
class EvalOptions:
    """How `facecast eval` runs.

    mode: how a clip is turned into a task, one of EVAL_MODES ("photo": one frame of the clip is
        the portrait; "twin": a .twin file speaks the clip's sound).
    size: longer side of the evaluation frames in pixels, even, 64 ... 4096 (the clip is
        downscaled to it, never upscaled); None = the clip's own size, at most 1024.
    max_seconds: evaluate only the first seconds of each clip, > 0 ... 36000 (None = all of it).
    plot_dir: where to write PNG plots (aperture over time, contact sheet); None = no plots.
    baselines: the reference rows besides facecast, any of EVAL_BASELINES ("real", "still",
        "loudness").
    identity: compute the dlib identity distance (skipped with a note when dlib is missing).
    motion: the MotionOptions of the facecast row (the loudness row uses them with
        drive="loudness").
    device: render device for the generated rows ("cpu", "cuda", "cuda:N", "auto").
    twin: the .twin file of mode "twin" (its row replaces facecast's portrait row; the
        baselines still animate a frame of the clip); required by that mode, refused by others.
    start_fraction: evaluate from this fraction of each clip on, in [0, 1) (e.g. 0.8: the last
        20 %, the part a twin was trained without).
    dub: the DubOptions of mode "dub" (the video of one clip dubbed with the sound of another:
        quality.dub_eval).
    """

    mode: str = "photo"
    size: int | None = None
    max_seconds: float | None = None
    plot_dir: Path | None = None
    baselines: tuple[str, ...] = ("real", "still", "loudness")
    identity: bool = True
    motion: MotionOptions = MotionOptions()
    device: str = "cpu"
    twin: Path | None = None
    start_fraction: float = 0.0
    dub: DubOptions = DubOptions()

    def __post_init__(self) -> None:
        if self.mode not in EVAL_MODES:
            raise InputError(f"--mode {self.mode}: unknown mode. Use one of: {', '.join(EVAL_MODES)}.")
        if self.mode == "twin" and self.twin is None:
            raise InputError("--mode twin needs --twin FILE.twin (made by `facecast twin train`).")
        if self.twin is not None and self.mode != "twin":
            raise InputError("--twin goes with --mode twin.")
        if not 0.0 <= self.start_fraction < 1.0:
            raise InputError(f"--start-fraction {self.start_fraction}: must be in [0, 1).")
        bad = [b for b in self.baselines if b not in EVAL_BASELINES]
        if bad:
            raise InputError(f"--baselines {','.join(bad)}: unknown baseline. Use any of: real, still, loudness.")
        if self.size is not None and (self.size < 64 or self.size % 2):
            raise InputError(f"--size {self.size}: must be an even number of pixels >= 64.")
        SayOptions.RANGES["size"].check("--size", self.size)
        Range(0, 36000, "s", lo_open=True, optional=True).check("--max-seconds", self.max_seconds)


@dataclass(frozen=True)
class BenchOptions:
    """What `facecast bench` measures.

    durations: input lengths in seconds, each > 0 ... 7200 (5, 60, 600 are the documented scales).
    sizes: output sizes in pixels, each even, 64 ... 4096.
    device: render device ("cpu", "cuda", "cuda:N").
    repeats: runs for the time-to-first-chunk percentiles (after one warm-up run), 1 ... 1000.
    speech: speech file looped to each duration; None = BENCH_TEXT spoken by the bundled Piper
        voice (the documented numbers used the 60 s English recording speech60s_en.wav of the
        project's test media, passed as --speech).
    portrait: image path (None = scikit-image's astronaut photo, which ships with the package).
    source: "audio" (speech looped to each duration) or "text" (Piper TTS of a repeated
        paragraph, the "voice" stage timed too).
    fps: output frame rate, frames per second (SayOptions.fps: 1 ... 120).
    sample_interval_s: RSS sampling period, seconds (> 0 ... 60).
    workers: SayOptions.workers, 0 ... 64 (phone-recognition processes; their RSS is included in
        the sampled RSS, not in the VmHWM peak of the main process).
    encoders: EncodeOptions.workers, 1 ... 64 (parallel H.264 encoder threads).
    words: SayOptions.words (word recognition for a second phone timeline).
    batch_frames: RenderOptions.batch_frames, frames per render launch (1 ... 1000; None = the
        renderer's default).
    """

    durations: tuple[float, ...] = (5.0,)
    sizes: tuple[int, ...] = (512,)
    device: str = "cpu"
    repeats: int = 5
    speech: Path | None = None
    portrait: str | None = None
    source: str = "audio"
    fps: float = 25.0
    sample_interval_s: float = 0.5
    workers: int = 0
    encoders: int = 1
    words: bool = True
    batch_frames: int | None = None

    def __post_init__(self) -> None:
        if not self.durations or any(not d > 0 for d in self.durations):
            raise InputError(f"--durations {self.durations}: give positive seconds, e.g. 5,60,600.")
        if not self.sizes or any(s < 64 or s % 2 for s in self.sizes):
            raise InputError(f"--sizes {self.sizes}: even pixel sizes >= 64, e.g. 256,512,1024.")
        if self.source not in ("audio", "text"):
            raise InputError(f"--source {self.source}: use audio or text.")
        if self.repeats < 1:
            raise InputError(f"--repeats {self.repeats}: at least 1.")
        if self.encoders < 1:
            raise InputError(f"--encoders {self.encoders}: at least 1.")
        for d in self.durations:
            Range(0, 7200, "s", lo_open=True).check("--durations", d)
        for size in self.sizes:
            SayOptions.RANGES["size"].check("--sizes", size)
        Range(1, 1000, integer=True).check("--repeats", self.repeats)
        Range(1, 64, integer=True).check("--encoders", self.encoders)
        SayOptions.RANGES["workers"].check("--workers", self.workers)
        SayOptions.RANGES["fps"].check("BenchOptions.fps", self.fps)
        Range(0, 60, "s", lo_open=True).check("BenchOptions.sample_interval_s", self.sample_interval_s)
        Range(1, 1000, "frames", integer=True, optional=True).check("BenchOptions.batch_frames", self.batch_frames)
