"""dub drawn and encoded in spans by worker processes (DubOptions.processes, dubbing/spans.py):
the CPU reference is the one-process path. Same frames up to encoding, the same report; with a
lossless encoder every pixel the mouth does not touch is the decoded input exactly; a valid
stream across many spans; the cases spans cannot take fall back to one process and say why; the
yuv420p box conversions it draws through; bad values of the option and its flag."""

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest


CLI = [str(Path(sys.executable).with_name("facecast"))]


@pytest.fixture
def clip(dub_clip):
    """conftest's dub_clip: (video, short.wav, long.wav, track, folder)."""
    return dub_clip


def run_dub(video, wav, out, track, processes, mouth="footage", **kw):
    from facecast.dubbing import DubReport, dub
    from facecast.dubbing.options import DubOptions

    report = DubReport()
    opts = DubOptions(scan_s=2.0, calibrate=False, words=False, mouth=mouth, processes=processes, **kw)
    dub(video, out, audio=wav, options=opts, track=track, report=report)
    return report


def yuv_frames(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray() for f in c.decode(video=0)])


def rgb_frames(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def psnr(a, b) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def without_face(track, frames):
    from facecast.dubbing.trackfile import VideoTrack

    pts, det = track.points.copy(), track.detected.copy()
    pts[frames], det[frames] = np.nan, False
    return VideoTrack(track.sha256, track.fps, track.size, pts, det, track.cuts, track.face_index)


@pytest.fixture
def short_spans(monkeypatch):
    """Spans of 8 frames (0.3 s at 25 fps): a 38-frame job becomes 5 spans."""
    import facecast.dubbing.spans as spans

    monkeypatch.setattr(spans, "SPAN_S", 0.3)


def test_spans_give_the_one_process_frames_up_to_encoding(clip, tmp_path, short_spans):
    video, short, _, track, _ = clip
    holes = without_face(track, slice(10, 16))
    r1 = run_dub(video, short, tmp_path / "one.mp4", holes, 1)
    r2 = run_dub(video, short, tmp_path / "spans.mp4", holes, 2)
    assert not r2.notes, r2.notes  # it did run in spans
    assert (r1.frames, r1.dubbed, r1.no_face, r1.library) == (r2.frames, r2.dubbed, r2.no_face, r2.library) == (
        38, 32, 6, r1.library)
    one, spans, src = rgb_frames(tmp_path / "one.mp4"), rgb_frames(tmp_path / "spans.mp4"), rgb_frames(video)[:38]
    assert one.shape == spans.shape == (38, 192, 192, 3)
    assert psnr(one, spans) > 35  # the same mouths (two encodings apart: ~38 dB)
    # The mouths did change (against the source) by as much in both.
    assert abs(psnr(one, src) - psnr(spans, src)) < 1.0 and psnr(spans, src) < 36
    with av.open(str(tmp_path / "spans.mp4")) as c:
        keys = [p.pts * c.streams.video[0].time_base * 25 for p in c.demux(video=0) if p.is_keyframe]
        assert len(keys) >= 5  # every span starts with its own IDR frame
        assert c.streams.audio[0].duration * c.streams.audio[0].time_base == pytest.approx(1.5, abs=0.05)


def test_spans_keep_every_untouched_pixel_exactly(clip, tmp_path, short_spans):
    """Lossless H.264 (crf 0): frames without a face are the decoded input bit for bit, and in the
    others only pixels of the lower face differ."""
    from facecast.options import EncodeOptions

    video, short, _, track, _ = clip
    holes = without_face(track, slice(10, 16))
    run_dub(video, short, tmp_path / "lossless.mp4", holes, 2, encode=EncodeOptions(crf=0))
    out, src = yuv_frames(tmp_path / "lossless.mp4"), yuv_frames(video)[:38]
    assert out.shape == src.shape
    assert np.array_equal(out[10:16], src[10:16])
    changed = (out != src)[:, :192]  # luma rows
    assert changed[:10].any() and changed[16:].any()
    for k in (0, 20, 37):
        ys, xs = np.nonzero(changed[k])
        mouth = track.points[k, [13, 14], :2].mean(0)
        unit = np.linalg.norm(track.points[k, 33, :2] - track.points[k, 263, :2])
        assert ys.min() > mouth[1] - 0.8 * unit and abs(xs.mean() - mouth[0]) < 0.3 * unit  # the lower face only
        assert changed[k].mean() < 0.35


def test_spans_of_an_mpeg_ts_video_take_the_right_frames(clip, tmp_path, short_spans):
    """The clip remuxed into MPEG-TS (whose demuxer seeks by bytes: span decoders used to start
    a group late and draw other frames), lossless: frames without a face are the input's own,
    bit for bit, at their own places."""
    from facecast.dubbing.trackfile import track_video_file
    from facecast.options import EncodeOptions

    video, short, _, _, _ = clip
    ts = tmp_path / "clip.ts"
    with av.open(str(video)) as src, av.open(str(ts), "w", format="mpegts") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        for packet in src.demux(vin):
            if packet.dts is not None:
                packet.stream = vout
                dst.mux(packet)
    track = track_video_file(ts)
    holes = without_face(track, slice(20, 26))
    report = run_dub(ts, short, tmp_path / "ts.mp4", holes, 2, encode=EncodeOptions(crf=0))
    assert not report.notes, report.notes  # it ran in spans
    out, src_frames = yuv_frames(tmp_path / "ts.mp4"), yuv_frames(ts)[:38]
    assert out.shape == src_frames.shape
    assert np.array_equal(out[20:26], src_frames[20:26])


def test_what_spans_cannot_take_runs_on_one_process_and_says_why(clip, tmp_path):
    video, short, long, track, _ = clip
    from facecast.dubbing import DubReport, dub
    from facecast.dubbing.options import DubOptions

    r = DubReport()  # --text and no track: no workers (the speech's length is not known before it is spoken)
    dub(video, tmp_path / "text.mp4", text="Hi there.", report=r,
        options=DubOptions(scan_s=2.0, calibrate=False, words=False, mouth="footage", processes=2))
    assert any("no face track" in n for n in r.notes) and r.dubbed > 0
    r = run_dub(video, long, tmp_path / "long.mp4", track, 2)
    assert any("outlast" in n for n in r.notes) and r.looped > 0
    assert rgb_frames(tmp_path / "long.mp4").shape[0] == 75
    r = run_dub(video, short, tmp_path / "mesh.mp4", track, 2, mouth="mesh")
    assert any("mesh mouth" in n for n in r.notes) and r.mouth == "mesh" and r.dubbed > 0


def test_yuv_box_round_trip_leaves_unmarked_pixels_exact():
    from facecast.media.yuvroi import Planes, even_box, rgb_into_roi, roi_to_rgb

    rng = np.random.default_rng(0)
    H, W = 64, 96
    planes = Planes(rng.integers(16, 236, (H, W), dtype=np.uint8), rng.integers(16, 241, (H // 2, W // 2), dtype=np.uint8),
                    rng.integers(16, 241, (H // 2, W // 2), dtype=np.uint8))
    before = Planes(planes.y.copy(), planes.u.copy(), planes.v.copy())
    box = even_box((11, 7, 51, 40), (W, H))
    assert box == (10, 6, 52, 40)
    rgb = roi_to_rgb(planes, box, "bt601")
    where = np.zeros(rgb.shape[:2], bool)
    where[10:20, 4:30] = True
    rgb[where] = (200, 40, 30)
    rgb_into_roi(rgb, planes, box, "bt601", where)
    x0, y0, x1, y1 = box
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = np.pad(where, 0)
    assert np.array_equal(planes.y[~mask], before.y[~mask])
    # (200, 40, 30) in BT.601 limited range: Y 90.5, Cb 99.9, Cr 199.0.
    assert np.all(np.abs(planes.y[mask].astype(int) - 90) <= 1)
    block = mask.reshape(H // 2, 2, W // 2, 2).any((1, 3))
    assert np.array_equal(planes.u[~block], before.u[~block]) and np.array_equal(planes.v[~block], before.v[~block])
    full = mask.reshape(H // 2, 2, W // 2, 2).all((1, 3))
    assert np.all(np.abs(planes.u[full].astype(int) - 100) <= 1) and np.all(np.abs(planes.v[full].astype(int) - 199) <= 1)


@pytest.mark.parametrize("colorspace, matrix", [(6, "bt601"), (1, "bt709")])
def test_yuv_box_to_rgb_matches_ffmpeg(clip, colorspace, matrix):
    """roi_to_rgb on a real frame against FFmpeg's own conversion of the whole frame (same matrix)."""
    from facecast.media.yuvroi import Planes, matrix_of, roi_to_rgb

    assert matrix_of(colorspace) == matrix
    with av.open(str(clip[0])) as c:
        frame = next(c.decode(video=0))
    arr = frame.to_ndarray()
    H, W = frame.height, frame.width
    planes = Planes(arr[:H], arr[H:H + H // 4].reshape(H // 2, W // 2), arr[H + H // 4:].reshape(H // 2, W // 2))
    ours = roi_to_rgb(planes, (40, 60, 160, 180), matrix).astype(int)
    ref = frame.reformat(format="rgb24", src_colorspace="ITU709" if matrix == "bt709" else "ITU601").to_ndarray()
    d = np.abs(ours - ref[60:180, 40:160].astype(int))
    assert d.mean() < 1.5 and np.percentile(d, 99) <= 6


def test_spans_end_at_keyframes_unless_that_starves_the_workers():
    from facecast.dubbing.spans import next_span

    two_s = np.arange(0, 3000, 50)  # a keyframe every 2 s at 25 fps
    assert next_span(0, 49, two_s, 50, 200) is None and next_span(0, 50, two_s, 50, 200) == 50
    ten_s = np.arange(0, 15000, 250)
    assert next_span(0, 300, ten_s, 50, 1000) == 250  # a long input: whole groups, nothing decoded twice
    assert next_span(0, 300, ten_s, 50, 200) == 50  # a short one: every worker gets spans
    assert next_span(250, 400, ten_s, 50, 200) == 50 and next_span(440, 400, ten_s, 50, 200) == 60


def test_processes_auto_and_range():
    from facecast.dubbing.options import DubOptions
    from facecast.errors import OptionError

    assert DubOptions().processes == 0 and DubOptions().process_count() >= 1
    assert DubOptions(processes=3).process_count() == 3
    for bad in (-1, 65, 2.5):
        with pytest.raises(OptionError, match="processes"):
            DubOptions(processes=bad)


@pytest.mark.parametrize("value, message", [("-1", "--processes"), ("65", "--processes"),
                                            ("many", "--processes many: not a number")])
def test_cli_processes_bad_values(clip, tmp_path, value, message):
    video, short, *_ = clip
    out = tmp_path / "out.mp4"
    r = subprocess.run(CLI + ["dub", str(video), "--audio", str(short), "-o", str(out), "--processes", value],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_cli_dub_in_spans_with_a_track(clip, tmp_path):
    from facecast.dubbing.trackfile import save_track

    video, short, _, track, _ = clip
    tf = save_track(track, tmp_path / "may.track.npz")
    out = tmp_path / "cli.mp4"
    r = subprocess.run(CLI + ["dub", str(video), "--audio", str(short), "-o", str(out), "--track", str(tf),
                              "--processes", "2", "--workers", "0", "--no-words", "--no-calibrate"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "one process" not in r.stderr
    assert rgb_frames(out).shape == (38, 192, 192, 3)
    assert not list(tmp_path.glob(".*partial*"))


def test_a_span_worker_does_not_load_torch():
    """What render_span imports stays free of torch (each of 15 workers carried ~0.6 GB of it)."""
    code = ("import sys, facecast.dubbing.spans as s, facecast.media.video, facecast.media.yuvroi, facecast.media.h264;"
            "s.warm_up(); print(sorted(m for m in ('torch', 'mediapipe', 'facecast.media.convert') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
