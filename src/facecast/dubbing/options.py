"""DubOptions: everything `dub` needs besides the video and the new speech (each field with its
unit and range, checked on construction like the core options in facecast.options)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..options import Choice, EncodeOptions, MotionOptions, Range, RenderOptions, SayOptions, check_type, check_ranges


AUTO_DRAW_THREADS = 4
"""Most draw threads ``draw_workers=0`` picks. On the 16-core H100 box 4 threads drew and
decoded 1080p at 75 frames/s against 62 with 15, and dubbed end to end at RTF 0.29 against
0.38 (docs/benchmarks.md): more threads only compete with the decoder and the encoders."""


SPAN_MIN_CORES = 8
"""Cores from which ``processes=0`` draws in spans of worker processes (below, one process with
its draw threads is as fast: the span workers' own decoders and encoders need cores)."""
AUTO_PROCESSES = 15
"""Most span workers ``processes=0`` starts."""


def usable_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class DubOptions:
    """Everything `dub` needs besides the video and the new speech. The output keeps the video's
    frame rate and size; only the lower face changes.

    face_index: which face to dub when the video shows several, 0-based from the left (as seen
        at the first frame with faces); None = the largest, with a warning when there are several.
    keep_length: when the speech is shorter than the video, keep the rest of the video with a
        relaxed closed mouth (False: the output ends with the speech).
    mouth: "auto" (the person's own mouths from this video when it shows enough of them, else
        the mesh), "footage" (always the video's own mouths) or "mesh" (the portrait renderer's
        warp with its painted mouth interior). docs/quality.md says which runs when.
    calibrate: fit this speaker's opening range, lip width and mouth-to-sound timing from the
        video's own speech (when it has a sound track with speech in the scanned part).
    mouth_model: what says how open the mouth is: "auto" (this speaker's own mouth model,
        learned in closed form from the video's own speech in the scanned part: a ridge
        regression of the lip gap and width on the sound, the recognised phones and the
        phone-driven model's mouth, when the video has >= 10 s of speech and the model beats the
        calibrated phones on held-out folds of it; else the phones), "learned" (that model
        whenever it can be fitted, even where it did not win) or "phones" (the calibrated
        phone-driven model only). Learning takes ~1 s of CPU (needs calibrate). docs/quality.md
        says which runs when.
    scan_s: seconds of the video scanned before dubbing starts (at most 10 s past the job's
        length), for the mouth library, the calibration and the learned mouth (which read its
        sound: up to 60 s of it), 0 ... 600; the library keeps growing from the rest of the
        video as it plays. Scanned frames are decoded twice (~4 ms per 720p frame).
    library_size: most mouth pictures kept from the video, 16 ... 4000 (memory: ~0.1 MB each at
        720p, capped by ``library_mb``).
    library_mb: most memory the mouth library takes, MiB, 16 ... 4096.
    mask_grow: how far the lower-face mask reaches beyond the lips, jaw and chin, in
        inter-ocular distances (IOD), 0.02 ... 0.5.
    feather: width of the mask's soft edge, IOD, 0.01 ... 0.3.
    loop_max_s: speech longer than the video: the video's last seconds, at most this many, play
        back and forth between low-motion frames, 1 ... 120 (frames kept in a temporary file).
    max_gap_s: tracking gaps up to this long are interpolated (and dubbed); longer stretches
        without the face pass through untouched, 0 ... 2 seconds.
    segment_max_s: longest stretch of speech analysed at once, 1 ... 30 seconds.
    chunk_frames: most frames rendered and handed to the encoder at once, 1 ... 250 (fewer on
        large frames: a chunk stays under ~100 MB).
    workers: phone-recognition worker processes, 0 ... 64 (as SayOptions.workers). 1 (the CLI's
        default) recognises the new speech and the video's own in parallel with decoding,
        tracking and drawing, which on 2 cores takes the recognition off the main thread's
        critical path; 0 here, because worker processes are spawned, which needs the calling
        script to guard its entry point (``if __name__ == "__main__":``).
    draw_workers: threads that draw the mouths (and convert the decoded frames to RGB),
        0 ... 64; 0 = auto: the usable cores minus one where there are more than 2, at most
        AUTO_DRAW_THREADS (4), else 1 (on 2 cores the encoder's thread already takes the
        second). Only the pixel work of each frame fans out (placing, colour-matching and
        blending the mouth; the frame copy); which mouth each frame shows, the loop and the tracking stay sequential, so the frames are the same
        for any number.
    processes: worker processes that decode, draw and encode spans of the video (spans.py),
        0 ... 64; 0 = auto: the usable cores minus one (at most AUTO_PROCESSES) where there
        are at least SPAN_MIN_CORES, else 1 (this process draws). Spans need a face track
        (``track=``) and 8-bit yuv420p video the speech does not outlast; otherwise the job
        draws here and its report says why.
    words: as SayOptions (the recognised-word timeline: better lip sync, ~4x the recognition CPU).
    motion: the mouth's motion model (head motion and blinks come from the footage: their
        settings are ignored). render: device and backend of the mesh path.
    encode: H.264 settings; crf 18 by default so that outside the mouth the output stays within
        encoding noise of the input (PSNR >= 40 dB).
    """

    face_index: int | None = None
    keep_length: bool = False
    mouth: str = "auto"
    calibrate: bool = True
    mouth_model: str = "auto"
    scan_s: float = 30.0
    library_size: int = 600
    library_mb: float = 192.0
    mask_grow: float = 0.12
    feather: float = 0.08
    loop_max_s: float = 12.0
    max_gap_s: float = 0.25
    segment_max_s: float = 4.0
    chunk_frames: int = 25
    workers: int = 0
    draw_workers: int = 0
    processes: int = 0
    words: bool = True
    motion: MotionOptions = MotionOptions()
    render: RenderOptions = RenderOptions()
    encode: EncodeOptions = EncodeOptions(crf=18)

    RANGES: ClassVar[dict] = {
        "face_index": Range(0, 99, integer=True, optional=True),
        "mouth": Choice(("auto", "footage", "mesh")),
        "mouth_model": Choice(("auto", "learned", "phones")),
        "scan_s": Range(0, 600, "s"),
        "library_size": Range(16, 4000, "mouth pictures", integer=True),
        "library_mb": Range(16, 4096, "MiB"),
        "mask_grow": Range(0.02, 0.5, "IOD"),
        "feather": Range(0.01, 0.3, "IOD"),
        "loop_max_s": Range(1, 120, "s"),
        "max_gap_s": Range(0, 2, "s"),
        "segment_max_s": Range(1, 30, "s"),
        "chunk_frames": Range(1, 250, "frames", integer=True),
        "workers": Range(0, 64, integer=True),
        "draw_workers": Range(0, 64, "threads", integer=True),
        "processes": Range(0, 64, "processes", integer=True),
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        check_type(self, "motion", MotionOptions)
        check_type(self, "render", RenderOptions)
        check_type(self, "encode", EncodeOptions)

    def draw_threads(self) -> int:
        """``draw_workers`` resolved: auto (0) is the usable cores minus one where there are more
        than 2 (at most AUTO_DRAW_THREADS), else 1."""
        if self.draw_workers:
            return self.draw_workers
        cores = usable_cores()
        return min(cores - 1, AUTO_DRAW_THREADS) if cores > 2 else 1

    def process_count(self) -> int:
        """``processes`` resolved (see the field)."""
        if self.processes:
            return self.processes
        cores = usable_cores()
        return min(cores - 1, AUTO_PROCESSES) if cores >= SPAN_MIN_CORES else 1

    def say_options(self, fps: float) -> SayOptions:
        """The SayOptions of the stages dub shares with `say` (segments, speech analysis, motion,
        encoder), at the video's frame rate."""
        return SayOptions(size=None, fps=fps, face_index=self.face_index, segment_max_s=self.segment_max_s,
                          first_segment_s=min(2.0, self.segment_max_s), workers=self.workers, words=self.words,
                          motion=self.motion, render=self.render, encode=self.encode)
