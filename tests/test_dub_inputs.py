"""`dub` on the inputs phones and editors produce: variable frame rate, a display rotation, 10-bit
pixels, no sound track, odd and vertical sizes. Small (256 px) clips made from a real one."""

import av
import numpy as np
import pytest

from conftest import encode_video as encode, media
from facecast.dubbing import DubReport, dub
from facecast.dubbing.options import DubOptions
from facecast.media import open_video, probe_mp4
from test_dub import decode, outside_mask, psnr, speech

FAST = DubOptions(scan_s=2.0, calibrate=False)
BAR = 12
"""Rows at the top of the test clips that carry a marker (a white block whose position is the
source frame's index), far from the face."""


def faces(n, size=256):
    """n frames of may_en (a real talking head) at size x size, RGB uint8."""
    import cv2

    src = decode(media("video/may_en.mp4"), n)
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in src])


def mark(frames):
    """Frame i gets a white 6-px block at x = 6 * (i % 40) in its top BAR rows (the rest black)."""
    out = frames.copy()
    out[:, :BAR] = 0
    for i in range(len(out)):
        x = 6 * (i % 40)
        out[i, 2:BAR - 2, x + 1:x + 5] = 255
    return out


def read_mark(frame):
    """The source index (mod 40) a marked frame shows."""
    row = frame[2:BAR - 2, :240].astype(float).mean((0, 2))
    return int(np.argmax(row.reshape(40, 6).sum(1)))


def test_dub_variable_frame_rate_video_stays_in_sync(tmp_path):
    """A phone-style VFR clip (frames 20-67 ms apart, some dropped): the output has the stream's
    average rate, constant, and output frame k shows the source frame on screen at k / fps (the
    marker says which), for the whole clip; the speech's length decides the output's."""
    rng = np.random.default_rng(3)
    gaps = rng.choice([20, 33, 33, 40, 67], size=79)
    times = np.concatenate([[0], np.cumsum(gaps)])
    frames = mark(faces(80))
    vid = encode(tmp_path / "vfr.mp4", frames, times_ms=times)
    fps = open_video(vid).fps
    assert abs(fps - 25) > 0.5  # really not the nominal rate: the average of the irregular gaps
    seconds = 2.0
    report = DubReport()
    out = dub(vid, tmp_path / "d.mp4", audio=speech(seconds, tmp_path), options=FAST, report=report)
    info = probe_mp4(out)
    n = int(np.ceil(seconds * fps - 1e-9))
    assert info["num_frames"] == n and abs(info["fps"] - fps) < 0.01
    assert abs(info["audio_duration"] - seconds) < 0.05
    assert report.dubbed == n and report.no_face == 0
    # Source frame shown at output slot k: the latest frame whose time rounds to slot <= k.
    slots = np.round(times / 1000 * fps).astype(int)
    expect = [int(np.nonzero(slots <= k)[0].max()) % 40 for k in range(n)]
    got = [read_mark(f) for f in decode(out)]
    assert got == expect
    # A video without a sound track dubs with the new speech (nothing to calibrate from).
    assert info["audio_codec"] == "aac" and not report.calibration.fitted


def test_dub_rotated_phone_video_comes_out_upright(tmp_path):
    """Pixels stored sideways with a display rotation matrix (a phone held upright): the output
    is the upright picture at its shown size (vertical), the face found in every frame. (The
    legacy ``rotate`` metadata tag is not written into an MP4's matrix by this FFmpeg's muxer, so
    it cannot make a rotated test file; what such files carry when read is the matrix.)"""
    upright = np.zeros((30, 320, 256, 3), np.uint8)
    upright[:, 32:288] = faces(30)
    upright[:, :32] = (40, 90, 160)  # a coloured band at the top: which way is up
    stored = np.ascontiguousarray(np.rot90(upright, k=1, axes=(1, 2)))  # shown after a clockwise turn
    vid = encode(tmp_path / "phone.mp4", stored, rotation=-90)
    assert open_video(vid).size == (256, 320)
    report = DubReport()
    out = dub(vid, tmp_path / "d.mp4", audio=speech(1.0, tmp_path), options=FAST, report=report)
    info = probe_mp4(out)
    assert (info["width"], info["height"]) == (256, 320) and report.dubbed == 25
    got = decode(out).astype(int)
    assert got[:, 4:28, 8:-8].mean((0, 1, 2)) == pytest.approx((40, 90, 160), abs=6)  # the band is on top
    from facecast.face import track_video

    pts, found = track_video(upright[:25], fps=25.0, smooth=False)
    outside = np.stack([outside_mask(p, (256, 320)) for p in pts])
    # (two H.264 round trips of a saturated band cost ~2 levels, rotated or not: hence 35, not 40)
    assert psnr(got[outside], upright[:25][outside]) >= 35.0


def test_dub_10_bit_video_converts_to_8_bit_with_its_colours(tmp_path):
    """10-bit 4:2:0 H.264 (SDR): the output is 8-bit yuv420p H.264, and outside the mouth its
    colours are the input's (no washed-out or crushed levels: means within 2.5, contrast within 3 %)."""
    frames = faces(25)
    vid = encode(tmp_path / "ten.mp4", frames, pix_fmt="yuv420p10le")
    with av.open(str(vid)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    report = DubReport()
    out = dub(vid, tmp_path / "d.mp4", audio=speech(1.0, tmp_path), options=FAST, report=report)
    info = probe_mp4(out)
    assert info["pix_fmt"] == "yuv420p" and report.dubbed == 25
    from facecast.face import track_video

    got = decode(out)
    pts, found = track_video(frames, fps=25.0, smooth=False)
    outside = np.stack([outside_mask(p, (256, 256)) for p in pts])
    # Two encodes at 256 px (CRF 10 in, CRF 18 out) cost ~37 dB whatever the bit depth (the 10-bit
    # input alone decodes at 41.7 dB, its 8-bit twin at 42.0); levels read in the wrong range
    # (washed out or crushed) move the means by ~10 and the contrast by ~15 %.
    a, b = got[outside].reshape(-1, 3).astype(float), frames[outside].reshape(-1, 3).astype(float)
    assert psnr(got[outside], frames[outside]) >= 35.0
    assert np.abs(a.mean(0) - b.mean(0)).max() < 2.5 and np.abs(a.std(0) / b.std(0) - 1).max() < 0.03


def test_dub_vertical_video_with_odd_sides(tmp_path):
    """A vertical clip with odd width and height (255x321): even sides out (254x320), every frame
    dubbed, a note in the report."""
    img = np.zeros((25, 321, 255, 3), np.uint8)
    img[:, 32:288] = faces(25)[:, :, :255]
    vid = encode(tmp_path / "odd.mp4", img, pix_fmt="yuv444p")  # odd sides need 4:4:4
    report = DubReport()
    out = dub(vid, tmp_path / "d.mp4", audio=speech(1.0, tmp_path), options=FAST, report=report)
    info = probe_mp4(out)
    assert (info["width"], info["height"], info["num_frames"]) == (254, 320, 25)
    assert report.dubbed == 25 and any("odd" in n for n in report.notes)
