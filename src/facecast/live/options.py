"""Options of the live side: the check of StreamOptions (defined in facecast.options with the
other per-job options), the Engine's and the load test's."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..options import StreamOptions

__all__ = ["MAX_LOOKAHEAD_S", "EngineOptions", "LoadTestOptions", "check_options"]

MAX_LOOKAHEAD_S = 0.2


def check_options(options: StreamOptions) -> StreamOptions:
    """ValueError naming the field unless ``options`` make sense."""
    from ..media import AAC_SAMPLE_RATES

    if not isinstance(options, StreamOptions):
        raise TypeError(f"options must be a StreamOptions, got {type(options).__name__}")
    if not (0.0 <= options.lookahead_s <= MAX_LOOKAHEAD_S):
        raise ValueError(f"StreamOptions.lookahead_s must be within 0 ... {MAX_LOOKAHEAD_S} s, got {options.lookahead_s}")
    if not (options.fps > 0 and math.isfinite(options.fps)):
        raise ValueError(f"StreamOptions.fps must be > 0, got {options.fps}")
    if options.size is not None and (options.size < 16 or options.size % 2):
        raise ValueError(f"StreamOptions.size must be an even number >= 16 (or None), got {options.size}")
    for name in ("max_lead_s", "jitter_s", "interrupt_fade_s"):
        if getattr(options, name) < 0:
            raise ValueError(f"StreamOptions.{name} must be >= 0, got {getattr(options, name)}")
    if options.max_buffer_s <= 0 or options.max_utterance_s < 1.0:
        raise ValueError("StreamOptions.max_buffer_s must be > 0 and max_utterance_s >= 1 s")
    if options.chunk_frames < 1 or options.fragment_frames < 1:
        raise ValueError("StreamOptions.chunk_frames and fragment_frames must be >= 1")
    if options.audio_rate not in AAC_SAMPLE_RATES:
        raise ValueError(f"StreamOptions.audio_rate must be an AAC rate {AAC_SAMPLE_RATES}, got {options.audio_rate}")
    if options.audio_channels not in (1, 2):
        raise ValueError(f"StreamOptions.audio_channels must be 1 or 2, got {options.audio_channels}")
    if not 0 <= options.preview_jpeg <= 100:
        raise ValueError(f"StreamOptions.preview_jpeg must be 0 (off) or a JPEG quality 1 ... 100, "
                         f"got {options.preview_jpeg}")
    lead = float(getattr(options.motion, "lead_s", 0.0))
    if options.lookahead_s < lead:
        raise ValueError(f"StreamOptions.lookahead_s ({options.lookahead_s} s) must be at least MotionOptions.lead_s "
                         f"({lead} s): the mouth shows the speech lead_s ahead of the frame")
    if options.motion.drive not in ("phones", "loudness"):
        raise ValueError(f"MotionOptions.drive must be 'phones' or 'loudness', got {options.motion.drive!r}")
    return options


@dataclass(frozen=True)
class EngineOptions:
    """A long-lived multi-stream Engine (live.engine).

    size: frame width = height of every stream (portraits are framed at it; a twin is loaded with
        its longer side at it). device, dtype: where and in what precision the batched renderer
        samples images (float16 / bfloat16 apply on CUDA only).
    workers: motion worker processes for portrait sessions (pocketsphinx holds the GIL, so live
        phones for many streams need processes); 0 = in this process. Twin sessions always run
        in this process (their mouth model is a few small convolutions, ~1-2 ms per update).
    encoders: fMP4 encoder processes (stream s on process s % encoders); 0 = none (then no
        session may ask for ``StreamOptions.fmp4``).
    max_batch: most frames per render launch (bounds memory when work piles up).
    tick_s: on CUDA the scheduler gathers ready work for this long after the first item before
        one launch (a launch costs ~10 ms however few frames it has, so batching across streams
        is what lets one GPU serve many).
    i420: hand frames to the encoders as yuv420p converted where they were rendered (None: on
        CUDA only, when size % 4 == 0; on a CPU swscale inside the encoder is faster).
    threads: torch CPU threads of this process while the engine runs (the other cores belong to
        the motion workers and encoders).
    frames: chunks carry the rendered frames (False: frame count and pts only, [n, 0, 0, 3];
        frames are then not kept in this process while they are encoded).
    max_inflight: most launches waiting for the encoders (back-pressure: the backlog then waits
        upstream as motion parameters, ~13 KB per 5 frames instead of ~2 MB of pixels).
    """

    size: int = 512
    device: str = "cpu"
    dtype: str = "float16"
    workers: int = 1
    encoders: int = 2
    max_batch: int = 256
    tick_s: float = 0.025
    i420: bool | None = None
    threads: int = 1
    frames: bool = True
    max_inflight: int = 8

    def __post_init__(self) -> None:
        if self.size < 16 or self.size % 2:
            raise ValueError(f"EngineOptions.size must be an even number >= 16, got {self.size}")
        for name in ("workers", "encoders"):
            if getattr(self, name) < 0:
                raise ValueError(f"EngineOptions.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_batch", "threads", "max_inflight"):
            if getattr(self, name) < 1:
                raise ValueError(f"EngineOptions.{name} must be >= 1, got {getattr(self, name)}")
        if self.tick_s < 0:
            raise ValueError(f"EngineOptions.tick_s must be >= 0, got {self.tick_s}")


@dataclass(frozen=True)
class LoadTestOptions:
    """N simulated clients feeding an Engine real speech in real time (live.loadtest).

    streams: simulated clients. seconds: how long each talks. fps, lookahead_s: each portrait
        stream's (a twin's look-ahead is its mouth model's). chunk_s: client audio chunk length.
    budget_s: a frame is late when delivered later than its audio time + the stream's look-ahead
        + budget_s.
    fmp4: H.264/fMP4 per stream (libx264 ``preset``), else frames are only rendered and fetched.
    stagger_s: clients start at random times within this many seconds.
    speed: the clients' clock runs this many times faster than the wall clock (1 = real time);
        for hour-long memory runs in minutes. Latencies are then in wall seconds of the faster
        clock and say nothing about real-time delivery.
    memory_every_s: sample RSS (this process and the engine's processes) and VRAM every this many
        wall seconds into ``result["memory"]`` (0 = off).
    engine: the Engine under test (its ``frames`` is turned off: the clients only count frames).
    """

    streams: int = 2
    seconds: float = 10.0
    fps: float = 25.0
    chunk_s: float = 0.02
    lookahead_s: float = 0.1
    budget_s: float = 0.15
    fmp4: bool = True
    preset: str = "ultrafast"
    stagger_s: float = 1.0
    speed: float = 1.0
    memory_every_s: float = 0.0
    verbose: bool = False
    engine: EngineOptions = EngineOptions()
