"""Audio stage: decode, resample, loudness and voice activity.

Public API
----------
- ``open_audio(path, *, chunk_seconds=1.0, max_seconds=4*3600) -> AudioSource``: validated,
  streaming, re-iterable decoder yielding ``AudioChunk`` (float32 [C, n]) at the file's own rate.
- ``load_audio(path, *, sample_rate=16000, mono=True) -> AudioChunk``: a whole (short) file,
  resampled.
- ``Resampler(sample_rate, mono=True)``: streaming resampler, ``feed(chunk)`` / ``flush()``.
- ``loudness_envelope(samples16k, sample_rate, fps, num_frames, start_frame=0) -> float32 [F]``.
- ``VoiceActivity``: streaming silero-vad with per-window probabilities and a per-frame map.
- ``check_media_file(path, what=...)`` / ``open_media(path, what=...)``: the file checks and the
  guarded ``av.open`` shared with ``facecast.video``.

Timeline: an ``AudioSource`` counts time from the container's start (the origin video.py uses for
frames too), so audio and video of one file share a clock; chunk starts are derived from the number
of samples decoded, so consecutive chunks are exactly contiguous.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
import numpy as np
import torch

from facecast.errors import InputError
from facecast.options import LoudnessOptions, VadOptions
from facecast.types import AudioChunk

__all__ = [
    "AudioSource",
    "LoudnessOptions",
    "Resampler",
    "VadOptions",
    "VoiceActivity",
    "check_media_file",
    "load_audio",
    "loudness_envelope",
    "open_audio",
    "open_media",
]

# What a user can do about a file FFmpeg cannot read; named in several messages.
_CONVERT_HINT = "Convert it to WAV, FLAC, MP3, M4A or MP4 and try again."


# --------------------------------------------------------------------------------------------
# Shared file checks (also used by facecast.video)
# --------------------------------------------------------------------------------------------


def check_media_file(path: str | Path, *, what: str = "audio") -> Path:
    """Validate that ``path`` is an existing, non-empty regular file; return it as a Path.

    ``what`` names the expected content in messages ("audio", "video").
    Raises InputError: missing, a directory, empty, or unreadable.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found. Check the path and spelling of the {what} file.")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a {what} file. Give the path of a {what} file.")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror}). Check the file's permissions.") from exc
    if size == 0:
        raise InputError(f"{p}: file is empty (0 bytes). Re-export or re-download the {what} file.")
    return p


def open_media(path: Path, *, what: str = "audio") -> av.container.InputContainer:
    """``av.open`` for reading with FFmpeg/OS failures turned into one-line InputErrors."""
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        # InvalidDataError and friends: not media FFmpeg recognises (text, random bytes, ...).
        raise InputError(
            f"{path}: not a readable {what} file (FFmpeg: {_ffmpeg_reason(exc)}). {_CONVERT_HINT}"
        ) from exc
    except OSError as exc:
        raise InputError(
            f"{path}: cannot be opened ({exc.strerror or exc}). Check the file's permissions."
        ) from exc


def _ffmpeg_reason(exc: av.error.FFmpegError) -> str:
    # FFmpegError's str() repeats errno and filename; the strerror is the useful part.
    return str(getattr(exc, "strerror", None) or exc).rstrip(".")


def _container_origin(container: av.container.InputContainer) -> float:
    """Seconds of the container's start time: the zero of the shared audio/video timeline."""
    return container.start_time / av.time_base if container.start_time is not None else 0.0


def _describe_streams(container: av.container.InputContainer) -> str:
    """A few words on what a file without audio contains, for the error message."""
    fmt = container.format.name
    if fmt.endswith("_pipe") or fmt in ("image2", "png", "jpeg", "webp"):
        return f"it is an image ({fmt.split('_')[0]})"
    if container.streams.video:
        return "it has video but no sound track"
    return "it has no audio track"


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------

# Integer sample formats -> the divisor that maps them onto [-1, 1).
_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0, np.dtype(np.int64): 2.0**63}


def _frame_to_float(frame: av.AudioFrame, channels: int) -> np.ndarray:
    """float32 [channels, n] from any decoded AudioFrame with ``channels`` channels (<= 2)."""
    arr = frame.to_ndarray()
    if not frame.format.is_planar:
        # Packed audio comes back as [1, n * channels], interleaved.
        arr = arr.reshape(-1, channels).T
    if arr.dtype == np.uint8:
        out = (arr.astype(np.float32) - 128.0) / 128.0
    elif arr.dtype in _INT_SCALE:
        out = arr.astype(np.float32) / np.float32(_INT_SCALE[arr.dtype])
    else:
        out = arr.astype(np.float32, copy=False)
    return np.ascontiguousarray(out)


class AudioSource:
    """A validated audio file, decoded lazily in chunks.

    Attributes: ``path``; ``sample_rate`` (Hz, the file's own); ``channels`` (1 or 2: files with
    more channels are downmixed to stereo); ``duration`` (seconds from the container, None if
    unknown); ``chunk_seconds``; ``max_seconds``; ``start`` (seconds of the first sample on the
    file's timeline, normally 0).

    Iterating yields AudioChunk with samples float32 [channels, n], n = round(chunk_seconds *
    sample_rate) except for the last chunk. Each iteration reopens the file, so the source can be
    iterated any number of times; memory stays at about one chunk whatever the file's length.
    """

    def __init__(
        self,
        path: Path,
        *,
        stream_index: int,
        sample_rate: int,
        channels: int,
        source_channels: int,
        duration: float | None,
        start: float,
        chunk_seconds: float,
        max_seconds: float,
    ) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self.duration = duration
        self.start = start
        self.chunk_seconds = chunk_seconds
        self.max_seconds = max_seconds
        self._stream_index = stream_index  # index into container.streams.audio
        self._source_channels = source_channels

    def __repr__(self) -> str:
        dur = "?" if self.duration is None else f"{self.duration:.2f}s"
        return f"AudioSource({str(self.path)!r}, {self.sample_rate} Hz, {self.channels} ch, {dur})"

    def __iter__(self) -> Iterator[AudioChunk]:
        chunk = max(1, round(self.chunk_seconds * self.sample_rate))
        limit = (self.max_seconds + 1.0) * self.sample_rate  # +1 s: container durations are estimates
        pending: list[np.ndarray] = []
        pending_n = 0
        emitted = 0
        for samples in self._decode():
            pending.append(samples)
            pending_n += samples.shape[1]
            if pending_n < chunk:
                continue
            buf = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
            cut = (buf.shape[1] // chunk) * chunk
            for i in range(0, cut, chunk):
                start = self.start + emitted / self.sample_rate
                yield AudioChunk(buf[:, i : i + chunk], self.sample_rate, start)
                emitted += chunk
            pending = [buf[:, cut:]] if cut < buf.shape[1] else []
            pending_n = buf.shape[1] - cut
            if emitted > limit:
                # Only reachable when the container did not know its duration at open time.
                raise InputError(
                    f"{self.path}: audio is longer than the {_fmt_minutes(self.max_seconds)} limit. "
                    "Split it into shorter files."
                )
        if pending_n:
            buf = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
            yield AudioChunk(buf, self.sample_rate, self.start + emitted / self.sample_rate)

    def _decode(self) -> Iterator[np.ndarray]:
        """float32 [channels, n] arrays, one per decoded frame, in stream order."""
        container = open_media(self.path, what="audio")
        try:
            stream = container.streams.audio[self._stream_index]
            # >2 channels (5.1 ...): let swresample downmix with proper centre/surround weights.
            downmix = (
                av.AudioResampler(format="fltp", layout="stereo", rate=self.sample_rate)
                if self._source_channels > 2
                else None
            )
            decoded = 0
            try:
                for frame in container.decode(stream):
                    if frame.sample_rate != self.sample_rate:
                        raise InputError(
                            f"{self.path}: sample rate changes mid-stream ({self.sample_rate} -> "
                            f"{frame.sample_rate} Hz). Re-export the audio at one rate."
                        )
                    if downmix is not None:
                        frame.pts = None  # our clock is sample counting, not the file's pts
                        for out in downmix.resample(frame):
                            yield _frame_to_float(out, 2)
                    else:
                        yield _frame_to_float(frame, self._source_channels)
                    decoded += frame.samples
                if downmix is not None:
                    for out in downmix.resample(None):
                        yield _frame_to_float(out, 2)
            except av.error.FFmpegError as exc:
                raise InputError(
                    f"{self.path}: audio is damaged or truncated at {decoded / self.sample_rate:.1f} s "
                    f"(FFmpeg: {_ffmpeg_reason(exc)}). Re-export or re-download the file."
                ) from exc
        finally:
            container.close()


def _fmt_minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f}-minute" if seconds >= 120 else f"{seconds:.0f}-second"


def open_audio(
    path: str | Path, *, chunk_seconds: float = 1.0, max_seconds: float = 4 * 3600
) -> AudioSource:
    """Open and validate an audio (or video-with-sound) file for streaming decode.

    Checks (each an InputError naming the file): missing, directory, empty, not decodable media,
    no audio stream, longer than ``max_seconds``. Decodes the first audio frame to be sure the
    stream is really readable (FFmpeg accepts some garbage at open time).
    """
    if chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds must be > 0, got {chunk_seconds}")
    p = check_media_file(path, what="audio")
    container = open_media(p, what="audio")
    try:
        if not container.streams.audio:
            raise InputError(
                f"{p}: has no audio stream ({_describe_streams(container)}). Give a file with speech audio."
            )
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        rate = int(ctx.sample_rate or 0)
        source_channels = int(ctx.channels or 0)
        if rate <= 0 or source_channels <= 0:
            raise InputError(f"{p}: audio stream has no sample rate or channel layout. {_CONVERT_HINT}")
        duration: float | None = None
        if container.duration is not None and container.duration > 0:
            duration = container.duration / av.time_base
        elif stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        if duration is not None and duration > max_seconds:
            raise InputError(
                f"{p}: audio is {duration / 60:.1f} min long, more than the {_fmt_minutes(max_seconds)} "
                "limit. Split it into shorter files."
            )
        start = _first_frame_start(p, container, stream)
    finally:
        container.close()
    return AudioSource(
        p,
        stream_index=0,  # position among the audio streams: the first one
        sample_rate=rate,
        channels=min(source_channels, 2),
        source_channels=source_channels,
        duration=duration,
        start=start,
        chunk_seconds=chunk_seconds,
        max_seconds=max_seconds,
    )


def _first_frame_start(path: Path, container: av.container.InputContainer, stream: av.AudioStream) -> float:
    """Decode up to the first audio frame: proves the stream decodes, and gives its start time."""
    try:
        for frame in container.decode(stream):
            if frame.samples == 0:
                continue
            if frame.time is None:
                return 0.0
            # Negative or tiny offsets are encoder priming; anything real is kept so the audio of a
            # video stays on the same clock as its frames.
            return max(0.0, float(frame.time) - _container_origin(container))
    except av.error.FFmpegError as exc:
        raise InputError(
            f"{path}: audio stream cannot be decoded (FFmpeg: {_ffmpeg_reason(exc)}). {_CONVERT_HINT}"
        ) from exc
    raise InputError(f"{path}: audio stream holds no decodable samples. {_CONVERT_HINT}")


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------


class Resampler:
    """Streaming sample-rate (and optional mono) conversion with exact bookkeeping.

    ``feed(chunk)`` returns whatever output is ready (possibly 0 samples; swresample holds back a
    few ms of filter delay), ``flush()`` returns the rest and readies the object for a new stream.
    Output chunks are float32 [C, n] at ``sample_rate`` (C = 1 when ``mono``, else the input's);
    their ``start`` is the first input chunk's start plus the output samples produced so far, so
    consecutive outputs are contiguous. Over a whole stream the output has round(n_in * out/in)
    samples (+-1) and swresample compensates its own delay, so sample k of the output is at
    time k / sample_rate after the stream start.
    Input chunks must be contiguous and share one rate and channel count (ValueError otherwise).
    """

    def __init__(self, sample_rate: int, mono: bool = True) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.mono = mono
        self._reset()

    def _reset(self) -> None:
        self._swr: av.AudioResampler | None = None
        self._in_rate: int | None = None
        self._channels: int | None = None
        self._start = 0.0
        self._fed = 0  # input samples seen
        self._produced = 0  # output samples returned

    def feed(self, chunk: AudioChunk) -> AudioChunk:
        samples = chunk.mono()[None, :] if self.mono else chunk.samples
        if samples.shape[0] > 2:
            raise ValueError(f"Resampler handles 1 or 2 channels, got {samples.shape[0]}; downmix first")
        if self._in_rate is None:
            self._in_rate = chunk.sample_rate
            self._channels = samples.shape[0]
            self._start = chunk.start
            if chunk.sample_rate != self.sample_rate:
                layout = "mono" if self._channels == 1 else "stereo"
                self._swr = av.AudioResampler(format="fltp", layout=layout, rate=self.sample_rate)
        else:
            if chunk.sample_rate != self._in_rate or samples.shape[0] != self._channels:
                raise ValueError(
                    f"Resampler input changed from {self._in_rate} Hz/{self._channels} ch to "
                    f"{chunk.sample_rate} Hz/{samples.shape[0]} ch; call flush() between streams"
                )
            expected = self._start + self._fed / self._in_rate
            if abs(chunk.start - expected) > 1e-3:
                raise ValueError(
                    f"Resampler input is not contiguous: chunk starts at {chunk.start:.4f} s, "
                    f"expected {expected:.4f} s"
                )
        self._fed += samples.shape[1]
        if self._swr is None:
            return self._emit(np.ascontiguousarray(samples, dtype=np.float32))
        if samples.shape[1] == 0:
            return self._emit(np.zeros((self._channels, 0), np.float32))
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32),
            format="fltp",
            layout="mono" if self._channels == 1 else "stereo",
        )
        frame.sample_rate = self._in_rate
        frame.pts = None  # timing is ours: output starts come from sample counting
        return self._emit(self._collect(self._swr.resample(frame)))

    def flush(self) -> AudioChunk:
        if self._in_rate is None:
            out = AudioChunk(np.zeros((1, 0), np.float32), self.sample_rate, 0.0)  # nothing was fed
        elif self._swr is None:
            out = self._emit(np.zeros((self._channels, 0), np.float32))
        else:
            out = self._emit(self._collect(self._swr.resample(None)))
        self._reset()
        return out

    def _collect(self, frames: list[av.AudioFrame]) -> np.ndarray:
        if not frames:
            return np.zeros((self._channels, 0), np.float32)
        return np.concatenate([f.to_ndarray() for f in frames], axis=1).astype(np.float32, copy=False)

    def _emit(self, samples: np.ndarray) -> AudioChunk:
        out = AudioChunk(samples, self.sample_rate, self._start + self._produced / self.sample_rate)
        self._produced += samples.shape[1]
        return out


def load_audio(
    path: str | Path, *, sample_rate: int = 16000, mono: bool = True, max_seconds: float = 4 * 3600
) -> AudioChunk:
    """The whole file as one AudioChunk at ``sample_rate`` (float32 [1 or C, n]).

    For short clips (tests, evaluation, the demo); streaming code should iterate ``open_audio``.
    ``start`` is the file's first-sample time (normally 0).
    """
    source = open_audio(path, chunk_seconds=10.0, max_seconds=max_seconds)
    resampler = Resampler(sample_rate, mono=mono)
    parts = [resampler.feed(chunk).samples for chunk in source]
    parts.append(resampler.flush().samples)
    return AudioChunk(np.concatenate(parts, axis=1), sample_rate, source.start)


# --------------------------------------------------------------------------------------------
# Loudness
# --------------------------------------------------------------------------------------------


def loudness_envelope(
    samples16k: np.ndarray,
    sample_rate: int,
    fps: float,
    num_frames: int,
    start_frame: int = 0,
    *,
    samples_start: float = 0.0,
    options: LoudnessOptions = LoudnessOptions(),
) -> np.ndarray:
    """Per-frame loudness in [0, 1]: float32 [num_frames].

    samples16k: float32 [n] mono audio at ``sample_rate`` whose first sample is at
    ``samples_start`` seconds. Frame ``start_frame + k`` is at (start_frame + k) / fps; its value
    is the RMS of a ``window_seconds`` window centred there, in dBFS, mapped linearly from
    [floor_db, ceiling_db] to [0, 1] and clipped. A window reaching past the given audio uses
    the part inside it (a frame with no audio at all reads 0), so chunks cut without margins
    differ from the whole-file answer only slightly at their edges, and a chunked caller gets
    exactly the whole-file answer when each call's audio covers [first frame time - window/2,
    last frame time + window/2].
    """
    x = np.asarray(samples16k, dtype=np.float32).reshape(-1)
    if num_frames <= 0:
        return np.zeros(0, np.float32)
    win = max(1, round(options.window_seconds * sample_rate))
    # Integer sample positions on the global timeline keep whole-file and chunked rounding equal.
    centres = np.round((start_frame + np.arange(num_frames)) / fps * sample_rate).astype(np.int64)
    lo = centres - win // 2 - round(samples_start * sample_rate)
    hi = lo + win
    csum = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    lo_c = np.clip(lo, 0, x.shape[0])
    hi_c = np.clip(hi, 0, x.shape[0])
    # Mean over the part of the window that lies inside the given audio: a segment edge then
    # reads as the audio next to it rather than as a dip towards silence.
    count = hi_c - lo_c
    energy = np.where(count > 0, np.maximum(csum[hi_c] - csum[lo_c], 0.0) / np.maximum(count, 1), 0.0)
    db = 10.0 * np.log10(energy + 1e-12)
    level = (db - options.floor_db) / (options.ceiling_db - options.floor_db)
    return np.clip(level, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Voice activity
# --------------------------------------------------------------------------------------------


def _load_silero() -> tuple[str, object]:
    """(backend name, model) from the silero_vad package's shipped files; never downloads."""
    # Importing silero_vad calls torch.set_num_threads(1) as a side effect (silero_vad/model.py);
    # restore the caller's setting so the renderer keeps its threads.
    threads = torch.get_num_threads()
    try:
        import silero_vad
    finally:
        torch.set_num_threads(threads)
    try:
        import onnxruntime  # noqa: F401  (only probing that it imports)
    except ImportError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return "jit", silero_vad.load_silero_vad(onnx=False)
    # The "sequence" export runs many 512-sample windows per ONNX call with the LSTM state as
    # explicit inputs/outputs: bit-identical to the per-window model, ~2.5x faster, and the
    # explicit state is exactly what streaming needs.
    with warnings.catch_warnings():
        # silero_vad 6 locates its model with the deprecated importlib.resources.path().
        warnings.simplefilter("ignore", DeprecationWarning)
        return "onnx", silero_vad.load_silero_vad(sequence=True)


class VoiceActivity:
    """Streaming silero-vad at 16 kHz.

    The object holds the stream state (LSTM state, 64-sample context, a < 512-sample remainder),
    so feeding consecutive pieces of one stream gives the same probabilities as feeding it whole.
    Call ``reset()`` before a new stream.

    - ``speech_probability(samples16k)`` -> float32 [k]: probabilities of the 512-sample windows
      completed by these samples (window j covers stream samples [512 j, 512 j + 512)).
    - ``flush()`` -> float32 [0 or 1]: the zero-padded last partial window.
    - ``voiced_frames(samples16k, fps, num_frames, start_frame)`` -> bool [num_frames]: feeds
      the samples, then decides frames on the video grid; consecutive calls (start_frame
      continuing where the last call ended) carry the hysteresis state.
    """

    sample_rate = 16000
    window = 512
    _context = 64

    def __init__(self, options: VadOptions = VadOptions(), *, start: float = 0.0) -> None:
        self.options = options
        self.backend, self._model = _load_silero()
        self.reset(start)

    def reset(self, start: float = 0.0) -> None:
        """Start a new stream whose first sample is at ``start`` seconds."""
        self._start = float(start)
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._ctx = np.zeros(self._context, np.float32)
        self._rest = np.zeros(0, np.float32)
        if self.backend == "jit":
            self._model.reset_states()
        # Probability history for voiced_frames: _hist[i] is window _hist_first + i.
        self._hist = np.zeros(0, np.float32)
        self._hist_first = 0
        self._next_frame: int | None = None
        self._on = False
        self._low_run = 0

    def speech_probability(self, samples16k: np.ndarray) -> np.ndarray:
        x = np.asarray(samples16k, dtype=np.float32).reshape(-1)
        data = np.concatenate([self._rest, x]) if self._rest.size else x
        n_win = data.shape[0] // self.window
        self._rest = data[n_win * self.window :].copy()
        probs = self._run(data[: n_win * self.window].reshape(n_win, self.window))
        self._remember(probs)
        return probs

    def flush(self) -> np.ndarray:
        if self._rest.size == 0:
            return np.zeros(0, np.float32)
        last = np.zeros((1, self.window), np.float32)
        last[0, : self._rest.size] = self._rest
        self._rest = np.zeros(0, np.float32)
        probs = self._run(last)
        self._remember(probs)
        return probs

    def _run(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities of full windows [k, 512], advancing the stream state."""
        out = []
        for i in range(0, windows.shape[0], self.options.max_block_windows):
            block = windows[i : i + self.options.max_block_windows]
            if self.backend == "onnx":
                # Each window is prefixed with the last 64 samples of the previous one (silero's
                # context); the first uses the context carried over from the previous call.
                ctx = np.empty((block.shape[0], self._context), np.float32)
                ctx[0] = self._ctx
                ctx[1:] = block[:-1, -self._context :]
                probs, self._h, self._c = self._model.session.run(
                    ["speech_probs", "hn", "cn"],
                    {"input": np.concatenate([ctx, block], axis=1), "h": self._h, "c": self._c},
                )
                out.append(np.asarray(probs, np.float32).reshape(-1))
            else:
                # The JIT model keeps its state and context inside; one call per window.
                with torch.inference_mode():
                    probs = [float(self._model(torch.from_numpy(w.copy())[None], self.sample_rate)) for w in block]
                out.append(np.array(probs, np.float32))
            self._ctx = block[-1, -self._context :].copy()
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _remember(self, probs: np.ndarray) -> None:
        self._hist = np.concatenate([self._hist, probs]) if self._hist.size else probs

    def voiced_frames(
        self,
        samples16k: np.ndarray,
        fps: float,
        num_frames: int,
        start_frame: int = 0,
        threshold: float = 0.5,
    ) -> np.ndarray:
        """bool [num_frames]: is frame start_frame + k (at its time / fps) speech?

        ``samples16k`` continues the stream (after ``reset()`` for a new one). A frame's score
        is the max probability of the windows overlapping its [t - 0.5/fps, t + 0.5/fps)
        interval; frames beyond the audio fed so far reuse the last known probability. Then
        hysteresis (enter at ``threshold``, leave below ``threshold - release``) and a causal
        hangover fill short dips.
        """
        self.speech_probability(samples16k)
        if num_frames <= 0:
            return np.zeros(0, bool)
        if self._next_frame != start_frame:
            self._on, self._low_run = False, 0  # not a continuation: start the smoother afresh
        scores = self._frame_scores(fps, num_frames, start_frame)
        hangover = max(1, round(self.options.hangover_seconds * fps))
        low = threshold - self.options.release
        out = np.zeros(num_frames, bool)
        on, low_run = self._on, self._low_run
        for k, p in enumerate(scores):
            if p >= threshold:
                on, low_run = True, 0
            elif on:
                low_run = low_run + 1 if p < low else 0
                if low_run > hangover:
                    on, low_run = False, 0
            out[k] = on
        self._on, self._low_run = on, low_run
        self._next_frame = start_frame + num_frames
        self._trim(fps)
        return out

    def _frame_scores(self, fps: float, num_frames: int, start_frame: int) -> np.ndarray:
        t = (start_frame + np.arange(num_frames)) / fps - self._start
        per_window = self.window / self.sample_rate
        j0 = np.floor((t - 0.5 / fps) / per_window).astype(np.int64)
        j1 = np.ceil((t + 0.5 / fps) / per_window).astype(np.int64)  # exclusive
        avail_lo, avail_hi = self._hist_first, self._hist_first + self._hist.size
        if avail_hi == avail_lo:
            return np.zeros(num_frames, np.float32)
        # Frames past the audio fed so far hold the last probability (the streaming lag).
        j0 = np.clip(j0, avail_lo, avail_hi - 1)
        j1 = np.clip(j1, j0 + 1, avail_hi)
        scores = np.zeros(num_frames, np.float32)
        span = int((j1 - j0).max())
        for d in range(span):
            idx = np.minimum(j0 + d, j1 - 1) - self._hist_first
            scores = np.maximum(scores, self._hist[idx])
        return scores

    def _trim(self, fps: float) -> None:
        """Forget windows that end before the next frame's interval (keeps memory flat)."""
        t = self._next_frame / fps - 0.5 / fps - self._start
        keep_from = int(math.floor(t * self.sample_rate / self.window)) - 1
        drop = min(max(0, keep_from - self._hist_first), max(0, self._hist.size - 1))
        if drop:
            self._hist = self._hist[drop:].copy()
            self._hist_first += drop
