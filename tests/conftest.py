"""Shared fixtures: real media from ../shared/media (skipped when absent, a failure under CI=true),
and a tiny twin trained once per test session (tests/test_twin.py, the live twin tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def media(relpath: str) -> Path:
    """Path of a file under ../shared/media; skips the test when the folder is absent,
    fails it under CI=true (CI must always have the real media)."""
    path = MEDIA / relpath
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"real media missing under CI: {path}")
        pytest.skip(f"real media not available: {path}")
    return path


def short_clip(path: Path, side: int, frames: int) -> Path:
    """may_en.mp4's first ``frames`` frames at side x side (a real talking head), written to
    ``path`` as a 25 fps H.264 MP4 (CRF 14)."""
    import numpy as np
    import torch

    from facecast.media import Mp4Writer, open_video
    from facecast.types import VideoFrames

    picture = np.concatenate([c.frames.numpy() for c in open_video(media("video/may_en.mp4"), max_side=side)])
    with Mp4Writer(path, fps=25.0, width=side, height=side, crf=14) as w:
        w.write_video(VideoFrames(torch.from_numpy(picture[:frames]), 25.0, 0))
    return path


def encode_video(path: Path, frames, *, times_ms=None, fps=25, pix_fmt="yuv420p", rotation=None,
                 options: dict | None = None) -> Path:
    """uint8 RGB frames [n, H, W, 3] -> H.264 without sound (``options``: the encoder's, default
    CRF 10; the container from the suffix); frame i at times_ms[i] (a 1/1000 time base) when
    given; ``rotation``: a display matrix (degrees, as phones store it)."""
    from fractions import Fraction

    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        st.options = options or {"crf": "10"}
        if times_ms is not None:
            st.time_base = st.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            st.set_display_rotation(rotation)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            if pix_fmt != "yuv420p":
                vf = vf.reformat(format=pix_fmt)
            vf.pts = int(times_ms[i]) if times_ms is not None else i
            for p in st.encode(vf):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    return path


@pytest.fixture(scope="session")
def dub_clip(tmp_path_factory):
    """A short dub job's inputs (tests/test_dub_parallel.py, tests/test_dub_spans.py): may_en.mp4's
    first 2 s at 192x192 (a real talking head), 1.5 s and 3 s of real speech (the 3 s outlast the
    video: the back-and-forth loop), the clip's face track, and the folder they are in."""
    from facecast.audio import load_audio, write_wav
    from facecast.dubbing.trackfile import track_video_file

    tmp = tmp_path_factory.mktemp("dubclip")
    video = short_clip(tmp / "may192.mp4", 192, 50)
    a = load_audio(media("audio/hdtf_radio31_en.wav"), sample_rate=16000, mono=True).samples[0]
    short = write_wav(tmp / "short.wav", a[: int(1.5 * 16000)])
    long = write_wav(tmp / "long.wav", a[: int(3.0 * 16000)])
    return video, short, long, track_video_file(video), tmp


@pytest.fixture
def media_path():
    return media


def tiny_render_config():
    """The renderer of the tiny test twins: small enough to train in seconds on a CPU."""
    from facecast.twin.net import RenderConfig

    return RenderConfig(size=64, widths=(16, 16, 32), mid_blocks=1)


@pytest.fixture(scope="session")
def may_track():
    """may_en.mp4 tracked (the tiny twin's training video)."""
    from facecast.twin.prepare import track_clip

    return track_clip(media("video/may_en.mp4"))


@pytest.fixture(scope="session")
def tiny_twin(tmp_path_factory, may_track):
    """(path, training report) of a tiny twin trained for a few steps on the CPU from a real 5 s
    clip (last 20 % held out)."""
    from facecast.twin import TwinTrainOptions, train_twin
    from facecast.twin.options import PrepOptions
    from facecast.twin.train import RenderTrainOptions

    tmp = tmp_path_factory.mktemp("twin")
    opts = TwinTrainOptions(
        device="cpu", prep=PrepOptions(crop_px=64, min_speech_s=2.0),
        render=RenderTrainOptions(config=tiny_render_config(), steps=6, batch=2), mouth_steps=5,
        holdout=("may_en.mp4", 0.2), background_max_s=2.0, work_dir=str(tmp / "work"))
    report = train_twin([media("video/may_en.mp4")], tmp / "may.twin", opts, tracks=[may_track])
    return tmp / "may.twin", report
