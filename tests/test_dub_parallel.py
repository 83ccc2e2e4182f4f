"""dub's drawing fanned out over threads (DubOptions.draw_workers): the frames are exactly the serial
path's (footage and mesh mouths, faceless frames, the back-and-forth loop, small chunks), the
decoder's RGB conversion on a pool gives the same pictures, and bad values of the option and its
flag are refused clearly."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


CLI = [str(Path(sys.executable).with_name("facecast"))]


@pytest.fixture
def clip(dub_clip):
    """conftest's dub_clip: (video, short.wav, long.wav, track, folder)."""
    return dub_clip


def frames_of(video, wav, track, **kw):
    from facecast.dubbing import DubReport, dub_chunks
    from facecast.dubbing.options import DubOptions

    report = DubReport()
    opts = DubOptions(scan_s=2.0, calibrate=False, words=False, **kw)
    chunks = [c.video.frames.numpy() for c in dub_chunks(video, audio=wav, options=opts, track=track, report=report)]
    return np.concatenate(chunks), report


def without_face(track, frames):
    """The track with no face at ``frames`` (those frames must pass through untouched)."""
    from facecast.dubbing.trackfile import VideoTrack

    pts, det = track.points.copy(), track.detected.copy()
    pts[frames], det[frames] = np.nan, False
    return VideoTrack(track.sha256, track.fps, track.size, pts, det, track.cuts, track.face_index)


@pytest.mark.parametrize("mouth", ["footage", "mesh"])
def test_parallel_drawing_gives_the_serial_frames_exactly(clip, mouth):
    video, short, _, track, _ = clip
    holes = without_face(track, slice(10, 16))
    serial, r1 = frames_of(video, short, holes, mouth=mouth, draw_workers=1, chunk_frames=7)
    parallel, r3 = frames_of(video, short, holes, mouth=mouth, draw_workers=3, chunk_frames=7)
    assert serial.shape == (38, 192, 192, 3)
    assert r1.mouth == r3.mouth == mouth and r1.no_face == r3.no_face == 6 and r1.dubbed == r3.dubbed == 32
    assert np.array_equal(serial, parallel)
    # And the mouth was redrawn (a test of "equal" that holds because nothing was drawn proves nothing).
    from facecast.media import open_video

    src = np.concatenate([c.frames.numpy() for c in open_video(video)])[:38]
    changed = np.abs(serial.astype(int) - src).max(axis=(1, 2, 3))
    assert (changed[10:16] == 0).all() and (changed[:10] > 10).any()


def test_parallel_drawing_equals_serial_through_the_back_and_forth_loop(clip):
    video, _, long, track, _ = clip
    serial, r1 = frames_of(video, long, track, mouth="footage", draw_workers=1)
    parallel, r4 = frames_of(video, long, track, mouth="footage", draw_workers=4)
    assert serial.shape[0] == 75 and r1.looped == r4.looped > 0
    assert np.array_equal(serial, parallel)


def test_decoding_on_a_pool_gives_the_same_pictures(clip):
    from concurrent.futures import ThreadPoolExecutor

    from facecast.media import open_video

    video = clip[0]
    src = open_video(video)
    plain = np.stack(list(src.frames()))
    with ThreadPoolExecutor(3) as pool:
        pooled = np.stack(list(src.frames(pool, ahead=5)))
    chunked = np.concatenate([c.frames.numpy() for c in src])
    assert plain.shape == (50, 192, 192, 3)
    assert np.array_equal(plain, pooled) and np.array_equal(plain, chunked)


def test_a_damaged_video_fails_at_the_same_frame_with_a_pool(clip, tmp_path):
    """A decoding error surfaces once the frames before it are handed out, pool or not."""
    from concurrent.futures import ThreadPoolExecutor

    from facecast.errors import InputError
    from facecast.media import open_video

    data = bytearray(Path(clip[0]).read_bytes())
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data[: len(data) * 2 // 3]))  # cut off: frames missing at the end

    def count(pool):
        n, src = 0, open_video(bad)
        try:
            for _ in src.frames(pool, ahead=6):
                n += 1
        except InputError:
            return n, "error", src.decoded_until
        return n, "end", src.decoded_until

    with ThreadPoolExecutor(2) as pool:
        plain = count(None)
        assert plain == count(pool)
    assert plain[2] is not None and plain[2] < 40  # it did stop early (dub then refuses it: test_dub)


def test_draw_workers_auto_and_range():
    from facecast.dubbing.options import DubOptions
    from facecast.errors import OptionError

    assert DubOptions().draw_workers == 0 and 1 <= DubOptions().draw_threads() <= 4
    assert DubOptions(draw_workers=5).draw_threads() == 5
    for bad in (-1, 65, 2.5):
        with pytest.raises(OptionError, match="draw_workers"):
            DubOptions(draw_workers=bad)


@pytest.mark.parametrize("value, message", [("-1", "--draw-workers"), ("65", "--draw-workers"),
                                            ("many", "--draw-workers many: not a number")])
def test_cli_draw_workers_bad_values(clip, tmp_path, value, message):
    video, short, *_ = clip
    out = tmp_path / "out.mp4"
    r = subprocess.run(CLI + ["dub", str(video), "--audio", str(short), "-o", str(out), "--draw-workers", value],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
