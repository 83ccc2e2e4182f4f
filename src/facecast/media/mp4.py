"""Output stage: H.264 + AAC MP4 files written with PyAV (no subprocesses).

Public API
----------
- ``check_output_path(path, inputs=()) -> Path``: OutputError unless ``path`` can be an MP4/MOV
  we write (folder exists, not one of the job's ``inputs``: ``facecast.outputs``).
- ``prepare_output(path, inputs=()) -> Path``: the same check, then the sweep of a partial file a
  killed job left for ``path`` (``sweep_partial``).
- ``SUPPORTED_EXTENSIONS``: the file types ``Mp4Writer`` writes.
- ``Encoder``: the protocol every output writer follows.
- ``Mp4Writer(path, *, fps, width, height, audio_rate, audio_channels, ...)``: streaming writer;
  atomically appears at ``path`` on a successful ``close()``, never half-written. While it writes,
  it holds a lock on its hidden ``.NAME.partial.EXT`` file (``partial_path``): a second job
  writing the same output is refused, and a partial nobody holds is stale (a job killed with
  SIGKILL) and swept by the next job for that output.

The H.264 settings and parallel segment encoders are in ``facecast.media.h264``, the AAC track in
``facecast.media.aac``, the frame conversion in ``facecast.media.convert`` (speeds noted there).
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no locks; a partial file is always taken as stale
    fcntl = None
from types import TracebackType
from typing import Protocol, runtime_checkable

import av
import av.error
import numpy as np

from facecast.audio import Resampler
from facecast.errors import OutputError
from facecast.options import EncodeOptions
from facecast.outputs import check_output_file
from facecast.media.aac import AAC_SAMPLE_RATES, AacTrack, add_aac_stream
from facecast.media.convert import host_frames
from facecast.media.h264 import (BT601_TAGS, EncodedPacket, SegmentEncoders, StreamSettings, add_video_stream,
                                 as_fraction, check_format, segment_context, segment_length, video_frame)
from facecast.types import AudioChunk, I420Frames, VideoFrames

__all__ = ["SUPPORTED_EXTENSIONS", "Encoder", "Mp4Writer", "check_output_path", "partial_path", "prepare_output",
           "sweep_partial"]

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".mp4", ".m4v", ".mov")


def check_output_path(path: str | Path, inputs=()) -> Path:
    """The output path as a Path, or OutputError (naming it) saying what to change: a type we
    write, in an existing writable folder, and none of ``inputs`` ((label, path) pairs)."""
    return check_output_file(path, suffixes=SUPPORTED_EXTENSIONS, inputs=inputs)


def partial_path(path: str | Path) -> Path:
    """The hidden file an output is written to until it is finished: ``.NAME.partial.EXT``."""
    p = Path(path)
    return p.with_name(f".{p.stem}.partial{p.suffix}")


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on an open file (released when it is closed, or the process dies)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks
        return True


def sweep_partial(path: str | Path) -> None:
    """Remove the partial file a killed job left for ``path``. OutputError if a running job holds
    it (two jobs writing the same output)."""
    tmp = partial_path(path)
    try:
        fd = os.open(tmp, os.O_RDONLY)
    except OSError:  # none (or not ours to read): nothing to sweep
        return
    try:
        if not _try_lock(fd):
            raise OutputError(f"{path}: another facecast job is writing this file right now. Wait for it to "
                              "finish, or choose another output path.")
        tmp.unlink(missing_ok=True)
    finally:
        os.close(fd)


def prepare_output(path: str | Path, inputs=()) -> Path:
    """``check_output_path``, then ``sweep_partial``: for a job about to write ``path``."""
    p = check_output_path(path, inputs)
    sweep_partial(p)
    return p


@runtime_checkable
class Encoder(Protocol):
    """An output sink. ``close()`` finalises the output; ``abort()`` discards everything."""

    def write_video(self, frames: VideoFrames) -> None: ...

    def write_audio(self, chunk: AudioChunk) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class Mp4Writer:
    """Streaming H.264 (yuv420p) + AAC writer for .mp4/.m4v/.mov.

    fps: frame rate (video pts = VideoFrames.first_frame + k in units of 1/fps).
    width, height: even frame size; frames must be VideoFrames uint8 [n, height, width, 3] RGB
        (on any device: CUDA frames are converted to yuv420p on the GPU) or I420Frames.
    audio_rate, audio_channels: rate/channels of the AudioChunks that will be written
        (audio_rate None: no audio track). Chunks at another rate are rejected; a rate AAC cannot
        carry is resampled to 48 kHz inside the writer. Audio pts come from AudioChunk.start:
        the track starts at 0 s (leading silence is filled in) and gaps between chunks are
        filled with silence, so sound stays where the timeline puts it.
    crf, preset, codec, threads: encoder settings (threads 0 = automatic).
    workers, segment_frames: with workers > 1, video is encoded in independent segments of
        ``segment_frames`` frames (each starts with a keyframe) by that many encoders in parallel
        threads (see ``SegmentEncoders``): for many-core machines, where one encoder is the
        bottleneck. Segments are shortened at large frame sizes so that the frames the encoders
        hold stay under ~1 GiB (``h264.segment_length``). Output is one ordinary H.264 stream either way.

    Output goes to a hidden ``.<name>.partial<ext>`` file next to ``path`` and is renamed onto
    ``path`` only by a successful ``close()``; an exception inside ``with`` or ``abort()`` removes
    it. Frames and audio are encoded as they arrive; nothing is buffered beyond one AAC frame.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float,
        width: int,
        height: int,
        audio_rate: int | None = None,
        audio_channels: int = 1,
        crf: int = 23,
        preset: str = "veryfast",
        codec: str = "libx264",
        threads: int = 0,
        workers: int = 1,
        segment_frames: int = 50,
        colour: tuple[int, int, int, int] = BT601_TAGS,
    ) -> None:
        check_format(width, height, fps)
        EncodeOptions(crf=crf, preset=preset, codec=codec)  # OptionError for a bad crf/preset/codec
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if audio_channels not in (1, 2):
            raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels}")
        self.path = check_output_path(path)
        self.fps = float(fps)
        self.width, self.height = int(width), int(height)
        self.audio_rate = audio_rate
        self.audio_channels = audio_channels
        sweep_partial(self.path)
        self._tmp = partial_path(self.path)
        self._lock: int | None = None
        self._closed = False
        self._next_pts = 0  # first video pts not yet written
        self._frames_written = 0
        self._last_dts: int | None = None
        self._settings = (codec, crf, preset, colour)

        fmt = "mov" if self.path.suffix.lower() == ".mov" else "mp4"
        try:
            # Created (and locked) here, so that it is ours before FFmpeg writes into it; the lock
            # is held until the file is finished or dropped (see sweep_partial).
            self._lock = os.open(self._tmp, os.O_RDONLY | os.O_CREAT, 0o644)
            if not _try_lock(self._lock):  # another job started on the same output just now
                self._unlock()
                raise OutputError(f"{self.path}: another facecast job is writing this file right now. Wait for "
                                  "it to finish, or choose another output path.")
            # faststart: moov atom up front so players/browsers can start before the download ends.
            self._container = av.open(str(self._tmp), mode="w", format=fmt, options={"movflags": "+faststart"})
        except (av.error.FFmpegError, OSError) as exc:
            self._unlock()
            self._tmp.unlink(missing_ok=True)
            raise OutputError(
                f"{self.path}: cannot create the output file ({exc}). Choose a folder you can write to."
            ) from exc
        try:
            self._video = add_video_stream(self._container, self.fps, self.width, self.height, codec, crf, preset,
                                           threads, colour=colour)
            self._audio = self._add_audio() if audio_rate is not None else None
            self._segments = None
            if workers > 1:
                # Each segment's own encoder has the output stream's settings (same SPS/PPS: its
                # extradata equals the stream's, so its packets fit the stream).
                settings = self.stream_settings(threads or 2)
                segment = segment_length(segment_frames, workers, self.width, self.height)
                self._segments = SegmentEncoders(lambda: segment_context(settings), self._video,
                                                  workers, segment, self._mux)
        except BaseException:
            self.abort()
            raise

    # -- setup -------------------------------------------------------------------------------

    def stream_settings(self, threads: int = 1) -> StreamSettings:
        """The video stream's settings, for encoders elsewhere (threads, processes) whose packets
        ``write_encoded`` takes."""
        codec, crf, preset, colour = self._settings
        return StreamSettings(codec, crf, preset, self.fps, self.width, self.height, colour,
                              int(self._video.codec_context.flags), threads)

    def _add_audio(self) -> av.AudioStream:
        assert self.audio_rate is not None
        self._aac_rate = self.audio_rate if self.audio_rate in AAC_SAMPLE_RATES else 48000
        self._resampler = Resampler(self._aac_rate, mono=False) if self._aac_rate != self.audio_rate else None
        stream = add_aac_stream(self._container, self._aac_rate, self.audio_channels)
        self._track = AacTrack(stream, self._aac_rate, self.audio_channels, self._mux)
        self._a_in_next: float | None = None  # expected start of the next input chunk (s)
        return stream

    # -- writing -----------------------------------------------------------------------------

    def write_video(self, frames: VideoFrames | I420Frames, *, handed_over: bool = False) -> None:
        """Encode frames (RGB uint8 [n, height, width, 3], or I420Frames) at pts first_frame + k.
        ``handed_over``: the caller never touches these frames again, so the segment encoders
        may read them later as they are (no defensive copy: ~1-2 ms a 1080p frame)."""
        self._check_open()
        data, fmt = host_frames(frames, self.width, self.height, self.fps, self._next_pts, "Mp4Writer")
        if self._segments is not None:
            src = frames.data if isinstance(frames, I420Frames) else frames.frames
            if not handed_over and src.device.type == "cpu" and np.shares_memory(data, src.numpy()):
                data = data.copy()  # encoded later, on a pool thread: the caller may reuse its buffer
            self._segments.push(data, fmt, frames.first_frame)
            self._next_pts = frames.first_frame + data.shape[0]
            self._frames_written += data.shape[0]
            return
        for k in range(data.shape[0]):
            self._mux(self._video.encode(video_frame(data[k], fmt, frames.first_frame + k)))
        self._next_pts = frames.first_frame + data.shape[0]
        self._frames_written += data.shape[0]

    def write_encoded(self, packets: list[EncodedPacket], frames: int) -> None:
        """Mux video packets encoded elsewhere (``stream_settings``' encoders; each run of them
        starts with an IDR frame), ``frames`` frames' worth, in stream order."""
        self._check_open()
        rate = as_fraction(self.fps)
        out = []
        for e in packets:
            if self._last_dts is not None and e.dts <= self._last_dts:
                raise OutputError(f"{self.path}: encoded packets arrived out of order ({e.dts} after {self._last_dts})")
            self._last_dts = e.dts
            p = av.Packet(e.data)
            p.pts, p.dts, p.time_base, p.is_keyframe = e.pts, e.dts, 1 / rate, e.keyframe
            p.stream = self._video
            out.append(p)
        self._mux(out)
        self._next_pts += frames
        self._frames_written += frames

    def write_audio(self, chunk: AudioChunk) -> None:
        """Encode audio float32 [C, n] at ``audio_rate``, placed at ``chunk.start`` seconds."""
        self._check_open()
        if self._audio is None:
            raise ValueError("this Mp4Writer was created without audio (audio_rate=None)")
        if chunk.sample_rate != self.audio_rate:
            raise ValueError(
                f"AudioChunk at {chunk.sample_rate} Hz written to an Mp4Writer for {self.audio_rate} Hz"
            )
        samples = chunk.samples.astype(np.float32, copy=False)
        if samples.shape[0] != self.audio_channels:
            # Mono <-> stereo: average down, duplicate up.
            mono = samples.mean(axis=0, keepdims=True)
            samples = mono if self.audio_channels == 1 else np.repeat(mono, 2, axis=0)
        chunk = AudioChunk(samples, chunk.sample_rate, chunk.start)
        if self._resampler is None:
            self._push_audio(chunk)
            return
        if self._a_in_next is not None and abs(chunk.start - self._a_in_next) > 1.0 / chunk.sample_rate:
            # A gap in the input: finish the resampled run, then start a new one at the new time.
            self._push_audio(self._resampler.flush())
        self._a_in_next = chunk.end
        self._push_audio(self._resampler.feed(chunk))

    def _push_audio(self, chunk: AudioChunk) -> None:
        self._track.push(chunk)

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            self._container.mux(packets)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(
                f"{self.path}: writing failed ({exc}). Check free disk space and permissions."
            ) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"Mp4Writer for {self.path} is already closed")

    # -- finishing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the encoders, finish the file and move it onto ``path``."""
        if self._closed:
            return
        ok = False
        try:
            if self._frames_written == 0:
                raise ValueError(f"no video frames were written to {self.path}; nothing to save")
            if self._audio is not None:
                if self._resampler is not None:
                    self._push_audio(self._resampler.flush())
                self._track.flush()
            if self._segments is not None:
                self._segments.flush()
            else:
                self._mux(self._video.encode(None))
            self._closed = True
            self._container.close()
            os.replace(self._tmp, self.path)
            self._unlock()
            ok = True
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(
                f"{self.path}: could not finish the file ({exc}). Check free disk space and permissions."
            ) from exc
        finally:
            if not ok:
                self._closed = False
                self.abort()

    def abort(self) -> None:
        """Stop and delete the partial output; ``path`` is left untouched."""
        if self._closed:
            return
        self._closed = True
        if getattr(self, "_segments", None) is not None:
            self._segments.abort()
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError):
            pass  # the file is being thrown away; a failure to finalise it does not matter
        finally:
            self._tmp.unlink(missing_ok=True)
            self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
