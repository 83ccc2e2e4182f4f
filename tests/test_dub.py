"""`dub`: re-lip-syncing real videos to new speech (facecast.dubbing), on short real clips."""

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import media
from facecast.audio import write_wav
from facecast.dubbing import DubReport, dub, dub_chunks
from facecast.dubbing.footage import Timeline, head_speed
from facecast.dubbing.mask import composite, iod, lower_face_mask
from facecast.dubbing.track import StreamTracker
from facecast.errors import InputError, OutputError
from facecast.landmarks import LIPS_OUTER_LOWER, LIPS_OUTER_UPPER
from facecast.media import Mp4Writer, probe_mp4
from facecast.dubbing.options import DubOptions
from facecast.types import VideoFrames

CLI = [str(Path(sys.executable).with_name("facecast"))]
LIPS = LIPS_OUTER_UPPER + LIPS_OUTER_LOWER
FAST = DubOptions(scan_s=3.0, calibrate=False)  # the fast tier: a short scan, no calibration pass


def speech(seconds, tmp_path, name="hdtf_radio31_en.wav"):
    from facecast.audio import load_audio

    a = load_audio(media(f"audio/{name}"))
    return write_wav(tmp_path / f"speech_{seconds}s.wav", a.samples[0, : int(seconds * 16000)])


def decode(path, limit=None):
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="rgb24"))
            if limit and len(out) >= limit:
                break
    return np.stack(out)


def write_video(path, frames, fps=25.0, audio=None):
    """uint8 [n, H, W, 3] -> H.264 MP4 (crf 12, nearly lossless), with an AudioChunk or none."""
    rate = audio.sample_rate if audio is not None else None
    with Mp4Writer(path, fps=fps, width=frames.shape[2], height=frames.shape[1], audio_rate=rate, crf=12) as w:
        import torch

        w.write_video(VideoFrames(torch.from_numpy(np.ascontiguousarray(frames)), fps, 0))
        if audio is not None:
            w.write_audio(audio)
    return path


def outside_mask(points, size, grow=0.12 + 0.08 + 0.1):
    """bool [H, W]: pixels well outside the lower-face mask of these landmarks (the dub mask grows
    0.12 IOD plus half a 0.08 feather; 0.1 IOD more for the other chin it may cover)."""
    from facecast.dubbing.mask import iod

    m = lower_face_mask([points], size, iod(points), grow + 0.25, 0.01)
    out = np.ones((size[1], size[0]), bool)
    x0, y0, x1, y1 = m.box
    out[y0:y1, x0:x1] = m.alpha == 0
    return out


def psnr(a, b):
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-12))


# -- units ------------------------------------------------------------------------------------


def test_mask_is_zero_outside_and_composite_keeps_those_pixels():
    rng = np.random.default_rng(0)
    from facecast.face import find_face

    img = decode(media("video/may_en.mp4"), 1)[0]
    pts = find_face(img).points
    m = lower_face_mask([pts], (img.shape[1], img.shape[0]), 100.0, 0.12, 0.08)
    layer = rng.integers(0, 255, img.shape, dtype=np.uint8)
    out = composite(img, layer, m)
    x0, y0, x1, y1 = m.box
    outside = np.ones(img.shape[:2], bool)
    outside[y0:y1, x0:x1] = m.alpha == 0
    assert np.array_equal(out[outside], img[outside])
    assert (m.alpha == 1).sum() > 1000  # the mouth itself is fully replaced
    assert not np.array_equal(out, img)


@pytest.mark.parametrize("scale", [1, 4])
def test_colour_gain_on_its_grid_matches_the_full_resolution_reference(scale):
    """mouths.colour_gain (grid of 2-8 px cells) against gain_reference (every pixel): a picture
    darker by a smooth, uneven shading gets that shading back as its gain, within 0.02 where it
    is drawn, at may_en's size and 4x it (the grid's coarsest, as at 4K)."""
    import cv2

    from facecast.dubbing.mouths import colour_gain, gain_reference
    from facecast.face import find_face

    img = decode(media("video/may_en.mp4"), 1)[0]
    pts = find_face(img).points
    if scale > 1:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        pts = pts * scale
    unit = iod(pts)
    m = lower_face_mask([pts], (img.shape[1], img.shape[0]), unit, 0.12, 0.08)
    x0, y0, x1, y1 = m.box
    cur = img[y0:y1, x0:x1]
    h, w = m.alpha.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = (0.8 + 0.15 * xx / w + 0.05 * yy / h)[..., None] * np.array([1.0, 0.95, 0.9], np.float32)
    warped = np.clip(cur * shade, 0, 255).astype(np.uint8)
    fast, ref = colour_gain(cur, warped, m.alpha, unit), gain_reference(cur, warped, m.alpha, unit)
    drawn = m.alpha > 0.5
    assert np.abs(fast - ref)[drawn].mean() < 0.02
    truth = 1.0 / shade
    assert np.abs(fast - truth)[drawn].mean() < 0.05 and np.abs(ref - truth)[drawn].mean() < 0.05
    assert colour_gain(cur, warped, np.zeros_like(m.alpha), unit) is None  # no band: no gain


def test_timeline_turns_at_slow_frames_and_never_jumps():
    tl = Timeline(25.0, 100)
    speed = np.full(200, 0.01)
    speed[190] = 0.0001  # the slowest frame near the end
    speed[120] = 0.0002  # and earlier
    tl.plan(150, 200, speed, 0)
    assert tl.t1 == 190 and 100 <= tl.t0 <= 130
    src = [tl.source(i) for i in range(150, 600)]
    assert src[: 190 - 150 + 1] == list(range(150, 191))
    assert max(abs(a - b) for a, b in zip(src, src[1:])) == 1
    assert min(src) == tl.t0 and max(src) == tl.t1


def test_head_speed_is_infinite_where_the_face_is_missing():
    p = np.zeros((478, 3), np.float32)
    p[[33, 133], 0] = [0, 10]
    p[[263, 362], 0] = [60, 50]
    s = head_speed([p, p, None, p + 1])
    assert s[0] == 0 and np.isinf(s[1]) and np.isinf(s[2])


def test_tracker_passes_faceless_frames_and_interpolates_short_gaps():
    import cv2

    frames = decode(media("video/may_en.mp4"), 40)

    def mosaic(f):  # the picture as 6x6 blocks: no face, and no shot cut either
        return cv2.resize(cv2.resize(f, (6, 6), interpolation=cv2.INTER_AREA), (512, 512),
                          interpolation=cv2.INTER_NEAREST)

    for k in [10, 11] + list(range(20, 30)):  # a 2-frame dropout (interpolated), 10 frames without a face
        frames[k] = mosaic(frames[k])
    tr = StreamTracker(25.0, max_gap_s=0.25)
    out = []
    for f in frames:
        out += tr.push(f)
    out += tr.finish()
    assert [t.index for t in out] == list(range(40))
    assert all(t.points is not None for t in out[:20] + out[30:])
    assert not out[10].detected and out[10].points is not None
    assert all(t.points is None for t in out[20:30])


# -- end to end -------------------------------------------------------------------------------


def test_dub_keeps_the_video_outside_the_lower_face(tmp_path):
    """Same size, rate and frames; outside the feathered mask the output is the input up to
    encoding noise (PSNR >= 40 dB); the mouth changes; the output ends with the speech."""
    video = media("video/may_en.mp4")
    report = DubReport()
    out = dub(video, tmp_path / "d.mp4", audio=speech(3.0, tmp_path), options=FAST, report=report)
    info = probe_mp4(out)
    assert (info["width"], info["height"], info["fps"]) == (512, 512, 25.0)
    assert info["num_frames"] == 75 and abs(info["audio_duration"] - 3.0) < 0.05
    assert report.dubbed == 75 and report.no_face == 0 and report.mouth == "footage"
    src, got = decode(video, 75), decode(out)
    from facecast.face import track_video

    pts, found = track_video(src, fps=25.0, smooth=False)
    assert found.all()
    outside = np.stack([outside_mask(p, (512, 512)) for p in pts])
    assert psnr(got[outside], src[outside]) >= 40.0
    inside = ~outside
    assert psnr(got[inside], src[inside]) < 35.0  # the lower face did change


def test_dub_text_and_keep_length_and_a_video_without_sound(tmp_path):
    frames = decode(media("video/may_en.mp4"), 60)
    silent_video = write_video(tmp_path / "nosound.mp4", frames)
    report = DubReport()
    out = dub(silent_video, tmp_path / "d.mp4", text="Hi there.", options=DubOptions(scan_s=3.0, keep_length=True),
              report=report)
    info = probe_mp4(out)
    assert info["num_frames"] == 60 and report.kept > 0
    assert report.calibration is not None and not report.calibration.fitted  # no sound to fit


def test_dub_longer_speech_plays_the_video_back_and_forth(tmp_path):
    frames = decode(media("video/may_en.mp4"), 40)
    short = write_video(tmp_path / "short.mp4", frames)
    report = DubReport()
    out = dub(short, tmp_path / "d.mp4", audio=speech(3.0, tmp_path), options=FAST, report=report)
    assert probe_mp4(out)["num_frames"] == 75 and report.looped > 0
    got = decode(out)
    # No jump: consecutive output frames differ no more than the video's own neighbours do.
    own = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean((1, 2, 3)).max()
    steps = np.abs(np.diff(got.astype(np.int16), axis=0)).mean((1, 2, 3))
    assert steps.max() <= own * 1.5 + 1.0


def test_dub_frames_without_a_face_pass_through(tmp_path):
    frames = decode(media("video/may_en.mp4"), 50)
    frames[25:40] = np.roll(frames[25:40], 300, axis=2)  # the face pushed out of the picture
    frames[25:40, :, 150:] = 90
    vid = write_video(tmp_path / "away.mp4", frames)
    report = DubReport()
    out = dub(vid, tmp_path / "d.mp4", audio=speech(2.0, tmp_path), options=FAST, report=report)
    got = decode(out)
    assert report.no_face >= 10 and report.dubbed + report.no_face == 50
    assert psnr(got[28:37], decode(vid)[28:37]) > 40


def test_dub_chunks_stream_in_order_with_the_speech(tmp_path):
    chunks = list(dub_chunks(media("video/may_en.mp4"), audio=speech(2.0, tmp_path), options=FAST))
    firsts = [c.video.first_frame for c in chunks]
    assert firsts == sorted(firsts) and sum(c.video.num_frames for c in chunks) == 50
    assert all(c.video.num_frames <= 25 for c in chunks)
    assert sum(a.num_samples for c in chunks for a in c.audio) == 32000


@pytest.mark.slow
def test_dub_two_faces_picks_by_position(tmp_path, caplog):
    from facecast.face import MediapipeFaceMesh

    a = decode(media("video/may_en.mp4"), 30)
    b = decode(media("video/hdtf_aoc_en.mp4"), 30)
    vid = write_video(tmp_path / "two.mp4", np.concatenate([a, b], 2))
    src = decode(vid, 30)
    with MediapipeFaceMesh() as mesh:
        faces = sorted(mesh.detect(src[0]), key=lambda f: f.bbox[0])
    assert len(faces) == 2

    def mouth_psnr(got, face):  # over the lips' box, all frames
        x0, y0 = face.points[list(LIPS), :2].min(0).astype(int) - 5
        x1, y1 = face.points[list(LIPS), :2].max(0).astype(int) + 5
        return psnr(got[:, y0:y1, x0:x1], src[:, y0:y1, x0:x1])

    audio = speech(1.2, tmp_path)
    for k in (0, 1):
        out = dub(vid, tmp_path / f"d{k}.mp4", audio=audio, options=DubOptions(scan_s=1.0, calibrate=False,
                                                                              face_index=k))
        got = decode(out)
        assert mouth_psnr(got, faces[1 - k]) > 35  # the other face untouched (encoding noise)
        assert mouth_psnr(got, faces[k]) < mouth_psnr(got, faces[1 - k]) - 5  # this one's mouth redrawn
    with caplog.at_level("WARNING"):
        dub(vid, tmp_path / "d.mp4", audio=audio, options=DubOptions(scan_s=1.0, calibrate=False))
    assert "2 faces found" in caplog.text


# -- bad input, through the CLI -----------------------------------------------------------------


def run_cli(*args):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300)


def assert_clean_error(res, out: Path, *words):
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "error:" in res.stderr
    flat = " ".join(res.stderr.split())
    for w in words:
        assert w in flat, (w, res.stderr)
    assert not out.exists()
    assert not list(out.parent.glob(".*partial*"))


def test_cli_dub_writes_a_video(tmp_path):
    out = tmp_path / "o.mp4"
    res = run_cli("dub", str(media("video/may_en.mp4")), "--audio", str(speech(1.0, tmp_path)), "-o", str(out),
                  "--no-calibrate")
    assert res.returncode == 0, res.stderr
    assert probe_mp4(out)["num_frames"] == 25 and "25 dubbed" in " ".join(res.stderr.split())


def test_cli_dub_bad_inputs(tmp_path):
    out = tmp_path / "o.mp4"
    vid = str(media("video/may_en.mp4"))
    wav = str(speech(1.0, tmp_path))
    # an image as the video: say so, point to `say`
    assert_clean_error(run_cli("dub", str(media("portrait/sam_512.jpg")), "--audio", wav, "-o", str(out)), out,
                       "still image", "facecast say")
    # an audio-only file as the video
    assert_clean_error(run_cli("dub", wav, "--audio", wav, "-o", str(out)), out, "audio only")
    # zero-length audio
    import wave

    empty = tmp_path / "zero.wav"
    with wave.open(str(empty), "wb") as w:  # a valid WAV header with no samples
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    assert_clean_error(run_cli("dub", vid, "--audio", str(empty), "-o", str(out)), out, "zero.wav")
    # text too long, and neither / both speech inputs
    assert_clean_error(run_cli("dub", vid, "--text", "word " * 20_000, "-o", str(out)), out, "50,000")
    assert_clean_error(run_cli("dub", vid, "-o", str(out)), out, "exactly one")
    # a mouth model that does not exist: the flag is named with its choices
    assert_clean_error(run_cli("dub", vid, "--audio", wav, "--mouth-model", "neural", "-o", str(out)), out,
                       "--mouth-model", "phones")
    # the output is the input video
    copy = tmp_path / "talk.mp4"
    copy.write_bytes(Path(vid).read_bytes())
    res = run_cli("dub", str(copy), "--audio", wav, "-o", str(copy))
    assert res.returncode == 2 and "error:" in res.stderr and "input" in res.stderr and copy.stat().st_size > 0


def test_cli_dub_video_without_a_face(tmp_path):
    frames = np.full((25, 128, 128, 3), 120, np.uint8)
    frames[:, 40:80, 40:80] = 200
    vid = write_video(tmp_path / "wall.mp4", frames)
    out = tmp_path / "o.mp4"
    assert_clean_error(run_cli("dub", str(vid), "--audio", str(speech(1.0, tmp_path)), "-o", str(out)), out,
                       "wall.mp4", "no face")


def test_cli_dub_truncated_video(tmp_path):
    # moov at the end (as most cameras write): half a file does not open at all
    vid = tmp_path / "cut.mp4"
    data = Path(media("video/may_en.mp4")).read_bytes()
    vid.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o.mp4"
    assert_clean_error(run_cli("dub", str(vid), "--audio", str(speech(1.0, tmp_path)), "-o", str(out)), out, "cut.mp4")
    # moov first (web "faststart" files): it opens, decodes 2.5 s of 5, then stops
    src = av.open(str(media("video/may_en.mp4")))
    fast = tmp_path / "fast.mp4"
    with av.open(str(fast), "w", options={"movflags": "+faststart"}) as o:
        vs = o.add_stream_from_template(src.streams.video[0])
        for p in src.demux(src.streams.video[0]):
            if p.dts is not None:
                p.stream = vs
                o.mux(p)
    src.close()
    data = fast.read_bytes()
    vid.write_bytes(data[: int(len(data) * 0.6)])
    assert_clean_error(run_cli("dub", str(vid), "--audio", str(speech(4.0, tmp_path)), "-o", str(out)), out,
                       "cut.mp4", "truncated")


def test_api_dub_errors_are_typed(tmp_path):
    with pytest.raises(OutputError):
        dub(media("video/may_en.mp4"), tmp_path / "x.gif", text="Hi.")
    with pytest.raises(InputError):
        list(dub_chunks(media("video/may_en.mp4"), text="Hi.", audio="x.wav"))


def test_api_dub_refuses_hdr_video(tmp_path):
    """PQ/HLG video would come out washed out as 8-bit SDR: a clear error with a way out."""
    vid = tmp_path / "hdr.mp4"
    with av.open(str(vid), "w") as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = 64, 64, "yuv420p"
        st.codec_context.color_trc = 16  # SMPTE 2084 (PQ)
        for i in range(5):
            f = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 100 + i, np.uint8), format="rgb24")
            f.pts = i
            for p in st.encode(f):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    with pytest.raises(InputError, match="HDR"):
        dub(vid, tmp_path / "o.mp4", text="Hi.")
    assert not (tmp_path / "o.mp4").exists()


def test_dub_odd_sized_video_loses_one_row_and_column(tmp_path):
    """H.264 4:2:0 needs even sides: a 511x509 video comes out 510x508, with a note."""
    frames = decode(media("video/may_en.mp4"), 25)[:, :509, :511]
    vid = tmp_path / "odd.mp4"
    with av.open(str(vid), "w") as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = 511, 509, "yuv444p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts = i
            for p in st.encode(vf):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    report = DubReport()
    out = dub(vid, tmp_path / "d.mp4", audio=speech(1.0, tmp_path), options=FAST, report=report)
    info = probe_mp4(out)
    assert (info["width"], info["height"]) == (510, 508) and info["num_frames"] == 25
    assert any("odd" in n for n in report.notes) and report.dubbed == 25
