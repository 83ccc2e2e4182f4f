"""facecast.video: streaming decode onto the frame grid, validation, odd rates and HEVC."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import encode_video, media

from facecast.errors import InputError
from facecast.media import open_video


def test_may_constant_rate_maps_one_to_one():
    path = media("video/may_en.mp4")
    src = open_video(path)
    assert src.fps == 25.0 and src.size == (512, 512) and src.num_frames == 125
    assert src.duration == pytest.approx(5.0)
    firsts, total = [], 0
    with av.open(str(path)) as container:
        reference = container.decode(video=0)
        for chunk in src:
            assert chunk.fps == 25.0 and chunk.frames.dtype == torch.uint8
            assert tuple(chunk.frames.shape[1:]) == (512, 512, 3)
            firsts.append(chunk.first_frame)
            total += chunk.num_frames
            for frame in chunk.frames.numpy():
                np.testing.assert_array_equal(frame, next(reference).to_ndarray(format="rgb24"))
    assert firsts == [0, 25, 50, 75, 100] and total == 125


def test_reiterable_and_chunk_size():
    src = open_video(media("video/may_en.mp4"), chunk_frames=40)
    sizes = [c.num_frames for c in src]
    assert sizes == [40, 40, 40, 5]
    assert [c.num_frames for c in src] == sizes


def test_odd_rate_clip_lands_on_its_timestamps():
    path = media("video/retalking_face1_en.mp4")
    src = open_video(path, chunk_frames=32)
    assert src.fps == pytest.approx(22.1311, abs=1e-3)  # 1350/61, variable frame rate underneath
    check = (0, 1, 7, 50, 51, 52, 100, src.num_frames - 1)
    got, total = {}, 0
    for chunk in src:
        for i in range(chunk.first_frame, chunk.first_frame + chunk.num_frames):
            if i in check:
                got[i] = chunk.frames[i - chunk.first_frame].numpy()
        total += chunk.num_frames
    assert total == src.num_frames
    assert src.num_frames == pytest.approx(src.duration * src.fps, abs=1)
    with av.open(str(path)) as container:
        times = [float(f.time) for f in container.decode(video=0)]
    # Grid slot i shows the latest decoded frame whose time rounds to a slot <= i.
    slots = [round(t * src.fps) for t in times]
    wanted = {}
    for i in check:
        candidates = [k for k, s in enumerate(slots) if s <= i]
        wanted[i] = candidates[-1] if candidates else 0
    assert len(set(wanted.values())) < len(check)  # the VFR clip really repeats a frame here
    with av.open(str(path)) as container:
        ref = {
            k: f.to_ndarray(format="rgb24") for k, f in enumerate(container.decode(video=0)) if k in wanted.values()
        }
    for i, k in wanted.items():
        np.testing.assert_array_equal(got[i], ref[k], err_msg=f"slot {i} should show decoded frame {k}")


def test_max_side_downscale_keeps_aspect_and_even_sizes():
    src = open_video(media("video/retalking_face1_en.mp4"), max_side=255)
    assert src.size == (254, 254)  # 700 * 255/700 = 255 -> even, never above max_side
    first = next(iter(src))
    assert tuple(first.frames.shape[1:]) == (src.size[1], src.size[0], 3)
    full = next(iter(open_video(media("video/retalking_face1_en.mp4"))))
    # Downscaled content still looks like the full frame (same mean colour).
    assert abs(first.frames.float().mean() - full.frames.float().mean()) < 2.0


def test_hevc_vertical_clip():
    src = open_video(media("video/latentsync_demo2_vertical.mp4"), max_side=320)
    assert src.source_size == (1080, 1920)
    assert src.size == (180, 320)
    assert src.fps == 25.0 and src.num_frames == 502
    assert src.has_audio
    it = iter(src)
    chunk = next(it)
    assert tuple(chunk.frames.shape) == (25, 320, 180, 3)
    assert chunk.frames.float().std() > 10  # real picture, not a blank decode
    audio = src.audio()
    assert audio.sample_rate == 44100 and audio.channels == 2


def test_display_rotation_is_applied(tmp_path):
    img = np.zeros((3, 32, 64, 3), np.uint8)
    img[:, :8, :8] = (255, 0, 0)  # red block top-left as stored
    # -90: what phones record in portrait (rotate clockwise to show)
    path = encode_video(tmp_path / "phone.mp4", img, rotation=-90, options={"crf": "23"})
    src = open_video(path)
    assert src.size == (32, 64) and src.source_size == (64, 32)
    frame = next(iter(src)).frames[0].numpy().astype(int)
    assert frame.shape == (64, 32, 3)
    # Clockwise quarter turn: top-left moves to top-right.
    assert frame[:6, -6:, 0].mean() > 200 and frame[:6, -6:, 1].mean() < 60
    assert frame[:6, :6, 0].mean() < 60


def _expect_input_error(path: Path, *fragments: str) -> None:
    with pytest.raises(InputError) as info:
        open_video(path)
    msg = str(info.value)
    assert path.name in msg and "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, msg


def test_missing_and_empty(tmp_path):
    _expect_input_error(tmp_path / "gone.mp4", "not found")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    _expect_input_error(empty, "empty")


def test_corrupt(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    _expect_input_error(path, "not a readable video file")


def test_audio_only_file_has_no_video(tmp_path):
    _expect_input_error(media("audio/jfk_en.flac"), "no video stream", "audio only")


def test_image_is_not_a_video(tmp_path):
    path = tmp_path / "portrait.png"
    path.write_bytes(media("portrait/leijun.png").read_bytes())
    _expect_input_error(path, "still image")


def test_audio_of_a_video():
    src = open_video(media("video/may_en.mp4"))
    audio = src.audio()
    assert audio.path == src.path and audio.sample_rate == 48000
    assert audio.duration == pytest.approx(src.duration, abs=0.05)


def _numbered_video(path: Path, frames: int = 60, keyint: int = 10) -> None:
    """frames of 64x48 whose grey level is 4 x the frame number, H.264 with B-frames and a
    keyframe every ``keyint`` frames (a closed GOP each)."""
    grey = np.repeat(4 * np.arange(frames, dtype=np.uint8), 48 * 64 * 3).reshape(frames, 48, 64, 3)
    encode_video(path, grey, options={"crf": "0", "g": str(keyint), "keyint_min": str(keyint),
                                      "sc_threshold": "0", "bf": "3"})


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_decoded_frames_from_any_slot(tmp_path, suffix):
    """Decoding from slot N (span workers): the frames of slots N, N+1, ... whether N is a
    keyframe or inside a group of pictures, also where the demuxer seeks by bytes (MPEG-TS: it
    used to land a group late, or at the end); on a keyframe the decoder starts there, not one
    group earlier."""
    path = tmp_path / f"numbered{suffix}"
    _numbered_video(path)
    src = open_video(path)
    assert src.num_frames == 60
    for first in range(60):
        got = [int(f.to_ndarray(format="gray").mean().round()) for f in src.decoded_frames(first, 5)]
        want = [4 * i for i in range(first, min(first + 5, 60))]
        assert np.abs(np.array(got) - np.array(want)).max() <= 2, (first, got)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        origin = c.start_time / av.time_base if c.start_time is not None else 0.0
        for first in (10, 20, 50):
            head = next(src._decode_from(c, stream, origin, first))
            assert round((float(head.time) - origin) * 25) == first and head.key_frame
        head = next(src._decode_from(c, stream, origin, 13))
        slot = round((float(head.time) - origin) * 25)
        assert slot == 10 if suffix != ".ts" else slot <= 10  # TS seeks by bytes: maybe a group earlier
