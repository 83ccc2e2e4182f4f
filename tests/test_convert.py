"""facecast.media.convert: RGB -> yuv420p against swscale, JPEG previews (CPU and nvJPEG)."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import torch
from conftest import media

from facecast.media import encode_jpeg, to_i420
from facecast.types import I420Frames, VideoFrames

W, H = 128, 96


def _frames(n: int, fps: float, first: int = 0) -> VideoFrames:
    """A red square moving over a grey gradient: uint8 [n, H, W, 3]."""
    imgs = np.empty((n, H, W, 3), np.uint8)
    imgs[:] = np.linspace(40, 200, W, dtype=np.uint8)[None, None, :, None]
    for k in range(n):
        x = (first + k) * 2 % (W - 24)
        imgs[k, 30:54, x : x + 24] = (220, 30, 30)
    return VideoFrames(torch.from_numpy(imgs), fps, first)


# -- yuv420p made on the rendering device (to_i420) --------------------------------------------


def _swscale_i420(rgb: np.ndarray) -> np.ndarray:
    """The CPU reference: FFmpeg's own rgb24 -> yuv420p (what the encoder does to RGB input)."""
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()


def test_to_i420_matches_swscale_on_a_real_portrait():
    """to_i420 is the code CUDA runs (torch, device-agnostic); here on the CPU against swscale."""
    from PIL import Image

    img = np.asarray(Image.open(media("portrait/sam_512.jpg")).convert("RGB"))[:508, :506]
    i420 = to_i420(VideoFrames(torch.from_numpy(img.copy())[None], 25.0, 7))
    assert isinstance(i420, I420Frames) and i420.first_frame == 7 and i420.size == (506, 508)
    ref = _swscale_i420(img)
    assert i420.data.shape == (1,) + ref.shape
    d = np.abs(i420.data[0].numpy().astype(int) - ref.astype(int))
    Hh = img.shape[0]
    assert d[:Hh].max() <= 1 and d[:Hh].mean() < 0.02  # luma: same matrix, rounding only
    assert d[Hh:].max() <= 4 and d[Hh:].mean() < 0.2   # chroma: 2x2 mean vs swscale's filter
    with pytest.raises(ValueError, match="divisible by 4"):
        to_i420(VideoFrames(torch.zeros((1, 6, 4, 3), dtype=torch.uint8), 25.0, 0))


# -- JPEG previews ------------------------------------------------------------------------------


def test_jpeg_previews_on_the_cpu():
    from PIL import Image

    src = _frames(3, 25.0)
    jpegs = encode_jpeg(src, quality=90)
    assert len(jpegs) == 3 and all(j[:2] == b"\xff\xd8" and j[-2:] == b"\xff\xd9" for j in jpegs)
    for j, f in zip(jpegs, src.frames.numpy()):
        img = np.asarray(Image.open(io.BytesIO(j)).convert("RGB")).astype(float)
        assert np.abs(img - f).mean() < 3
    assert len(encode_jpeg(src, quality=10)[0]) < len(jpegs[0])
    assert encode_jpeg(VideoFrames(src.frames[:0], 25.0, 0)) == []
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(src, quality=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nvjpeg_previews_match_the_cpu_reference():
    from PIL import Image

    src = _frames(8, 25.0)
    cpu = encode_jpeg(src, quality=90)
    gpu = encode_jpeg(VideoFrames(src.frames.cuda(), 25.0, 0), quality=90)
    assert len(gpu) == 8
    for a, b in zip(cpu, gpu):
        da = np.asarray(Image.open(io.BytesIO(a)).convert("RGB")).astype(float)
        db = np.asarray(Image.open(io.BytesIO(b)).convert("RGB")).astype(float)
        assert np.abs(da - db).mean() < 2
