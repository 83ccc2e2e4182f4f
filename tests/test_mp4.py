"""facecast.media.mp4 / fmp4 / probe: output-path checks, Mp4Writer streams/timing/atomicity, parallel
segments, I420 and CUDA input, Fmp4SegmentWriter input, probe_mp4."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from conftest import media

from facecast.audio import open_audio
from facecast.errors import OutputError
from facecast.media import (Encoder, Fmp4SegmentWriter, Mp4Writer, check_output_path, open_video, probe_mp4,
                            to_i420)
from facecast.types import AudioChunk, I420Frames, VideoFrames

W, H = 128, 96


def _frames(n: int, fps: float, first: int = 0) -> VideoFrames:
    """A red square moving over a grey gradient: uint8 [n, H, W, 3]."""
    imgs = np.empty((n, H, W, 3), np.uint8)
    imgs[:] = np.linspace(40, 200, W, dtype=np.uint8)[None, None, :, None]
    for k in range(n):
        x = (first + k) * 2 % (W - 24)
        imgs[k, 30:54, x : x + 24] = (220, 30, 30)
    return VideoFrames(torch.from_numpy(imgs), fps, first)


def _tone(seconds: float, rate: int, start: float = 0.0, channels: int = 1, freq: float = 440.0) -> AudioChunk:
    t = start + np.arange(round(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return AudioChunk(np.repeat(x[None], channels, axis=0), rate, start)


def _decode_audio(path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
        rate = frames[0].sample_rate
        return np.concatenate([f.to_ndarray() for f in frames], axis=1), rate


# -- check_output_path --------------------------------------------------------------------------


def test_output_path_ok(tmp_path):
    assert check_output_path(tmp_path / "out.MP4") == tmp_path / "out.MP4"
    assert check_output_path(str(tmp_path / "clip.mov")) == tmp_path / "clip.mov"


@pytest.mark.parametrize(
    "name, fragments",
    [
        ("talk.avi", ("unsupported", ".mp4", ".mov")),
        ("talk", ("no extension", ".mp4")),
        ("missing_dir/talk.mp4", ("does not exist", "missing_dir", "Create")),
    ],
)
def test_output_path_errors(tmp_path, name, fragments):
    with pytest.raises(OutputError) as info:
        check_output_path(tmp_path / name)
    msg = str(info.value)
    assert "talk" in msg and "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, msg


def test_output_path_is_a_directory(tmp_path):
    folder = tmp_path / "renders.mp4"
    folder.mkdir()
    with pytest.raises(OutputError, match="renders.mp4.*is a directory"):
        check_output_path(folder)


def test_writer_refuses_bad_path_and_odd_size(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        Mp4Writer(tmp_path / "no" / "x.mp4", fps=25, width=W, height=H)
    with pytest.raises(ValueError, match="even"):
        Mp4Writer(tmp_path / "x.mp4", fps=25, width=127, height=H)
    assert list(tmp_path.iterdir()) == []


# -- Mp4Writer ----------------------------------------------------------------------------------


def test_writer_output_probes_right(tmp_path):
    out = tmp_path / "talk.mp4"
    with Mp4Writer(out, fps=25, width=W, height=H, audio_rate=16000, audio_channels=1) as writer:
        assert isinstance(writer, Encoder)
        for first in range(0, 50, 20):
            writer.write_video(_frames(min(20, 50 - first), 25, first))
        for k in range(4):
            writer.write_audio(_tone(0.5, 16000, start=k * 0.5))
        assert not out.exists()  # nothing at the target until close
    info = probe_mp4(out)
    assert info["video_codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["colorspace"] == 6  # tagged BT.601 (smpte170m), the matrix the RGB was converted with
    assert (info["width"], info["height"]) == (W, H)
    assert info["fps"] == pytest.approx(25.0)
    assert info["num_frames"] == 50
    assert info["video_duration"] == pytest.approx(2.0, abs=1 / 25)
    assert info["audio_codec"] == "aac" and info["audio_rate"] == 16000 and info["audio_channels"] == 1
    assert info["audio_duration"] == pytest.approx(2.0, abs=1e-3)
    assert [p.name for p in tmp_path.iterdir()] == ["talk.mp4"]  # no partial file left behind


def test_writer_pixels_and_colours_survive(tmp_path):
    out = tmp_path / "colour.mp4"
    src = _frames(10, 25)
    with Mp4Writer(out, fps=25, width=W, height=H, crf=18) as writer:
        writer.write_video(src)
    with av.open(str(out)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float32)
    ref = src.frames.numpy().astype(np.float32)
    psnr = 10 * np.log10(255**2 / np.mean((decoded - ref) ** 2))
    assert psnr > 32
    square = decoded[3, 34:50, 10:26].mean(axis=(0, 1))  # frame 3: square at x=6..30
    assert square[0] > 190 and square[1] < 70 and square[2] < 70
    assert probe_mp4(out)["audio_codec"] is None


def test_exception_inside_with_leaves_nothing(tmp_path):
    out = tmp_path / "result.mp4"
    out.write_bytes(b"previous render")
    with pytest.raises(RuntimeError, match="renderer crashed"):
        with Mp4Writer(out, fps=25, width=W, height=H, audio_rate=16000) as writer:
            writer.write_video(_frames(30, 25))
            writer.write_audio(_tone(1.0, 16000))
            raise RuntimeError("renderer crashed")
    assert out.read_bytes() == b"previous render"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.mp4"]


def test_abort_and_empty_close(tmp_path):
    out = tmp_path / "aborted.mp4"
    writer = Mp4Writer(out, fps=25, width=W, height=H)
    writer.write_video(_frames(5, 25))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    empty = Mp4Writer(tmp_path / "empty.mp4", fps=25, width=W, height=H)
    with pytest.raises(ValueError, match="no video frames"):
        empty.close()
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_mismatched_input(tmp_path):
    with Mp4Writer(tmp_path / "x.mp4", fps=25, width=W, height=H, audio_rate=16000) as writer:
        writer.write_video(_frames(10, 25))
        with pytest.raises(ValueError, match="pts must increase"):
            writer.write_video(_frames(3, 25, first=5))
        with pytest.raises(ValueError, match=r"\[n, 96, 128, 3\]"):
            writer.write_video(VideoFrames(torch.zeros((2, 64, 64, 3), dtype=torch.uint8), 25, 10))
        with pytest.raises(ValueError, match="uint8"):
            writer.write_video(VideoFrames(torch.zeros((2, H, W, 3)), 25, 10))
        with pytest.raises(ValueError, match="fps"):
            writer.write_video(_frames(2, 30, first=10))
        with pytest.raises(ValueError, match="Hz"):
            writer.write_audio(_tone(0.1, 22050))


def test_odd_fps_and_unsupported_audio_rate(tmp_path):
    fps = float(Fraction(1350, 61))  # the 22.13 fps clip's rate
    out = tmp_path / "odd.mov"
    n = 44  # ~1.99 s
    with Mp4Writer(out, fps=fps, width=W, height=H, audio_rate=22000, audio_channels=2) as writer:
        writer.write_video(_frames(n, fps))
        for k in range(4):
            writer.write_audio(_tone(0.5, 22000, start=k * 0.5, channels=2))
    info = probe_mp4(out)
    assert info["fps"] == pytest.approx(fps, rel=1e-4)
    assert info["num_frames"] == n
    assert info["video_duration"] == pytest.approx(n / fps, abs=1 / fps)
    assert info["audio_rate"] == 48000 and info["audio_channels"] == 2  # 22000 Hz is not an AAC rate
    assert info["audio_duration"] == pytest.approx(2.0, abs=1 / fps)


def test_audio_gap_is_silence_at_the_right_place(tmp_path):
    out = tmp_path / "gap.mp4"
    with Mp4Writer(out, fps=25, width=W, height=H, audio_rate=22050) as writer:
        writer.write_video(_frames(38, 25))
        writer.write_audio(_tone(0.5, 22050, start=0.0))
        writer.write_audio(_tone(0.5, 22050, start=1.0))  # nothing between 0.5 s and 1.0 s
    assert probe_mp4(out)["audio_duration"] == pytest.approx(1.5, abs=1e-3)
    audio, rate = _decode_audio(out)
    assert rate == 22050
    assert 1.5 * rate <= audio.shape[1] < 1.5 * rate + 1024  # FFmpeg does not trim the last AAC frame

    def rms(a: float, b: float) -> float:
        return float(np.sqrt(np.mean(audio[0, int(a * rate) : int(b * rate)] ** 2)))

    assert rms(0.1, 0.4) > 0.15 and rms(1.1, 1.4) > 0.15
    assert rms(0.6, 0.9) < 0.01


def test_reencode_real_clip_keeps_sync(tmp_path):
    """Decode a real talking clip and write it back: frame count, durations and audio align."""
    video = open_video(media("video/may_en.mp4"), max_side=256)
    audio = open_audio(video.path)
    out = tmp_path / "may_small.m4v"
    with Mp4Writer(
        out, fps=video.fps, width=video.size[0], height=video.size[1],
        audio_rate=audio.sample_rate, audio_channels=audio.channels,
    ) as writer:
        for chunk in video:
            writer.write_video(chunk)
        for chunk in audio:
            writer.write_audio(chunk)
    info = probe_mp4(out)
    assert info["num_frames"] == video.num_frames == 125
    assert info["video_duration"] == pytest.approx(5.0, abs=1 / 25)
    assert info["audio_duration"] == pytest.approx(audio.duration, abs=1 / 25)
    # The sound itself survives AAC: envelopes of source and output correlate.
    src = np.concatenate([c.samples for c in audio], axis=1)[0]
    dec, _ = _decode_audio(out)
    n = min(src.size, dec.shape[1]) // 480 * 480
    env_src = np.sqrt((src[:n].reshape(-1, 480) ** 2).mean(axis=1))
    env_out = np.sqrt((dec[0, :n].reshape(-1, 480) ** 2).mean(axis=1))
    assert np.corrcoef(env_src, env_out)[0, 1] > 0.95


def _decoded_video(path) -> tuple[np.ndarray, list[tuple[int, int, bool]]]:
    """Decoded RGB frames [n, H, W, 3] and (pts, dts, keyframe) of every video packet."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        packets = [(p.pts, p.dts, p.is_keyframe) for p in c.demux(video=0) if p.size]
    return frames, packets


@pytest.mark.parametrize("workers,segment", [(3, 20), (2, 1)])
def test_parallel_segments_make_one_valid_stream(tmp_path, workers, segment):
    """Segment-parallel encoding of a real clip (frames handed over in uneven chunks, so segments
    do not line up with them): the same frame count, timestamps and pixels as one encoder, a
    keyframe at every segment start, decode timestamps strictly increasing across segments."""
    video = open_video(media("video/may_en.mp4"), max_side=128)
    chunks = list(video)[:3]
    src = np.concatenate([c.frames.numpy() for c in chunks])[:67]
    n, h, w = src.shape[:3]
    outs = {}
    for k in (1, workers):
        out = tmp_path / f"w{k}.mp4"
        with Mp4Writer(out, fps=video.fps, width=w, height=h, audio_rate=16000, workers=k,
                       segment_frames=segment) as writer:
            for a in range(0, n, 13):
                writer.write_video(VideoFrames(torch.from_numpy(src[a:a + 13]), video.fps, a))
            writer.write_audio(_tone(n / video.fps, 16000))
        outs[k] = (probe_mp4(out), *_decoded_video(out))
    (one, dec1, pk1), (par, decp, pkp) = outs[1], outs[workers]
    assert par["num_frames"] == one["num_frames"] == n
    assert par["video_duration"] == pytest.approx(one["video_duration"])
    assert par["audio_duration"] == pytest.approx(one["audio_duration"])
    assert sorted(p[0] for p in pkp) == sorted(p[0] for p in pk1)  # same presentation times
    dts = [p[1] for p in pkp]
    assert all(b > a for a, b in zip(dts, dts[1:]))
    key_pts = sorted(p[0] for p in pkp if p[2])
    frame_of = {pts: i for i, pts in enumerate(sorted(p[0] for p in pkp))}
    assert [frame_of[p] for p in key_pts] == list(range(0, n, segment))

    def psnr(dec):
        mse = np.mean((dec.astype(np.float64) - src) ** 2)
        return 10 * np.log10(255 ** 2 / mse)

    # Each segment is a normal x264 encode: quality within 1 dB of the single encoder's (for
    # one-frame segments, all intra frames, only a floor).
    assert psnr(decp) > 30
    if segment >= 20:
        assert psnr(decp) > psnr(dec1) - 1.0


def test_parallel_writer_abort_leaves_nothing(tmp_path):
    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError):
        with Mp4Writer(out, fps=25, width=W, height=H, workers=2, segment_frames=4) as writer:
            writer.write_video(_frames(10, 25.0))
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="workers"):
        Mp4Writer(tmp_path / "y.mp4", fps=25, width=64, height=64, workers=0)


def test_parallel_writer_copies_frames_the_caller_reuses(tmp_path):
    """Segments are encoded after write_video returns: a caller that refills one buffer for every
    call (as a renderer with a persistent output tensor would) must still get its frames."""
    src = _frames(24, 25.0).frames
    buf = torch.empty((6,) + tuple(src.shape[1:]), dtype=torch.uint8)
    out = tmp_path / "reuse.mp4"
    with Mp4Writer(out, fps=25, width=W, height=H, workers=2, segment_frames=12) as writer:
        for a in range(0, 24, 6):
            buf.copy_(src[a:a + 6])
            writer.write_video(VideoFrames(buf, 25.0, a))
            buf.zero_()  # the caller's next use of its buffer
    dec, _ = _decoded_video(out)
    assert dec.shape[0] == 24
    assert np.abs(dec.astype(np.float64) - src.numpy()).mean() < 3  # not the zeroed buffer


# -- I420Frames and CUDA frames into the writers -----------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_writer_takes_i420_frames(tmp_path, workers):
    """I420Frames (what CUDA hands over) encode to the same picture as RGB input."""
    src = _frames(12, 25.0)
    outs = {}
    for kind in ("rgb", "i420"):
        out = tmp_path / f"{kind}.mp4"
        with Mp4Writer(out, fps=25, width=W, height=H, workers=workers, segment_frames=5) as writer:
            for a in range(0, 12, 4):
                part = VideoFrames(src.frames[a:a + 4], 25.0, a)
                writer.write_video(part if kind == "rgb" else to_i420(part))
        outs[kind] = _decoded_video(out)
    (rgb, rgb_packets), (yuv, yuv_packets) = outs["rgb"], outs["i420"]
    assert yuv.shape == rgb.shape == (12, H, W, 3)
    assert [p[:2] for p in yuv_packets] == [p[:2] for p in rgb_packets]
    assert np.abs(yuv.astype(float) - rgb.astype(float)).mean() < 1.5
    assert np.abs(yuv.astype(float) - src.frames.numpy()).mean() < 3
    with Mp4Writer(tmp_path / "bad.mp4", fps=25, width=W, height=H) as writer:
        with pytest.raises(ValueError, match=r"yuv420p frames must be \[n, 144, 128\]"):
            writer.write_video(I420Frames(torch.zeros((2, H, W), dtype=torch.uint8), 25.0, 0))
        writer.write_video(src)


def test_fmp4_writer_takes_i420_frames():
    src = _frames(10, 25.0)
    data = {}
    for kind in ("rgb", "i420"):
        w = Fmp4SegmentWriter(fps=25, width=W, height=H, audio_rate=16000, fragment_frames=5)
        frames = src if kind == "rgb" else to_i420(src)
        out = w.write(frames, _tone(0.4, 16000)) + w.close()
        with av.open(io.BytesIO(out)) as c:
            data[kind] = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert data["i420"].shape == data["rgb"].shape == (10, H, W, 3)
    assert np.abs(data["i420"].astype(float) - data["rgb"].astype(float)).mean() < 1.5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_i420_equals_the_cpu_reference(tmp_path):
    """The conversion CUDA runs against the same code on the CPU, and a writer given CUDA RGB
    frames (converted on the GPU) against one given the same frames on the CPU (swscale)."""
    src = _frames(12, 25.0)
    cpu = to_i420(src).data
    gpu = to_i420(VideoFrames(src.frames.cuda(), 25.0, 0)).data.cpu()
    assert (gpu.int() - cpu.int()).abs().max() <= 1
    dec = {}
    for dev in ("cpu", "cuda"):
        out = tmp_path / f"{dev}.mp4"
        with Mp4Writer(out, fps=25, width=W, height=H, workers=2, segment_frames=5) as writer:
            writer.write_video(VideoFrames(src.frames.to(dev), 25.0, 0))
        dec[dev] = _decoded_video(out)[0].astype(float)
    assert dec["cuda"].shape == dec["cpu"].shape == (12, H, W, 3)
    assert np.abs(dec["cuda"] - dec["cpu"]).mean() < 1.5


# ---- issue #18: encoder options checked up front; partial files of killed jobs; inputs ----

@pytest.mark.parametrize("kw, words", [({"crf": -5}, "crf"), ({"crf": 99}, "0 ... 51"), ({"preset": "bogus"}, "veryfast"),
                                       ({"codec": "no_such_codec"}, "encoder")])
def test_bad_encoder_options_are_refused_before_anything_is_written(tmp_path, kw, words):
    from facecast.errors import OptionError

    out = tmp_path / "o.mp4"
    with pytest.raises(OptionError, match=words):
        Mp4Writer(out, fps=25, width=W, height=H, **kw)
    with pytest.raises(OptionError, match=words):
        Fmp4SegmentWriter(fps=25, width=W, height=H, **kw)
    assert list(tmp_path.iterdir()) == []


def test_stale_partial_is_swept_and_a_running_job_is_protected(tmp_path):
    from facecast.media import partial_path, prepare_output, sweep_partial

    out = tmp_path / "o.mp4"
    stale = partial_path(out)
    assert stale == tmp_path / ".o.partial.mp4"
    stale.write_bytes(b"left by a job killed with SIGKILL")
    assert prepare_output(out) == out and not stale.exists()
    w = Mp4Writer(out, fps=25, width=W, height=H)  # holds a lock on its partial file
    assert stale.exists()
    with pytest.raises(OutputError, match="another facecast job"):
        prepare_output(out)
    with pytest.raises(OutputError, match="another facecast job"):
        Mp4Writer(out, fps=25, width=W, height=H)
    w.write_video(_frames(3, 25))
    w.close()
    assert out.exists() and not stale.exists()
    sweep_partial(out)  # nothing to sweep: fine
    assert out.exists()


def test_output_may_not_be_an_input(tmp_path):
    from facecast.media import prepare_output

    audio = tmp_path / "talk.mp4"
    audio.write_bytes(b"audio")
    with pytest.raises(OutputError, match="audio input"):
        prepare_output(tmp_path / "." / "talk.mp4", inputs=[("audio", audio)])
    assert audio.read_bytes() == b"audio"


def test_segment_length_keeps_the_held_frames_under_a_gib():
    """Eight encoders with 2 s segments held ~2.8 GB of 1080p frames (19 GB RSS at 4K on the GPU
    box): segments shorten with the frame size, never below MIN_SEGMENT_FRAMES."""
    from facecast.media.h264 import MIN_SEGMENT_FRAMES, SEGMENT_BUFFER_BYTES, segment_length

    assert segment_length(50, 8, 512, 512) == 50  # small frames: as asked
    n = segment_length(50, 8, 1920, 1080)
    assert n < 50 and 9 * n * 1920 * 1080 * 3 <= SEGMENT_BUFFER_BYTES < 9 * (n + 1) * 1920 * 1080 * 3
    assert segment_length(50, 8, 3840, 2160) == MIN_SEGMENT_FRAMES
    assert segment_length(50, 1, 3840, 2160) == SEGMENT_BUFFER_BYTES // (2 * 3840 * 2160 * 3)
    assert segment_length(5, 2, 1920, 1080) == 5 and segment_length(1, 8, 1920, 1080) == 1


def test_writer_shortens_segments_for_large_frames(tmp_path):
    """A 1080p writer with 8 encoders starts a segment (a keyframe) every segment_length frames."""
    from facecast.media.h264 import segment_length

    n, w, h = 45, 1920, 1080
    seg = segment_length(50, 8, w, h)
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[:, :, :, 1] = np.arange(n, dtype=np.uint8)[:, None, None] * 5
    out = tmp_path / "hd.mp4"
    with Mp4Writer(out, fps=25, width=w, height=h, workers=8, segment_frames=50) as writer:
        writer.write_video(VideoFrames(torch.from_numpy(frames), 25.0, 0))
    _, packets = _decoded_video(out)
    order = {pts: i for i, pts in enumerate(sorted(p[0] for p in packets))}
    assert len(packets) == n
    assert [order[p[0]] for p in packets if p[2]] == list(range(0, n, seg))


def test_wrapped_rgb_frames_encode_exactly_as_copied_ones():
    """video_frame wraps C-contiguous RGB (no copy under the GIL): the encoder's packets are
    byte-identical to those of frames copied with from_ndarray; other layouts are copied."""
    from facecast.media.h264 import add_video_stream, video_frame

    video = open_video(media("video/may_en.mp4"), max_side=256)
    src = np.concatenate([c.frames.numpy() for c in list(video)[:2]])[:30]
    h, w = src.shape[1:3]

    def encode(make) -> list[bytes]:
        with av.open(io.BytesIO(), mode="w", format="mp4") as c:
            stream = add_video_stream(c, 25.0, w, h, "libx264", 23, "veryfast", 1)
            out = []
            for k in range(len(src)):
                out += [bytes(p) for p in stream.encode(make(k))]
            out += [bytes(p) for p in stream.encode(None)]
            return out

    def copied(k):
        frame = av.VideoFrame.from_ndarray(src[k], format="rgb24")
        frame.pts = k
        return frame

    want = encode(copied)
    assert encode(lambda k: video_frame(src[k], "rgb24", k)) == want and len(want) == len(src)
    mine = src[0].copy()
    wrapped = video_frame(mine, "rgb24", 0)
    mine[:] = 7  # wrapped, not copied: the frame sees the change
    assert (wrapped.to_ndarray(format="rgb24") == 7).all()
    cropped = src[0, :, 2:]  # not C-contiguous: copied, same picture
    frame = video_frame(cropped, "rgb24", 5)
    assert frame.pts == 5 and np.array_equal(frame.to_ndarray(format="rgb24"), cropped)
