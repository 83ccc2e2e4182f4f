"""Options are frozen dataclasses built at the edge (CLI, server) and passed down unchanged.

Every numeric option has a documented range, checked when the dataclass is built (``RANGES`` on
each class, a ``Range`` or ``Choice`` per field): a value outside it raises ``OptionError`` (an
InputError and a ValueError) naming ``Class.field`` and the range, before any work starts. The
CLI rewords it with its flag name (``OptionError.for_flag``); the Python API and the server get
the same ranges.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import ClassVar

from .errors import OptionError

X264_PRESETS: tuple[str, ...] = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                                 "slower", "veryslow", "placebo")
"""libx264/libx265 speed presets, fastest first."""

MAX_SEED = 2**32 - 1


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric option: ``lo ... hi`` (ends included unless ``lo_open`` /
    ``hi_open``), whole numbers only when ``integer``, multiples of ``step`` when > 0 (2: even),
    None too when ``optional``. nan and inf are never allowed."""

    lo: float
    hi: float
    unit: str = ""
    integer: bool = False
    lo_open: bool = False
    hi_open: bool = False
    step: int = 0
    optional: bool = False

    def describe(self) -> str:
        """What is allowed, in words: "a number in 0 ... 3", "an even whole number in 64 ... 4096 pixels"."""
        kind = ("an even whole number" if self.step == 2 else f"a multiple of {self.step}" if self.step
                else "a whole number" if self.integer else "a number")
        lo = f"above {_num(self.lo)}" if self.lo_open else None
        hi = f"below {_num(self.hi)}" if self.hi_open else None
        if lo is None and hi is None:
            span = f"in {_num(self.lo)} ... {_num(self.hi)}"
        else:
            span = f"{lo or 'from ' + _num(self.lo)}, {hi or 'at most ' + _num(self.hi)}"
        return f"{kind} {span}" + (f" {self.unit}" if self.unit else "")

    def allows(self, value: object) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.integer and not isinstance(value, numbers.Integral):
            return False
        if not isinstance(value, numbers.Integral) and not math.isfinite(value):
            return False
        if (value <= self.lo) if self.lo_open else (value < self.lo):
            return False
        if (value >= self.hi) if self.hi_open else (value > self.hi):
            return False
        return not self.step or value % self.step == 0

    def check(self, option: str, value: object) -> None:
        """OptionError naming ``option`` unless ``value`` is allowed."""
        if not self.allows(value):
            raise OptionError(option, value, self.describe(), none_ok=self.optional)


@dataclass(frozen=True)
class Choice:
    """The allowed values of a string option."""

    values: tuple[str, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(self.values)

    def allows(self, value: object) -> bool:
        return isinstance(value, str) and value in self.values

    def check(self, option: str, value: object) -> None:
        if not self.allows(value):
            raise OptionError(option, value, self.describe())


def check_ranges(obj) -> None:
    """Check every field of the dataclass ``obj`` that its class's ``RANGES`` names."""
    ranges = type(obj).RANGES
    for f in fields(obj):
        rule = ranges.get(f.name)
        if rule is not None:
            rule.check(f"{type(obj).__name__}.{f.name}", getattr(obj, f.name))


def check_type(obj, name: str, cls: type) -> None:
    value = getattr(obj, name)
    if not isinstance(value, cls):
        raise OptionError(f"{type(obj).__name__}.{name}", value, f"a {cls.__name__}")


@dataclass(frozen=True)
class MotionOptions:
    """How the face moves.

    Ranges (checked on construction, ``RANGES``):

    lookahead_s: seconds, 0 ... 0.5: how far ahead of a frame the mouth may start forming the
        next phone (anticipatory coarticulation). Streaming has its own look-ahead
        (StreamOptions.lookahead_s), which bounds lead_s + this in live use.
    expressiveness: gain, 0 ... 3: global gain on mouth movement (1 = natural, 0.5 = mumbly,
        1.5 = emphatic; the mouth is clipped to its range above ~1.5).
    head_motion: gain, 0 ... 3: gain on head motion (0 = still head; 3 turns the head up to
        ~12 degrees, beyond that the portrait's warp tears).
    blinks_per_minute: blinks per minute, 0 ... 60: mean blink rate. People blink ~17/min at
        rest and ~26/min while talking (Bentivoglio et al. 1997); the speakers of
        `facecast eval`'s real clips 25/min (median).
    seed: whole number, 0 ... 2**32 - 1: seeds blinks and idle motion, so a job is reproducible.
    drive: "phones" (visemes from the phone timeline, loudness as gain) or "loudness" (the jaw
        follows loudness alone: the baseline `facecast eval` compares against).
    lead_s: seconds, 0 ... 0.5: the mouth leads the sound by this much (real lips start moving
        ~100 ms before the acoustics; `facecast eval` measured our mouth 2-3 frames late
        without it).
    pause_jaw: 0 ... 1: jaw opening (before jaw_scale) held through pauses under 0.5 s between
        speech; real speakers keep their lips apart there (`facecast eval`: 23 % of their silent
        frames closed, ours 95 %).
    jaw_scale: 0 ... 2: jaw opening per unit of viseme target (0.65: real speakers open
        0.08-0.14 IOD on open vowels, 1.0 opened 1.7-2.4x wider in `facecast eval`).
    expression: the face's mood, one of "neutral", "smile" (friendly: corners up, a little more
        in pauses), "serious" (brows down and together, corners slightly down), "surprised"
        (brows up), "sad" (inner brows up, corners down); `expression.EXPRESSIONS` has the poses.
        Whatever the mood, the brows rise and the head nods on stressed syllables.
    """

    RANGES: ClassVar[dict] = {
        "lookahead_s": Range(0, 0.5, "s"),
        "expressiveness": Range(0, 3),
        "head_motion": Range(0, 3),
        "blinks_per_minute": Range(0, 60, "per minute"),
        "seed": Range(0, MAX_SEED, integer=True),
        "drive": Choice(("phones", "loudness")),
        "expression": Choice(("neutral", "smile", "serious", "surprised", "sad")),  # expression.EXPRESSIONS
        "lead_s": Range(0, 0.5, "s"),
        "jaw_scale": Range(0, 2),
        "pause_jaw": Range(0, 1),
    }

    lookahead_s: float = 0.10
    expressiveness: float = 1.0
    head_motion: float = 1.0
    blinks_per_minute: float = 20.0
    seed: int = 0
    drive: str = "phones"
    lead_s: float = 0.08
    jaw_scale: float = 0.65
    pause_jaw: float = 0.15
    expression: str = "neutral"

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class RenderOptions:
    """How frames are drawn.

    device: "cpu", "cuda", "cuda:N" or "auto" (CUDA when it works, else CPU - stated in the log).
    batch_frames: frames rendered per batched launch, a whole number 1 ... 1000; None = 25 on the
        CPU (memory) and 100 on CUDA, where each launch costs ~1 ms of host time: on the H100 box 100 instead of 25
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

    RANGES: ClassVar[dict] = {"batch_frames": Range(1, 1000, "frames", integer=True, optional=True)}

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class EncodeOptions:
    """H.264 + AAC output.

    crf: quality, a number 0 ... 51 (lower = better, 18-28 sensible; libx264's own range).
    preset: libx264 speed, one of X264_PRESETS (libx264/libx265 only; other codecs ignore
        crf and preset).
    codec: an FFmpeg video encoder ("libx264"; others are checked to exist in this FFmpeg).
    workers: H.264 encoders running in parallel threads, a whole number 1 ... 64, each on its
        own ``segment_s`` seconds of video (every segment starts with a keyframe; the file is
        one ordinary stream). 1 = one encoder. Worth it where one encoder is the bottleneck: the
        GPU box's offline jobs (docs/benchmarks.md), not 2 cores that also render.
    segment_s: seconds, 0.1 ... 60 (shortened at large frame sizes, so that the frames the
        encoders hold stay under ~1 GiB: ``media.h264.segment_length``).
    """

    crf: int = 23
    preset: str = "veryfast"
    codec: str = "libx264"
    workers: int = 1
    segment_s: float = 2.0

    RANGES: ClassVar[dict] = {
        "crf": Range(0, 51),
        "workers": Range(1, 64, integer=True),
        "segment_s": Range(0.1, 60, "s"),
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.codec in ("libx264", "libx265"):
            Choice(X264_PRESETS).check("EncodeOptions.preset", self.preset)
        elif not _is_video_encoder(self.codec):
            raise OptionError("EncodeOptions.codec", self.codec, "a video encoder of this FFmpeg build, e.g. libx264")


def _is_video_encoder(name: object) -> bool:
    if not isinstance(name, str) or not name:
        return False
    import av  # only for codecs other than the default (av takes ~0.1 s to import)

    try:
        return av.codec.Codec(name, "w").type == "video"
    except Exception:  # UnknownCodecError, ValueError: no such encoder
        return False


@dataclass(frozen=True)
class SayOptions:
    """Everything `say` needs besides the inputs.

    size: output width = height in pixels, even, 64 ... 4096, or None to keep the portrait's own
        framing.
    fps: output frame rate, frames per second, 1 ... 120.
    face_index: which face to animate when the portrait has several (0-based, left to right,
        0 ... 99); None = the largest.
    segment_max_s: seconds, 1 ... 60: longest stretch of audio processed at once; bounds memory
        whatever the input length (segments are cut at pauses where possible).
    first_segment_s: seconds, 0.5 ... 60: length of the first segment, kept short so the first
        frames leave early.
    workers: processes that recognise phones of upcoming segments in parallel, 0 ... 64 (0 =
        inline); worth it on many-core machines (the GPU box), not on 2 cores.
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

    RANGES: ClassVar[dict] = {
        "size": Range(64, 4096, "pixels", integer=True, step=2, optional=True),
        "fps": Range(1, 120, "frames per second"),
        "face_index": Range(0, 99, integer=True, optional=True),
        "segment_max_s": Range(1, 60, "s"),
        "first_segment_s": Range(0.5, 60, "s"),
        "workers": Range(0, 64, integer=True),
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        check_type(self, "motion", MotionOptions)
        check_type(self, "render", RenderOptions)
        check_type(self, "encode", EncodeOptions)

    @property
    def word_timeline(self) -> bool:
        """Whether audio without a transcript also gets the recognised-word phone timeline."""
        return self.words and self.motion.drive == "phones"


@dataclass(frozen=True)
class StreamOptions:
    """Everything a stream needs besides the portrait and the source.

    Ranges are checked on construction (``RANGES``); ``live.options.check_options`` adds the checks
    between fields (lookahead_s >= motion.lead_s) and the AAC rates.

    size, fps, face_index: as SayOptions (output width = height in pixels, even, 16 ... 4096;
        frame rate 1 ... 120; which face, 0 ... 99); size and face_index only apply when the
        portrait is an image, not a prepared Portrait.
    lookahead_s: video lags input audio by this much (seconds, 0 ... 0.2); frames are computed once audio
        up to their time + lookahead_s has arrived. The mouth leads the sound by motion.lead_s,
        so lookahead_s - motion.lead_s is what is left for anticipation (docs/streaming.md).
    realtime: :func:`stream` drives the session with the wall clock: idle frames when the source
        is silent, and frames are produced at most ``max_lead_s`` ahead of the clock (so a
        barge-in can still change them). False: frames as fast as the input allows, no idle
        frames without input (for files, tests, offline use).
    max_lead_s: realtime only: how far ahead of the clock frames are produced (s, 0 ... 10).
    jitter_s: realtime only: input may arrive this late before the gap is taken as silence
        (s, 0 ... 5).
    max_buffer_s: realtime only: stop reading the source while this much input is queued ahead of
        the clock (bounds memory when a source is much faster than real time; s, > 0 ... 3600).
    interrupt_fade_s: after a barge-in, the face eases from its last pose to the new one over this
        (s, 0 ... 5).
    chunk_frames: most frames per StreamChunk (1 ... 1000).
    fmp4: also produce fragmented MP4 bytes (StreamChunk.fmp4); ``encode`` sets crf/preset/codec.
    preview_jpeg: also produce one JPEG per frame (StreamChunk.jpeg) at this quality (1-100), for
        previews without a video decoder; encoded on the GPU (nvJPEG) when frames are on CUDA.
        0 = off.
    fragment_frames: a keyframe and a new MP4 fragment every this many frames (1 ... 1000; 12 =
        0.48 s at 25 fps).
    audio_rate, audio_channels: format of the output audio (StreamChunk.audio and the AAC track;
        an AAC rate in Hz, 1 or 2 channels); input is resampled to it (48 kHz keeps any usual
        input rate at its own quality).
    max_utterance_s: the phone recogniser restarts at pauses, and after this long without one
        (s, 1 ... 600).
    """

    size: int | None = 512
    fps: float = 25.0
    face_index: int | None = None
    lookahead_s: float = 0.12
    realtime: bool = True
    max_lead_s: float = 0.25
    jitter_s: float = 0.1
    max_buffer_s: float = 30.0
    interrupt_fade_s: float = 0.1
    chunk_frames: int = 25
    fmp4: bool = False
    preview_jpeg: int = 0
    fragment_frames: int = 12
    audio_rate: int = 48_000
    audio_channels: int = 1
    max_utterance_s: float = 15.0
    motion: MotionOptions = MotionOptions()
    render: RenderOptions = RenderOptions()
    encode: EncodeOptions = EncodeOptions()

    RANGES: ClassVar[dict] = {
        "size": Range(16, 4096, "pixels", integer=True, step=2, optional=True),
        "fps": Range(1, 120, "frames per second"),
        "face_index": Range(0, 99, integer=True, optional=True),
        "lookahead_s": Range(0, 0.2, "s"),
        "max_lead_s": Range(0, 10, "s"),
        "jitter_s": Range(0, 5, "s"),
        "max_buffer_s": Range(0, 3600, "s", lo_open=True),
        "interrupt_fade_s": Range(0, 5, "s"),
        "chunk_frames": Range(1, 1000, "frames", integer=True),
        "preview_jpeg": Range(0, 100, integer=True),
        "fragment_frames": Range(1, 1000, "frames", integer=True),
        "audio_rate": Range(8000, 96000, "Hz", integer=True),
        "audio_channels": Range(1, 2, integer=True),
        "max_utterance_s": Range(1, 600, "s"),
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        check_type(self, "motion", MotionOptions)
        check_type(self, "render", RenderOptions)
        check_type(self, "encode", EncodeOptions)


@dataclass(frozen=True)
class LoudnessOptions:
    """Fixed dBFS -> [0, 1] mapping of the per-frame RMS.

    A fixed mapping (not per-file normalisation) makes every chunk's answer independent of the
    rest of the file. -60 dBFS is room noise / digital near-silence; -10 dBFS RMS over 40 ms is
    loud, well-mastered speech (over our media, loud-speech RMS (90th percentile) ranges from
    -21 dBFS for a lecture recording to -4 dBFS for heavily compressed TTS-like clips).
    """

    window_seconds: float = 0.04
    floor_db: float = -60.0
    ceiling_db: float = -10.0


@dataclass(frozen=True)
class VadOptions:
    """Frame-level smoothing of silero's probabilities.

    release: once voiced, a frame stays voiced until the probability falls below
        ``threshold - release`` (silero's own "neg_threshold" hysteresis).
    hangover_seconds: voicing is held this long after the probability drops, so one- or
        two-frame dips inside a word do not make the mouth flicker.
    max_block_windows: windows per ONNX call (bounds memory; 512 windows = 16.4 s).
    """

    release: float = 0.15
    hangover_seconds: float = 0.08
    max_block_windows: int = 512


@dataclass(frozen=True)
class AlignOptions:
    """Settings of an :class:`Aligner`.

    Recognition (no transcript) knobs, tuned on jfk_en / hdtf_radio31_en / lecture_en against
    their forced alignments (frame phone accuracy, mouth-class accuracy, bilabial hits, speed):

    lw: weight of the phone n-gram.  2.0 is best; the default 6.5 is tuned for word search and
        merges phones (7 phones/s instead of ~9), 1.0 inserts spurious ones.
    beam, pbeam: Viterbi / phone-transition pruning.  Accuracy is flat from 1e-48 down to 1e-12,
        barely lower at 1e-10 (25 % faster than 1e-20) and collapses at 1e-8 (phones can no
        longer pay the n-gram cost of a transition).  1e-20 is ~10 % faster than the default
        1e-48 and stays far from that cliff, which moves with ``lw``.
    downsample: pocketsphinx ``-ds``, acoustic scores computed every n-th frame.  2 is ~30 %
        faster but loses 9 points of phone accuracy and half of the silence precision, so off.

    Shared:

    silence_dbfs: 10 ms frames quieter than this (RMS, dB re full scale) in runs of at least
        ``min_silence_s`` are SIL whatever the model says.  The model turns digital silence into
        a long fricative (its features are degenerate), which TTS audio is full of.
    min_silence_s: see ``silence_dbfs``; shorter quiet runs (stop closures) are left alone.
    max_unaligned_speech: forced-alignment sanity check.  A transcript that does not match the
        audio still "aligns" -- the decoder parks the missing words' audio in long silences.  If
        more than this fraction of clearly loud frames ends up as silence, the alignment is
        rejected and phone recognition is used instead (correct transcripts stay below 0.10,
        a transcript missing half the words is near 0.5).
    Word recognition (:meth:`Aligner.align_words`, a second phone timeline without a transcript):

    word_beam, word_wbeam, word_pbeam: beams of the word decoder (pocketsphinx defaults 1e-48 /
        7e-29 / 1e-48).  Its forward-flat second pass is off: it costs ~50 % more time for
        nothing measurable.  Narrower beams (1e-40 and below) are faster but garble the words
        (jfk phone agreement 0.71 -> 0.46), so the defaults stay.
    word_max_hmms, word_max_words: the word search's caps per 10 ms frame on active HMMs and on
        distinct word exits (pocketsphinx ``maxhmmpf`` / ``maxwpf``, its defaults 30000 / no
        cap; None = no cap).  5000 / 10 make align_words 1.6-1.8x cheaper on jfk / radio /
        lecture (per clip 1.3-2x) with the same phone agreement (0.75 / 0.88 / 0.86 -> 0.76 /
        0.88 / 0.86) and dub's link 1 unchanged; 3000 HMMs or 5 words garble jfk (0.55 / 0.57).
        benchmarks/word_pass.py; docs/benchmarks.md, 2026-12-06 13:51 UTC.

    model_dir: pocketsphinx model folder holding ``en-us/`` (acoustic model),
        ``cmudict-en-us.dict``, ``en-us-phone.lm.bin`` and (for :meth:`Aligner.align_words`)
        ``en-us.lm.bin``; None = the one in the wheel.
    sphinx_loglevel: pocketsphinx's own stderr logging ("FATAL" keeps it quiet; failures are
        reported through :mod:`logging` instead).
    """

    lw: float = 2.0
    beam: float = 1e-20
    pbeam: float = 1e-20
    downsample: int = 1
    silence_dbfs: float = -60.0
    min_silence_s: float = 0.1
    max_unaligned_speech: float = 0.25
    word_beam: float = 1e-48
    word_wbeam: float = 7e-29
    word_pbeam: float = 1e-48
    word_max_hmms: int | None = 5000
    word_max_words: int | None = 10
    model_dir: str | None = None
    sphinx_loglevel: str = "FATAL"

    RANGES: ClassVar[dict] = {
        "lw": Range(0, 100, lo_open=True),
        **dict.fromkeys(("beam", "pbeam", "word_beam", "word_wbeam", "word_pbeam"), Range(0, 1, lo_open=True)),
        "downsample": Range(1, 10, "frames", integer=True),
        "silence_dbfs": Range(-200, 0, "dBFS"),
        "min_silence_s": Range(0.01, 10, "s"),
        "max_unaligned_speech": Range(0, 1),
        "word_max_hmms": Range(100, 1_000_000, "HMMs per frame", integer=True, optional=True),
        "word_max_words": Range(1, 100_000, "words per frame", integer=True, optional=True),
    }

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class MeshOptions:
    """Settings of a MediapipeFaceMesh (see its constructor)."""

    static_image_mode: bool = True
    max_faces: int = 5
    refine_landmarks: bool = True
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    detect_max_side: int = 1024  # face.DETECT_MAX_SIDE: longest side the detector sees, in pixels
