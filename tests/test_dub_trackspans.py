"""The face track made in pieces by worker processes (dubbing/trackspans.py): the CPU reference
is one StreamTracker over the whole video. The same faces, detections and cuts, the landmarks
within the smoothing's settling; pieces that follow different faces give None (the job then
tracks in order); the face rule's warning comes once, from the first piece; `dub` with
processes and no track tracks in pieces and draws in spans."""

from concurrent.futures import Future

import numpy as np
import pytest

from conftest import short_clip


@pytest.fixture
def short_pieces(monkeypatch):
    """Pieces of >= 0.5 s: the 2 s clip becomes 4 pieces (3 joins)."""
    import facecast.dubbing.trackspans as trackspans

    monkeypatch.setattr(trackspans, "PIECE_MIN_S", 0.5)


@pytest.fixture(scope="module")
def pool():
    from facecast.dubbing.spans import start_workers

    p = start_workers(2)
    yield p
    p.shutdown()


def test_plan_pieces_cover_the_frames_in_order():
    from facecast.dubbing.trackspans import plan_pieces

    for frames, fps, processes in [(1500, 25, 2), (15000, 25, 15), (37, 25, 8), (250, 30, 3), (1, 25, 4)]:
        pieces = plan_pieces(frames, fps, processes)
        starts = [a for a, _ in pieces]
        assert starts[0] == 0 and sum(n for _, n in pieces) == frames
        assert all(a + n == b for (a, n), b in zip(pieces, starts[1:]))
        assert len(pieces) <= 2 * processes
        assert len(pieces) == 1 or min(n for _, n in pieces) >= 4 * fps - 1
    assert len(plan_pieces(15000, 25, 15)) == 30 and len(plan_pieces(90, 25, 15)) == 1


def test_pieces_give_the_one_tracker_track(dub_clip, pool, short_pieces):
    from facecast.dubbing.mask import iod
    from facecast.dubbing.trackspans import plan_pieces, track_in_pieces
    from facecast.media import open_video

    video, _, _, one, _ = dub_clip
    src = open_video(video)
    assert len(plan_pieces(src.num_frames, src.fps, 2)) == 4
    par = track_in_pieces(src, pool, 2, frames=src.num_frames)
    assert par is not None and par.num_frames == one.num_frames == 50
    assert (par.has_face == one.has_face).all() and one.has_face.all()
    assert (par.detected == one.detected).all() and (par.cuts == one.cuts).all()
    diff = np.abs(par.points[..., :2] - one.points[..., :2]).max(axis=(1, 2))
    size = np.array([iod(p) for p in one.points])
    assert (diff / size).max() < 0.01, (diff / size).max()  # measured: ~0.2-0.6 % of the IOD on real clips
    part = track_in_pieces(src, pool, 2, frames=30)  # only what a job shows
    assert part.num_frames == 30 and (part.detected == one.detected[:30]).all()


def _fake_pool(pieces):
    class Pool:
        def __init__(self):
            self.k = 0

        def submit(self, fn, task):
            f = Future()
            f.set_result(pieces[self.k])
            self.k += 1
            return f

    return Pool()


def _piece(first, n, post, x, warnings=()):
    from facecast.dubbing.trackspans import TrackPiece

    pts = np.zeros((n + post, 478, 3), np.float32)
    pts[:, :, 0] = x + np.linspace(-40, 40, 478)  # eye corners ~ tens of px apart: IOD > 1 px
    pts[:, :, 1] = np.linspace(-30, 30, 478)[::-1]
    return TrackPiece(first, pts[:n], np.ones(n, bool), np.zeros(n, bool), pts[n:], tuple(warnings))


class _Src:
    path, fps, size = "fake.mp4", 25.0, (640, 360)


def test_pieces_that_follow_different_faces_give_none(caplog):
    import logging

    from facecast.dubbing import trackspans

    post = trackspans.StreamTracker(25.0).lookahead + 1
    same = [_piece(0, 100, post, 200, ["2 faces found; dubbing the largest"]), _piece(100, 100, post, 200.5)]
    with caplog.at_level(logging.WARNING, logger="facecast.dubbing.trackspans"):
        track = trackspans.track_in_pieces(_Src(), _fake_pool(same), 1, frames=200)
    assert track is not None and track.num_frames == 200 and track.sha256 == ""
    assert [r.getMessage() for r in caplog.records] == ["2 faces found; dubbing the largest"]  # once
    other = [_piece(0, 100, post, 200), _piece(100, 100, post, 450)]  # the second piece chose another face
    assert trackspans.track_in_pieces(_Src(), _fake_pool(other), 1, frames=200) is None
    gone = [_piece(0, 100, post, 200), _piece(100, 100, post, 450)]
    gone[0].after[:] = np.nan  # no frame both saw a face in: nothing to disagree on
    assert trackspans.track_in_pieces(_Src(), _fake_pool(gone), 1, frames=200) is not None


def test_only_the_first_piece_warns_or_fails_on_the_face_rule(tmp_path):
    """Two faces side by side: the first piece warns (default: the largest) or fails (--face 2),
    a later piece (resumed) neither."""
    import av

    from facecast.dubbing.trackspans import TrackTask, track_piece
    from facecast.errors import InputError
    from facecast.media import open_video

    one = short_clip(tmp_path / "one.mp4", 256, 30)
    two = tmp_path / "two.mp4"
    with av.open(str(two), "w") as out:
        s = out.add_stream("libx264", rate=25, options={"crf": "18"})
        s.width, s.height, s.pix_fmt = 512, 256, "yuv420p"
        for rgb in open_video(one).frames():
            wide = np.concatenate([rgb, rgb[:, ::-1]], axis=1)
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(wide), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    first = track_piece(TrackTask(str(two), 0, 10, 0, 7, None, 0.25))
    later = track_piece(TrackTask(str(two), 15, 10, 5, 5, None, 0.25))
    assert any("2 faces found" in w for w in first.warnings) and later.warnings == ()
    assert first.detected.all() and later.detected.all()
    with pytest.raises(InputError, match="face 2 does not exist"):
        track_piece(TrackTask(str(two), 0, 10, 0, 7, 2, 0.25))
    assert track_piece(TrackTask(str(two), 15, 10, 5, 5, 2, 0.25)).detected.all()  # the rightmost, as after a cut


def test_dub_without_a_track_tracks_in_pieces_and_draws_in_spans(dub_clip, tmp_path, short_pieces):
    from facecast.dubbing import DubReport, dub
    from facecast.dubbing.options import DubOptions
    from facecast.timing import Timings

    video, short, _, track, _ = dub_clip
    reports = []
    for name, processes, given in [("one", 1, track), ("pieces", 2, None)]:
        report, timings = DubReport(), Timings()
        opts = DubOptions(scan_s=2.0, calibrate=False, words=False, mouth="footage", processes=processes)
        dub(video, tmp_path / f"{name}.mp4", audio=short, options=opts, track=given, report=report, timings=timings)
        reports.append((report, timings))
    (r1, _), (r2, t2) = reports
    assert not r2.notes, r2.notes  # it drew in spans
    assert "track (workers)" in t2.seconds and "span tail" in t2.seconds
    assert (r1.frames, r1.dubbed, r1.no_face) == (r2.frames, r2.dubbed, r2.no_face) == (38, 38, 0)


def test_a_piece_of_a_real_clip_starts_where_it_is_asked(tmp_path):
    """rgb_frames(first, n) are frames() from ``first``: a piece tracks the frames it names."""
    from facecast.media import open_video

    src = open_video(short_clip(tmp_path / "may.mp4", 128, 40))
    every = [f.copy() for f in src.frames()]
    for first in (0, 7, 25, 38):
        got = list(src.rgb_frames(first, 5))
        assert len(got) == min(5, 40 - first)
        for k, f in enumerate(got):
            assert np.array_equal(f, every[first + k])
