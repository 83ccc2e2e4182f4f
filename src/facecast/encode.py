"""Output stage: H.264 + AAC MP4 writing with PyAV (no subprocesses).

Public API
----------
- ``check_output_path(path) -> Path``: OutputError unless ``path`` can be an MP4/MOV we write.
- ``Encoder``: the protocol every output writer follows.
- ``Mp4Writer(path, *, fps, width, height, audio_rate, audio_channels, ...)``: streaming writer;
  atomically appears at ``path`` on a successful ``close()``, never half-written.
- ``probe_mp4(path) -> dict``: what is in a written file (for tests and checks).
- ``to_i420(frames: VideoFrames) -> I420Frames``: RGB -> yuv420p on the frames' own device.
- ``encode_jpeg(frames, quality) -> list[bytes]``: one JPEG per frame for live previews; nvJPEG on
  CUDA (torchvision), Pillow on the CPU.

Speed (2 shared CPU cores, 512x512 @ 25 fps real talking-head footage, CRF 23, best of 5):
ultrafast ~3 ms/frame (700 KiB per 5 s), superfast ~5.5 (340 KiB), veryfast ~5-7 (200 KiB),
faster ~8-9 (250 KiB); thread settings change little on 2 cores. veryfast is the default: files
~40 % smaller than superfast at the same PSNR (~39-40 dB), still >5x faster than real time.
RGB -> yuv420p: frames on the CPU are left to the encoder's own swscale context (~1-1.7
ms/frame at 512x512; a numpy or torch conversion on the CPU measured 8-24 ms/frame). Frames on
CUDA are converted there (``to_i420``, swscale's BT.601 matrix: luma within 1 level, chroma
within 3), so the host copies half the bytes and the encoders skip ~30 % of their per-frame work.
"""

from __future__ import annotations

import functools
import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

import av
import av.error
import numpy as np
import torch

from facecast.audio import Resampler
from facecast.errors import OutputError
from facecast.types import AudioChunk, I420Frames, VideoFrames

__all__ = [
    "Fmp4SegmentWriter",
    "fmp4_boxes",
    "AAC_SAMPLE_RATES",
    "SUPPORTED_EXTENSIONS",
    "Encoder",
    "Mp4Writer",
    "check_output_path",
    "probe_mp4",
    "to_i420",
    "encode_jpeg",
]

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".mp4", ".m4v", ".mov")
# Rates the MPEG-4 AAC sampling-frequency table (and FFmpeg's aac encoder) accept.
AAC_SAMPLE_RATES: tuple[int, ...] = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
)
_AAC_FRAME = 1024  # samples per AAC frame: the encoder takes exactly this many (last one may be short)
_AAC_BITRATE_PER_CHANNEL = 64_000  # plenty for speech; 128 kb/s stereo


def check_output_path(path: str | Path) -> Path:
    """The output path as a Path, or OutputError (naming it) saying what to change."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{p}: is a directory. Give a file name inside it, e.g. {p / 'output.mp4'}.")
    if p.suffix.lower() not in SUPPORTED_EXTENSIONS:
        shown = f"'{p.suffix}'" if p.suffix else "no extension"
        raise OutputError(
            f"{p}: unsupported output type ({shown}). Use one of {', '.join(SUPPORTED_EXTENSIONS)}."
        )
    parent = p.parent
    if not parent.exists():
        raise OutputError(
            f"{p}: the folder {parent} does not exist. Create it first (mkdir -p {parent}) or write elsewhere."
        )
    if not parent.is_dir():
        raise OutputError(f"{p}: {parent} is a file, not a folder. Choose an output path inside a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{p}: the folder {parent} is not writable. Choose a folder you can write to.")
    return p


@runtime_checkable
class Encoder(Protocol):
    """An output sink. ``close()`` finalises the output; ``abort()`` discards everything."""

    def write_video(self, frames: VideoFrames) -> None: ...

    def write_audio(self, chunk: AudioChunk) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


# BT.601 limited range ("studio swing"), the matrix swscale uses for rgb24 -> yuv420p and the one
# the streams are tagged with (_add_video_stream). Rows: Y, U (Cb), V (Cr); input 0..255.
_BT601 = torch.tensor([[65.481, 128.553, 24.966],
                       [-37.797, -74.203, 112.0],
                       [112.0, -93.786, -18.214]], dtype=torch.float64) / 255.0


@functools.lru_cache(maxsize=8)
def _bt601_on(device: torch.device) -> torch.Tensor:
    """The matrix, float32, on ``device``: made once (a host -> device copy cannot happen inside
    a CUDA graph capture, and the live engine captures to_i420 in its graphs)."""
    return _BT601.to(device=device, dtype=torch.float32)


def to_i420(frames: VideoFrames) -> I420Frames:
    """RGB uint8 [n, H, W, 3] -> I420Frames [n, H*3/2, W] on the same device.

    H must be a multiple of 4 and W even (PyAV's packed yuv420p array holds each H/2 x W/2
    chroma plane as H/4 rows of W).

    Chroma is the 2x2 mean of the RGB, converted (swscale's default filter gives the same to
    within 3 levels, mean 0.07; ``tests/test_encode.py`` checks it). Meant for CUDA, where it is
    a few kernels; on the CPU, swscale inside the encoder is faster.
    """
    x = frames.frames
    n, H, W, _ = x.shape
    if H % 4 or W % 2:
        raise ValueError(f"packed yuv420p needs a height divisible by 4 and an even width, got {W}x{H}")
    m = _bt601_on(x.device)
    f = x.to(torch.float32)  # [n, H, W, 3]
    out = torch.empty((n, H * 3 // 2, W), dtype=torch.uint8, device=x.device)
    y = f @ m[0] + 16.0  # [n, H, W]
    out[:, :H] = y.add_(0.5).clamp_(0, 255).to(torch.uint8)
    avg = f.reshape(n, H // 2, 2, W // 2, 2, 3).mean(dim=(2, 4))  # [n, H/2, W/2, 3]
    uv = avg @ m[1:].T + 128.0  # [n, H/2, W/2, 2]
    uv = uv.add_(0.5).clamp_(0, 255).to(torch.uint8)
    out[:, H:H + H // 4] = uv[..., 0].reshape(n, H // 4, W)
    out[:, H + H // 4:] = uv[..., 1].reshape(n, H // 4, W)
    return I420Frames(out, frames.fps, frames.first_frame)


def encode_jpeg(frames: VideoFrames, quality: int = 80) -> list[bytes]:
    """One baseline JPEG (4:2:0) per frame of RGB uint8 [n, H, W, 3]: live previews that need no
    video decoder (an ``<img>`` per frame, or MJPEG).

    CUDA frames are encoded on the GPU with nvJPEG (``torchvision.io.encode_jpeg`` on a list of
    device tensors): the pixels never cross to the host and no CPU core encodes, which matters
    on Hopper GPUs that have no NVENC. Only the bytes come back. Elsewhere, Pillow encodes on
    the CPU; that is the reference the GPU path is tested against (``tests/test_encode.py``).
    """
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be within 1 ... 100, got {quality}")
    x = frames.frames
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [n, H, W, 3], got {x.dtype} {tuple(x.shape)}")
    if x.shape[0] == 0:
        return []
    if x.device.type == "cuda":
        try:
            from torchvision.io import encode_jpeg as nvjpeg
        except ImportError as exc:
            raise RuntimeError(
                "JPEG previews of CUDA frames use nvJPEG through torchvision, which is not installed. "
                "Install the torchvision build that matches your torch (pip install torchvision), or "
                "render on the CPU."
            ) from exc
        encoded = nvjpeg([f.permute(2, 0, 1).contiguous() for f in x], quality=int(quality))
        sizes = [int(t.numel()) for t in encoded]
        flat = torch.cat([t.reshape(-1) for t in encoded]).cpu().numpy()  # one copy for the batch
        offsets = np.cumsum([0] + sizes)
        return [flat[a:b].tobytes() for a, b in zip(offsets[:-1], offsets[1:])]
    import io

    from PIL import Image

    out = []
    for img in x.detach().numpy():
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
        out.append(buf.getvalue())
    return out


def _host_frames(frames: VideoFrames | I420Frames, width: int, height: int, fps: float, next_pts: int,
                 writer: str) -> tuple[np.ndarray, str]:
    """What the encoders take: (uint8 array [n, ...] on the host, its PyAV pixel format), after
    the checks both writers make (frame rate, increasing pts, size; ``writer`` names the caller).

    CUDA RGB frames are converted to yuv420p on the GPU before the copy (half the bytes, no
    swscale on the CPU); CPU RGB frames go as they are (swscale is faster there).
    """
    if abs(frames.fps - fps) > 1e-3 * fps:
        raise ValueError(f"{type(frames).__name__} at {frames.fps} fps written to a {fps} fps {writer}")
    if frames.first_frame < next_pts:
        raise ValueError(f"video frame {frames.first_frame} arrives after frame {next_pts - 1}: pts must increase")
    if isinstance(frames, I420Frames):
        arr, fmt, shape = frames.data, "yuv420p", (height * 3 // 2, width)
    else:
        arr, fmt, shape = frames.frames, "rgb24", (height, width, 3)
        if arr.device.type == "cuda" and arr.dtype == torch.uint8 and tuple(arr.shape[1:]) == shape \
                and height % 4 == 0:
            arr, fmt, shape = to_i420(frames).data, "yuv420p", (height * 3 // 2, width)
    if arr.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != shape:
        raise ValueError(f"{fmt} frames must be [n, {', '.join(map(str, shape))}], got {tuple(arr.shape)}")
    return np.ascontiguousarray(arr.detach().cpu().numpy()), fmt


def _as_fraction(fps: float) -> Fraction:
    # 1001-based NTSC rates and odd rates such as 1350/61 (22.13 fps) survive exactly.
    return Fraction(fps).limit_denominator(10_000)


def _quality_options(codec: str, crf: int, preset: str) -> dict:
    """Encoder options for quality and speed (only the x264/x265 wrappers take crf/preset)."""
    return {"crf": str(crf), "preset": preset} if codec in ("libx264", "libx265") else {}


def _add_video_stream(container, fps: float, width: int, height: int, codec: str, crf: int, preset: str,
                      threads: int, extra: dict | None = None) -> av.VideoStream:
    """An H.264/H.265 yuv420p stream tagged BT.601 limited range. The encoder converts our RGB
    with swscale's default BT.601 matrix; say so in the stream, or players guess BT.709 for HD
    sizes and shift the colours. ``extra``: more encoder options (e.g. zerolatency, GOP)."""
    rate = _as_fraction(fps)
    options = _quality_options(codec, crf, preset)
    options.update(extra or {})
    stream = container.add_stream(codec, rate=rate, options=options)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    ctx = stream.codec_context
    ctx.time_base = 1 / rate
    ctx.thread_count = threads
    ctx.colorspace = 6  # AVCOL_SPC_SMPTE170M (BT.601)
    ctx.color_primaries = 6  # AVCOL_PRI_SMPTE170M
    ctx.color_trc = 6  # AVCOL_TRC_SMPTE170M
    ctx.color_range = 1  # AVCOL_RANGE_MPEG (limited)
    return stream


def _check_format(width: int, height: int, fps: float) -> None:
    """H.264 yuv420p needs positive, even frame sides and a positive rate."""
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"width and height must be positive and even for yuv420p, got {width}x{height}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")


class _AacTrack:
    """An AAC stream fed with AudioChunks placed on the timeline by their ``start``: converts
    mono/stereo to the track's channels, fills gaps with silence (a chunk keeps its place),
    rejects overlaps, cuts 1024-sample AAC frames and stamps their pts. Shared by Mp4Writer and
    Fmp4SegmentWriter. ``mux`` sends packets to the container."""

    def __init__(self, stream, rate: int, channels: int, mux):
        self.stream, self.rate, self.channels, self._mux = stream, rate, channels, mux
        self._layout = "mono" if channels == 1 else "stereo"
        self._buf = np.zeros((channels, 0), np.float32)  # < 1 AAC frame
        self._next = 0  # timeline sample index of _buf[:, 0]

    def push(self, chunk: AudioChunk) -> None:
        if chunk.num_samples == 0:
            return
        samples = chunk.samples.astype(np.float32, copy=False)
        if samples.shape[0] != self.channels:  # mono <-> stereo: average down, duplicate up
            mono = samples.mean(axis=0, keepdims=True)
            samples = mono if self.channels == 1 else np.repeat(mono, 2, axis=0)
        start = round(chunk.start * self.rate)
        at = self._next + self._buf.shape[1]  # where the buffer ends on the timeline
        if start > at + 1:
            samples = np.concatenate([np.zeros((self.channels, start - at), np.float32), samples], axis=1)
        elif start < at - 1:
            raise ValueError(f"audio chunk at {chunk.start:.3f} s overlaps audio already written up to "
                             f"{at / self.rate:.3f} s")
        buf = np.concatenate([self._buf, samples], axis=1)
        full = (buf.shape[1] // _AAC_FRAME) * _AAC_FRAME
        for i in range(0, full, _AAC_FRAME):
            self._encode(buf[:, i:i + _AAC_FRAME])
        self._buf = buf[:, full:]

    def flush(self) -> None:
        """Encode the remainder (the one short frame AAC allows: the last) and drain the encoder."""
        if self._buf.shape[1]:
            self._encode(self._buf)
            self._buf = self._buf[:, :0]
        self._mux(self.stream.encode(None))

    def _encode(self, samples: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=self._layout)
        frame.sample_rate = self.rate
        frame.pts = self._next
        frame.time_base = Fraction(1, self.rate)
        self._next += samples.shape[1]
        self._mux(self.stream.encode(frame))


class _SegmentEncoders:
    """H.264 encoded in independent segments by a pool of threads, muxed back in order.

    One libx264 encoder tops out at a few hundred 512x512 frames/s (the H100 box: ~300-420),
    while a GPU renders thousands, so an offline job is encode-bound. Here every ``segment``
    consecutive frames get their own encoder: each segment starts with an IDR frame and
    references nothing outside itself (a closed GOP), all encoders have the same settings, so
    their SPS/PPS equal the output stream's (its extradata) and the segments' packets, in order,
    form one valid stream. PyAV releases the GIL inside swscale and libx264, so the threads run
    in parallel; the Python part of each frame (hand-over, frame and packet objects) does not.
    On the H100 box 8-16 threads stop at ~1,250 frames/s at 512x512 from RGB and ~1,650 from
    yuv420p made on the GPU (``to_i420``), on ~7 of its 16 cores; a busy Python thread beside
    them costs far more (GIL hand-over waits; worker processes fed through shared memory were
    slower still: docs/benchmarks.md). Memory
    is bounded: at most ``workers + 1`` segments of frames are held (the one being filled and
    those being encoded).

    Timestamps stay exact: frames keep their pts, and a segment's first decode timestamp (its
    pts minus the B-frame delay, the same in every segment) follows the previous segment's last.
    """

    def __init__(self, make_context, stream, workers: int, segment: int, mux):
        from concurrent.futures import ThreadPoolExecutor

        self._make_context, self._stream, self._mux = make_context, stream, mux
        self._segment = max(1, int(segment))
        self._workers = max(1, int(workers))
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="facecast-h264")
        self._pending: list[tuple[np.ndarray, int, str]] = []  # frame, its pts, its pixel format
        self._queued: list = []  # futures of segments' packet lists, in stream order
        self._last_dts: int | None = None

    def push(self, data: np.ndarray, fmt: str, first_pts: int) -> None:
        """data: frames [n, ...] in PyAV pixel format ``fmt`` (rgb24 or yuv420p)."""
        for k in range(data.shape[0]):
            self._pending.append((data[k], first_pts + k, fmt))
            if len(self._pending) >= self._segment:
                self._submit()
        self._drain(block=False)

    def flush(self) -> None:
        if self._pending:
            self._submit()
        self._drain(block=True)
        self._pool.shutdown(wait=True)

    def abort(self) -> None:
        for fut in self._queued:
            fut.cancel()
        self._queued.clear()
        self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self) -> None:
        frames, self._pending = self._pending, []
        self._queued.append(self._pool.submit(self._encode, frames))
        # Back-pressure: never more segments in flight than workers (plus the one filling).
        while len(self._queued) > self._workers:
            self._mux_next()

    def _drain(self, block: bool) -> None:
        while self._queued and (block or self._queued[0].done()):
            self._mux_next()

    def _mux_next(self) -> None:
        packets = self._queued.pop(0).result()
        for packet in packets:
            if self._last_dts is not None and packet.dts is not None and packet.dts <= self._last_dts:
                raise OutputError(f"segment encoders produced decode timestamps out of order "
                                  f"({packet.dts} after {self._last_dts}); encode with workers=1")
            self._last_dts = packet.dts if packet.dts is not None else self._last_dts
            packet.stream = self._stream
        self._mux(packets)

    def _encode(self, frames: list[tuple[np.ndarray, int, str]]) -> list:
        """Runs on a pool thread: one fresh encoder for the segment, flushed at its end."""
        ctx = self._make_context()
        packets = []
        for data, pts, fmt in frames:
            frame = av.VideoFrame.from_ndarray(data, format=fmt)
            frame.pts = pts
            packets.extend(ctx.encode(frame))
        packets.extend(ctx.encode(None))
        return packets


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
        threads (see ``_SegmentEncoders``): for many-core machines, where one encoder is the
        bottleneck. Output is one ordinary H.264 stream either way.

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
    ) -> None:
        _check_format(width, height, fps)
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if audio_channels not in (1, 2):
            raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels}")
        self.path = check_output_path(path)
        self.fps = float(fps)
        self.width, self.height = int(width), int(height)
        self.audio_rate = audio_rate
        self.audio_channels = audio_channels
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._closed = False
        self._next_pts = 0  # first video pts not yet written
        self._frames_written = 0

        fmt = "mov" if self.path.suffix.lower() == ".mov" else "mp4"
        try:
            # faststart: moov atom up front so players/browsers can start before the download ends.
            self._container = av.open(str(self._tmp), mode="w", format=fmt, options={"movflags": "+faststart"})
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(
                f"{self.path}: cannot create the output file ({exc}). Choose a folder you can write to."
            ) from exc
        try:
            self._video = self._add_video(codec, crf, preset, threads)
            self._audio = self._add_audio() if audio_rate is not None else None
            self._segments = None
            if workers > 1:
                settings = (codec, crf, preset, threads or 2)
                self._segments = _SegmentEncoders(lambda: self._segment_context(*settings), self._video,
                                                  workers, segment_frames, self._mux)
        except BaseException:
            self.abort()
            raise

    # -- setup -------------------------------------------------------------------------------

    def _add_video(self, codec: str, crf: int, preset: str, threads: int) -> av.VideoStream:
        return _add_video_stream(self._container, self.fps, self.width, self.height, codec, crf, preset, threads)

    def _segment_context(self, codec: str, crf: int, preset: str, threads: int) -> av.CodecContext:
        """A standalone encoder with the output stream's settings (same SPS/PPS: its extradata
        equals the stream's, so its packets fit the stream)."""
        ctx = av.CodecContext.create(codec, "w")
        ref = self._video.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = ref.width, ref.height, ref.pix_fmt
        ctx.time_base, ctx.framerate = ref.time_base, _as_fraction(self.fps)
        ctx.thread_count = threads
        ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range = (
            ref.colorspace, ref.color_primaries, ref.color_trc, ref.color_range)
        ctx.flags = ref.flags  # global header, as the MP4 muxer set on the stream
        ctx.options = _quality_options(codec, crf, preset)
        return ctx

    def _add_audio(self) -> av.AudioStream:
        assert self.audio_rate is not None
        self._aac_rate = self.audio_rate if self.audio_rate in AAC_SAMPLE_RATES else 48000
        self._resampler = Resampler(self._aac_rate, mono=False) if self._aac_rate != self.audio_rate else None
        stream = self._container.add_stream("aac", rate=self._aac_rate)
        ctx = stream.codec_context
        ctx.layout = "mono" if self.audio_channels == 1 else "stereo"
        ctx.format = "fltp"
        ctx.bit_rate = _AAC_BITRATE_PER_CHANNEL * self.audio_channels
        ctx.time_base = Fraction(1, self._aac_rate)
        self._track = _AacTrack(stream, self._aac_rate, self.audio_channels, self._mux)
        self._a_in_next: float | None = None  # expected start of the next input chunk (s)
        return stream

    # -- writing -----------------------------------------------------------------------------

    def write_video(self, frames: VideoFrames | I420Frames) -> None:
        """Encode frames (RGB uint8 [n, height, width, 3], or I420Frames) at pts first_frame + k."""
        self._check_open()
        data, fmt = _host_frames(frames, self.width, self.height, self.fps, self._next_pts, "Mp4Writer")
        if self._segments is not None:
            src = frames.data if isinstance(frames, I420Frames) else frames.frames
            if src.device.type == "cpu" and np.shares_memory(data, src.numpy()):
                data = data.copy()  # encoded later, on a pool thread: the caller may reuse its buffer
            self._segments.push(data, fmt, frames.first_frame)
            self._next_pts = frames.first_frame + data.shape[0]
            self._frames_written += data.shape[0]
            return
        for k in range(data.shape[0]):
            frame = av.VideoFrame.from_ndarray(data[k], format=fmt)
            frame.pts = frames.first_frame + k
            self._mux(self._video.encode(frame))
        self._next_pts = frames.first_frame + data.shape[0]
        self._frames_written += data.shape[0]

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

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def probe_mp4(path: str | Path) -> dict:
    """Facts about a written file (reads every packet; decodes the audio to count samples).

    Keys: format, duration (s, container); video_codec, pix_fmt, width, height, fps (average
    rate), num_frames (packets), video_duration (s, from frame timestamps: last pts + one frame
    - first pts), colorspace; audio_codec, audio_rate, audio_channels, audio_duration (s, the
    track's edit-list duration: what players play), audio_samples (decoded by FFmpeg: priming
    removed, but the last AAC frame is not trimmed, so up to 1023 more than the duration) --
    audio keys are None without an audio track.
    """
    info: dict = dict.fromkeys(
        ["video_codec", "pix_fmt", "width", "height", "fps", "num_frames", "video_duration", "colorspace",
         "audio_codec", "audio_rate", "audio_channels", "audio_samples", "audio_duration"]
    )
    with av.open(str(path)) as container:
        info["format"] = container.format.name
        info["duration"] = container.duration / av.time_base if container.duration is not None else None
        if container.streams.video:
            v = container.streams.video[0]
            ctx = v.codec_context
            info.update(
                video_codec=ctx.name, pix_fmt=ctx.pix_fmt, width=ctx.width, height=ctx.height,
                fps=float(v.average_rate) if v.average_rate else None, colorspace=int(ctx.colorspace),
            )
            pts = [p.pts for p in container.demux(v) if p.pts is not None]
            info["num_frames"] = len(pts)
            if pts and info["fps"]:
                info["video_duration"] = float((max(pts) - min(pts)) * v.time_base) + 1.0 / info["fps"]
    with av.open(str(path)) as container:
        if container.streams.audio:
            a = container.streams.audio[0]
            info.update(audio_codec=a.codec_context.name, audio_rate=a.codec_context.sample_rate,
                        audio_channels=a.codec_context.channels)
            if a.duration is not None and a.time_base is not None:
                info["audio_duration"] = float(a.duration * a.time_base)
            info["audio_samples"] = sum(f.samples for f in container.decode(a))
    return info


# --------------------------------------------------------------------------------------------
# Fragmented MP4 for live streaming (Media Source Extensions)
# --------------------------------------------------------------------------------------------


class _ByteSink:
    """A write-only, non-seekable file object: the muxer then writes strictly sequentially
    (init segment, then moof+mdat fragments) and we hand the bytes out as they come."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts = []
        return out


class Fmp4SegmentWriter:
    """H.264 (yuv420p) + AAC as a fragmented MP4 produced in memory, piece by piece.

    The first bytes returned are the init segment (``ftyp`` + ``moov`` with no samples); after
    that only ``moof`` + ``mdat`` fragments. Every fragment starts with an IDR frame (a keyframe
    every ``fragment_frames`` frames and at the first frame), so a Media Source Extensions
    player can start at any fragment after the init segment. The concatenation of everything
    returned is a valid MP4 file (``movflags=frag_keyframe+empty_moov+default_base_moof``,
    no ``mfra`` trailer).

    fps, width, height: video format; frames are VideoFrames uint8 [n, height, width, 3] RGB
        (or I420Frames; CUDA RGB frames are converted on the GPU, as in Mp4Writer) with pts
        ``first_frame + k`` (1/fps units), increasing, starting anywhere >= 0.
    audio_rate, audio_channels: the AudioChunks' rate (one of AAC_SAMPLE_RATES) and the track's
        channels (1 or 2; chunks with other channel counts are mixed/duplicated); None = no
        audio track. Audio is placed by ``AudioChunk.start``; the track starts at 0 s and gaps
        are filled with silence, as in Mp4Writer.
    crf, preset, codec: as Mp4Writer; the encoder runs with ``tune=zerolatency`` (no B-frames,
        no look-ahead), so a frame's packet leaves the encoder as soon as it is encoded.

    Latency: the muxer closes a fragment when the next fragment's keyframe reaches it (FFmpeg's
    mov muxer cannot be told to flush from PyAV), so the bytes of fragment k come out of the
    ``write`` call that carries the first one or two frames of fragment k + 1, or of ``close``.
    ``write``/``close`` return b"" when no new bytes are ready.
    """

    def __init__(
        self,
        *,
        fps: float,
        width: int,
        height: int,
        audio_rate: int | None = 48000,
        audio_channels: int = 1,
        crf: int = 23,
        preset: str = "veryfast",
        codec: str = "libx264",
        fragment_frames: int = 12,
        threads: int = 0,
    ) -> None:
        _check_format(width, height, fps)
        if fragment_frames < 1:
            raise ValueError(f"fragment_frames must be >= 1, got {fragment_frames}")
        if audio_rate is not None and audio_rate not in AAC_SAMPLE_RATES:
            raise ValueError(f"audio_rate {audio_rate} Hz is not an AAC rate; use one of {AAC_SAMPLE_RATES}")
        if audio_channels not in (1, 2):
            raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels}")
        self.fps = float(fps)
        self.width, self.height = int(width), int(height)
        self.audio_rate = audio_rate
        self.audio_channels = audio_channels
        self.fragment_frames = int(fragment_frames)
        self._closed = False
        self._first_pts: int | None = None
        self._next_pts = 0
        self._sink = _ByteSink()
        self._container = av.open(
            self._sink, mode="w", format="mp4",
            options={"movflags": "frag_keyframe+empty_moov+default_base_moof+skip_trailer",
                     # Hand packets to the muxer as they come (no cross-stream buffering) and
                     # push each fragment's bytes out at once.
                     "max_interleave_delta": "1", "flush_packets": "1"},
        )
        extra = {"tune": "zerolatency", "g": str(self.fragment_frames), "keyint_min": str(self.fragment_frames),
                 "sc_threshold": "0"} if codec == "libx264" else {}
        self._video = _add_video_stream(self._container, self.fps, self.width, self.height, codec, crf, preset,
                                        threads, extra)
        self._audio = None
        if audio_rate is not None:
            a = self._container.add_stream("aac", rate=audio_rate)
            actx = a.codec_context
            actx.layout = "mono" if audio_channels == 1 else "stereo"
            actx.format = "fltp"
            actx.bit_rate = _AAC_BITRATE_PER_CHANNEL * audio_channels
            actx.time_base = Fraction(1, audio_rate)
            self._audio = a
            self._track = _AacTrack(a, audio_rate, audio_channels, self._container.mux)

    def write(self, video: VideoFrames | I420Frames | None = None, audio: AudioChunk | None = None) -> bytes:
        """Encode ``video`` (may be None or empty) and ``audio`` (may be None); return the bytes
        the muxer produced meanwhile (the init segment first, then whole fragments)."""
        if self._closed:
            raise ValueError("Fmp4SegmentWriter is already closed")
        if video is not None and video.num_frames:
            # one device -> host copy for the whole chunk
            data, fmt = _host_frames(video, self.width, self.height, self.fps, self._next_pts, "Fmp4SegmentWriter")
            if audio is None or not audio.num_samples:
                self._encode_frames(data, fmt, video.first_frame)
                return self._sink.take()
            # Interleave: each frame, then the audio up to its end, so every fragment carries
            # the sound of its own frames rather than all audio piling into a later one.
            a0 = round(audio.start * audio.sample_rate)
            done = 0
            for k in range(video.num_frames):
                self._encode_frames(data[k:k + 1], fmt, video.first_frame + k)
                upto = round((video.first_frame + k + 1) / video.fps * audio.sample_rate) - a0
                upto = audio.num_samples if k == video.num_frames - 1 else min(max(upto, done), audio.num_samples)
                if upto > done:
                    self._write_audio(AudioChunk(audio.samples[:, done:upto], audio.sample_rate,
                                                 (a0 + done) / audio.sample_rate))
                    done = upto
        elif audio is not None and audio.num_samples:
            self._write_audio(audio)
        return self._sink.take()

    def close(self) -> bytes:
        """Flush the encoders, write the last fragment and return the remaining bytes."""
        if self._closed:
            return b""
        self._closed = True
        try:
            if self._audio is not None:
                self._track.flush()
            self._container.mux(self._video.encode(None))
        finally:
            self._container.close()
        return self._sink.take()

    def _encode_frames(self, data: np.ndarray, fmt: str, first_frame: int) -> None:
        """data: [n, ...] host frames in PyAV pixel format ``fmt``, pts first_frame + k."""
        if self._first_pts is None:
            self._first_pts = first_frame
        for k in range(data.shape[0]):
            pts = first_frame + k
            frame = av.VideoFrame.from_ndarray(data[k], format=fmt)
            frame.pts = pts
            if (pts - self._first_pts) % self.fragment_frames == 0:
                frame.pict_type = av.video.frame.PictureType.I  # IDR: a fragment starts here
            self._container.mux(self._video.encode(frame))
        self._next_pts = first_frame + data.shape[0]

    def _write_audio(self, chunk: AudioChunk) -> None:
        if self._audio is None:
            raise ValueError("this Fmp4SegmentWriter was created without audio (audio_rate=None)")
        if chunk.sample_rate != self.audio_rate:
            raise ValueError(f"AudioChunk at {chunk.sample_rate} Hz written to a {self.audio_rate} Hz Fmp4SegmentWriter")
        self._track.push(chunk)


def fmp4_boxes(data: bytes) -> list[tuple[str, int]]:
    """Top-level ISO-BMFF boxes of ``data`` as (type, size): e.g. [('ftyp', 28), ('moov', 1210),
    ('moof', 412), ('mdat', 5487), ...]. Stops at a truncated box."""
    out = []
    i = 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i:i + 4], "big")
        kind = data[i + 4:i + 8].decode("latin-1")
        if size == 1 and i + 16 <= len(data):
            size = int.from_bytes(data[i + 8:i + 16], "big")
        if size < 8 or i + size > len(data):
            break
        out.append((kind, size))
        i += size
    return out
