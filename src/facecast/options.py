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
    expression: the face's mood, one of "neutral", "smile" (friendly: corners up, a little more
        in pauses), "serious" (brows down and together, corners slightly down), "surprised"
        (brows up), "sad" (inner brows up, corners down); `expression.EXPRESSIONS` has the poses.
        Whatever the mood, the brows rise and the head nods on stressed syllables.
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
    expression: str = "neutral"


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


@dataclass(frozen=True)
class StreamOptions:
    """Everything a stream needs besides the portrait and the source.

    size, fps, face_index: as SayOptions (output width = height in pixels, frame rate, which face);
        size and face_index only apply when the portrait is an image, not a prepared Portrait.
    lookahead_s: video lags input audio by this much (0 ... 0.2 s); frames are computed once audio
        up to their time + lookahead_s has arrived. The mouth leads the sound by motion.lead_s,
        so lookahead_s - motion.lead_s is what is left for anticipation (docs/streaming.md).
    realtime: :func:`stream` drives the session with the wall clock: idle frames when the source
        is silent, and frames are produced at most ``max_lead_s`` ahead of the clock (so a
        barge-in can still change them). False: frames as fast as the input allows, no idle
        frames without input (for files, tests, offline use).
    max_lead_s: realtime only: how far ahead of the clock frames are produced.
    jitter_s: realtime only: input may arrive this late before the gap is taken as silence.
    max_buffer_s: realtime only: stop reading the source while this much input is queued ahead of
        the clock (bounds memory when a source is much faster than real time).
    interrupt_fade_s: after a barge-in, the face eases from its last pose to the new one over this.
    chunk_frames: most frames per StreamChunk.
    encode: also produce fragmented MP4 bytes (StreamChunk.fmp4); ``encoding`` sets crf/preset.
    preview_jpeg: also produce one JPEG per frame (StreamChunk.jpeg) at this quality (1-100), for
        previews without a video decoder; encoded on the GPU (nvJPEG) when frames are on CUDA.
        0 = off.
    fragment_frames: a keyframe and a new MP4 fragment every this many frames (0.48 s at 25 fps).
    audio_rate, audio_channels: format of the output audio (StreamChunk.audio and the AAC track);
        input is resampled to it (48 kHz keeps any usual input rate at its own quality).
    max_utterance_s: the phone recogniser restarts at pauses, and after this long without one.
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
    encode: bool = False
    preview_jpeg: int = 0
    fragment_frames: int = 12
    audio_rate: int = 48_000
    audio_channels: int = 1
    max_utterance_s: float = 15.0
    motion: MotionOptions = MotionOptions()
    render: RenderOptions = RenderOptions()
    encoding: EncodeOptions = EncodeOptions()


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
    model_dir: str | None = None
    sphinx_loglevel: str = "FATAL"


@dataclass(frozen=True)
class MeshOptions:
    """Settings of a MediapipeFaceMesh (see its constructor)."""

    static_image_mode: bool = True
    max_faces: int = 5
    refine_landmarks: bool = True
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    detect_max_side: int = 1024  # face.DETECT_MAX_SIDE: longest side the detector sees, in pixels
