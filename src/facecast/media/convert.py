"""Frame conversions for the encoders and previews: RGB -> yuv420p (BT.601) on the frames' own
device, JPEG previews, and the host arrays the H.264 writers take.

Public API
----------
- ``to_i420(frames: VideoFrames) -> I420Frames``: RGB -> yuv420p on the frames' own device.
- ``encode_jpeg(frames, quality) -> list[bytes]``: one JPEG per frame for live previews; nvJPEG on
  CUDA (torchvision), Pillow on the CPU.
- ``host_frames(frames, width, height, fps, next_pts, writer) -> (array, pix_fmt)``: what the
  writers of ``facecast.media.mp4`` and ``facecast.media.fmp4`` hand to their encoders.

RGB -> yuv420p: frames on the CPU are left to the encoder's own swscale context (~1-1.7
ms/frame at 512x512; a numpy or torch conversion on the CPU measured 8-24 ms/frame). Frames on
CUDA are converted there (``to_i420``, swscale's BT.601 matrix: luma within 1 level, chroma
within 3), so the host copies half the bytes and the encoders skip ~30 % of their per-frame work.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from facecast.types import I420Frames, VideoFrames

__all__ = ["encode_jpeg", "host_frames", "to_i420"]


# BT.601 limited range ("studio swing"), the matrix swscale uses for rgb24 -> yuv420p and the one
# the streams are tagged with (h264.add_video_stream). Rows: Y, U (Cb), V (Cr); input 0..255.
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
    within 3 levels, mean 0.07; ``tests/test_convert.py`` checks it). Meant for CUDA, where it is
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
    the CPU; that is the reference the GPU path is tested against (``tests/test_convert.py``).
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


def host_frames(frames: VideoFrames | I420Frames, width: int, height: int, fps: float, next_pts: int,
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

