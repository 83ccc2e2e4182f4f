"""Audio stage: decode and resample.

Public API
----------
- ``open_audio(path, *, chunk_seconds=1.0, max_seconds=4*3600) -> AudioSource``: validated,
  streaming, re-iterable decoder yielding ``AudioChunk`` (float32 [C, n]) at the file's own rate.
- ``load_audio(path, *, sample_rate=16000, mono=True) -> AudioChunk``: a whole (short) file,
  resampled.
- ``Resampler(sample_rate, mono=True)``: streaming resampler, ``feed(chunk)`` / ``flush()``.
- ``check_media_file(path, what=...)`` / ``open_media(path, what=...)``: the file checks and the
  guarded ``av.open`` shared with ``facecast.media.video``.
- ``wav_truncation(path)``: (declared, present) seconds of a WAV file cut short; ``open_audio``
  warns about one (a warning, not an error: what is there is valid audio and may be all there
  is; the video then covers that part).

Loudness and voice activity of the decoded audio are in ``facecast.analysis``.

Timeline: an ``AudioSource`` counts time from the container's start (the origin media/video.py uses
for frames too), so audio and video of one file share a clock; chunk starts are derived from the
number of samples decoded, so consecutive chunks are exactly contiguous.
"""

from __future__ import annotations

import functools
import logging
import struct
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
import numpy as np

from facecast.errors import InputError
from facecast.types import AudioChunk

log = logging.getLogger(__name__)

__all__ = [
    "AudioSource",
    "Resampler",
    "check_media_file",
    "load_audio",
    "open_audio",
    "open_media",
    "wav_truncation",
    "write_wav",
]

# What a user can do about a file FFmpeg cannot read; named in several messages.
_CONVERT_HINT = "Convert it to WAV, FLAC, MP3, M4A or MP4 and try again."
_HINTS = {"video": "Give a video file (MP4, MOV, MKV, WebM ...) or convert it to MP4 (H.264) and try again."}


# --------------------------------------------------------------------------------------------
# Shared file checks (also used by facecast.media.video)
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
            f"{path}: not a readable {what} file (FFmpeg: {_ffmpeg_reason(exc)}). {_HINTS.get(what, _CONVERT_HINT)}"
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
    more channels are downmixed to stereo, normalised so that the mix never exceeds full scale);
    ``duration`` (seconds from the container, None if unknown); ``chunk_seconds``;
    ``max_seconds``; ``start`` (seconds of the first sample on the file's timeline, normally 0).

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
            downmix = _downmixer(self.sample_rate) if self._source_channels > 2 else None
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


def _downmixer(rate: int) -> av.AudioResampler:
    """>2 channels (5.1 ...) -> stereo by swresample, with its centre/surround weights normalised so
    that no output sample exceeds full scale: for float output swresample would otherwise sum
    FL + 0.71 FC + 0.71 SL (up to +7.7 dBFS), which clips in the output AAC track. For an
    integer output format swresample normalises by itself: a PyAV whose AudioResampler takes no
    resampler options gets s16 output, as loud and as peak-safe, at 16-bit precision."""
    try:
        return av.AudioResampler(format="fltp", layout="stereo", rate=rate, options={"rematrix_maxval": "1.0"})
    except TypeError:  # pragma: no cover - older PyAV
        return av.AudioResampler(format="s16p", layout="stereo", rate=rate)


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
    if container.format.name == "wav":
        cut = wav_truncation(p)
        if cut is not None:
            st = p.stat()
            _warn_truncated(str(p), st.st_size, st.st_mtime_ns, *cut)
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


def wav_truncation(path: str | Path) -> tuple[float, float] | None:
    """(seconds its header declares, seconds present) of a RIFF/WAVE file whose data chunk is cut
    short by more than 50 ms (an incomplete copy or download), else None. FFmpeg quietly reads what
    is there and even reports that as the duration, so the header is read here."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            byte_rate = 0
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                cid, n = struct.unpack("<4sI", f.read(8))
                if cid == b"fmt ":
                    fmt = f.read(min(n, 16))
                    byte_rate = struct.unpack("<I", fmt[8:12])[0] if len(fmt) >= 12 else 0
                elif cid == b"data":
                    present = size - pos - 8
                    if not byte_rate or n in (0, 0xFFFFFFFF) or present >= n - 0.05 * byte_rate:
                        return None  # whole, or a size the writer never filled in (streamed WAV)
                    return n / byte_rate, present / byte_rate
                pos += 8 + n + (n & 1)
    except (OSError, struct.error):
        return None
    return None


@functools.lru_cache(maxsize=64)
def _warn_truncated(path: str, size: int, mtime_ns: int, declared: float, present: float) -> None:
    """Warned once per file (and version of it) however often a job opens it."""
    log.warning("%s: the file is truncated: its header promises %.1f s of audio but it holds %.1f s (an "
                "incomplete copy or download?); the video covers the %.1f s there are. Re-export or "
                "re-download the file for the full length.", path, declared, present, present)


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


def write_wav(path: str | Path, samples: np.ndarray, rate: int = 16000) -> Path:
    """Float mono samples [n] (-1 ... 1, clipped) as a 16-bit PCM WAV at ``rate``, written in 10 s
    blocks. For intermediate files (evaluation, tests, benchmarks): not an atomic output."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w", format="wav") as out:
        st = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        for i in range(0, len(pcm), rate * 10):
            frame = av.AudioFrame.from_ndarray(pcm[None, i:i + rate * 10], format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for packet in st.encode(frame):
                out.mux(packet)
        for packet in st.encode():
            out.mux(packet)
    return Path(path)
