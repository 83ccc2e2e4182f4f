"""dub from a precomputed face track (dubbing.trackfile): the same frames as tracking in the job,
no mediapipe on that path, clear errors for a wrong or damaged track, and the mesh mouth's torch
backend (the CUDA path) equal to the default OpenCV one on this CPU."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import media, short_clip
from facecast.audio import write_wav
from facecast.errors import InputError

CLI = [str(Path(sys.executable).with_name("facecast"))]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """may_en.mp4's first 2 s at 256x256 (a real talking head), and 1.5 s of real speech."""
    from facecast.audio import load_audio

    tmp = tmp_path_factory.mktemp("dubtrack")
    video = short_clip(tmp / "may256.mp4", 256, 50)
    a = load_audio(media("audio/hdtf_radio31_en.wav"), sample_rate=16000, mono=True).samples[0]
    wav = write_wav(tmp / "speech.wav", a[: int(1.5 * 16000)])
    return video, wav, tmp


@pytest.fixture(scope="module")
def track(clip):
    from facecast.dubbing.trackfile import save_track, track_video_file

    video, _, tmp = clip
    t = track_video_file(video)
    return t, save_track(t, tmp / "may256.track.npz")


def frames_of(video, wav, options, track=None):
    from facecast.dubbing import dub_chunks

    return np.concatenate([c.video.frames.numpy() for c in dub_chunks(video, audio=wav, options=options, track=track)])


def fast(**kw):
    from facecast.dubbing.options import DubOptions

    return DubOptions(scan_s=2.0, calibrate=False, **kw)


def test_track_file_round_trip_and_same_frames_as_tracking_in_the_job(clip, track):
    from facecast.dubbing.trackfile import load_track

    video, wav, _ = clip
    t, path = track
    assert t.num_frames == 50 and t.detected.sum() >= 45 and t.size == (256, 256)
    back = load_track(path, video)
    np.testing.assert_array_equal(back.points, t.points)
    np.testing.assert_array_equal(back.detected, t.detected)
    own = frames_of(video, wav, fast())
    replayed = frames_of(video, wav, fast(), track=path)
    assert own.shape == replayed.shape == (38, 256, 256, 3)
    assert np.array_equal(own, replayed)


def test_a_track_of_another_video_or_face_or_a_damaged_file_is_refused(clip, track, tmp_path):
    from facecast.dubbing.trackfile import load_track

    video, wav, _ = clip
    t, path = track
    other = tmp_path / "other.mp4"
    other.write_bytes(Path(video).read_bytes() + b"\0")  # other bytes: another SHA-256
    with pytest.raises(InputError, match="made for another video"):
        load_track(path, other)
    with pytest.raises(InputError, match="follows face the largest, this job asks for face 1"):
        frames_of(video, wav, fast(face_index=1), track=path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a facecast track file"):
        load_track(bad)
    with pytest.raises(InputError, match="no such track file"):
        load_track(tmp_path / "missing.npz")
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="not a facecast track file"):
        load_track(tmp_path / "foreign.npz")


def test_dub_with_a_track_never_imports_mediapipe(clip, track, tmp_path):
    """The GPU machine has no mediapipe: with a track, dub must not import it (blocked here)."""
    video, wav, _ = clip
    _, path = track
    out = tmp_path / "out.mp4"
    code = (
        "import sys; sys.modules['mediapipe'] = None\n"  # any import of it raises ImportError
        "from facecast.dubbing import dub\n"
        "from facecast.dubbing.options import DubOptions\n"
        f"dub({str(video)!r}, {str(out)!r}, audio={str(wav)!r}, track={str(path)!r},\n"
        "    options=DubOptions(scan_s=2.0, calibrate=False))\n"
        "assert 'mediapipe' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.exists()


def test_mesh_mouth_torch_backend_matches_the_default_on_cpu(clip, track):
    """The CUDA path of the mesh mouth is MeshRenderer's torch backend: on this CPU it must draw
    what the default (OpenCV remap) draws, up to OpenCV's 1/32-pixel interpolation."""
    from facecast.options import RenderOptions

    video, wav, _ = clip
    _, path = track
    a = frames_of(video, wav, fast(mouth="mesh"), track=path).astype(np.int16)
    b = frames_of(video, wav, fast(mouth="mesh", render=RenderOptions(backend="torch")), track=path).astype(np.int16)
    d = np.abs(a - b)
    assert d.max() <= 12 and d.mean() < 0.05, (d.max(), d.mean())


def test_cli_dub_track_then_dub_with_it(clip, tmp_path):
    video, wav, _ = clip
    trk = tmp_path / "t.npz"
    r = subprocess.run(CLI + ["dub-track", str(video), "-o", str(trk)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "50 frames, face in 50" in " ".join(r.stderr.split()) and trk.exists()
    out = tmp_path / "o.mp4"
    r = subprocess.run(CLI + ["dub", str(video), "--audio", str(wav), "--track", str(trk), "--no-calibrate",
                              "--workers", "0", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.exists()


@pytest.mark.parametrize("args, message", [
    (["-o", "{tmp}/t.txt"], "unsupported track file type"),
    (["-o", "{tmp}/nofolder/t.npz"], "does not exist"),
    (["-o", "{tmp}/t.npz", "--face", "x"], "--face x: not a number"),
    (["-o", "{tmp}/t.npz", "--face", "-1"], "--face"),
    (["-o", "{tmp}/t.npz", "--processes", "x"], "--processes x: not a number"),
    (["-o", "{tmp}/t.npz", "--processes", "-1"], "--processes"),
    (["-o", "{tmp}/t.npz", "--processes", "65"], "--processes"),
    (["-o", "{tmp}/t.npz", "--processes", "1.5"], "--processes"),
])
def test_cli_dub_track_bad_input(clip, tmp_path, args, message):
    video, _, _ = clip
    r = subprocess.run(CLI + ["dub-track", str(video)] + [a.format(tmp=tmp_path) for a in args],
                       capture_output=True, text=True)
    assert r.returncode == 2 and message in " ".join(r.stderr.split()) and "Traceback" not in r.stderr, r.stderr
    assert not list(tmp_path.glob("t.*"))


def test_cli_dub_track_of_audio_only_and_dub_with_a_wrong_track(clip, tmp_path):
    video, wav, _ = clip
    r = subprocess.run(CLI + ["dub-track", str(wav), "-o", str(tmp_path / "t.npz")], capture_output=True, text=True)
    assert r.returncode == 2 and "audio only" in " ".join(r.stderr.split()) and "Traceback" not in r.stderr, r.stderr
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    out = tmp_path / "o.mp4"
    r = subprocess.run(CLI + ["dub", str(video), "--audio", str(wav), "--track", str(bad), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not a facecast track file" in " ".join(r.stderr.split()) and "Traceback" not in r.stderr, r.stderr
    assert not out.exists()


def test_cli_dub_track_in_pieces_writes_the_one_tracker_track(tmp_path):
    """--processes 2 on a real 20 s clip: four pieces tracked by two workers; the file is this video's (it
    loads against it) and its landmarks are the one tracker's within the smoothing's settling."""
    from facecast.dubbing.mask import iod
    from facecast.dubbing.trackfile import load_track, track_video_file

    video = media("video/styletalk_obama_clip1_en.mp4")
    one = track_video_file(video)
    trk = tmp_path / "p.npz"
    r = subprocess.run(CLI + ["dub-track", str(video), "-o", str(trk), "--processes", "2"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    par = load_track(trk, video)
    assert par.num_frames == one.num_frames > 500 and (par.detected == one.detected).all() and (par.has_face == one.has_face).all()
    diff = np.abs(par.points[..., :2] - one.points[..., :2]).max(axis=(1, 2))
    assert 0 < diff.max() and (diff / np.array([iod(p) for p in one.points])).max() < 0.01


def test_cut_thumbnail_samples_large_frames_like_the_full_average():
    """dubbing.track.thumb reads every few rows and columns of a large frame: on a real 1280x720
    talking head its thumbnails and the cut measure between frames stay within a grey level or
    two of the full-frame average's (the cut threshold is CUT_DIFF = 28)."""
    import cv2

    from facecast.dubbing.track import CUT_DIFF, thumb
    from facecast.media import open_video

    src = open_video(media("video/obama_en.mp4"))
    frames = []
    for f in src.frames():
        frames.append(cv2.resize(f, (1280, 720), interpolation=cv2.INTER_CUBIC))
        if len(frames) == 30:
            break
    full = [cv2.resize(f, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32).mean(2) for f in frames]
    fast = [thumb(f) for f in frames]
    assert max(float(np.abs(a - b).mean()) for a, b in zip(full, fast)) < 2.0
    cut_full = [float(np.abs(a - b).mean()) for a, b in zip(full, full[1:])]
    cut_fast = [float(np.abs(a - b).mean()) for a, b in zip(fast, fast[1:])]
    assert np.abs(np.subtract(cut_full, cut_fast)).max() < 1.0 and max(cut_fast) < CUT_DIFF / 4
    flipped = np.ascontiguousarray(frames[0][::-1])  # another picture: a cut by either measure
    assert float(np.abs(thumb(flipped) - fast[0]).mean()) > 0.5 * float(np.abs(
        cv2.resize(flipped, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32).mean(2) - full[0]).mean())
