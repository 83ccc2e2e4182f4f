"""Video faces in scripts (show/video.py): a real talking clip re-lip-synced to its speaker's lines,
its mouth closed while it listens, never frozen; split, grid and solo; the video's own frame rate
resampled by time; a track file used without mediapipe; bad input at the speaker's line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import media
from facecast.cli import app
from facecast.errors import InputError
from facecast.media import probe_mp4
from facecast.show import ScriptOptions, example_script, render_script
from facecast.show.script import ScriptError, parse_script
from facecast.types import VideoFrames

CLIP_FPS = 20.0  # the clip's own rate; the show runs at 25 fps


def write_video(path: Path, frames: np.ndarray, fps: float = CLIP_FPS) -> Path:
    from facecast.media import Mp4Writer

    with Mp4Writer(path, fps=fps, width=frames.shape[2], height=frames.shape[1], crf=14) as w:
        w.write_video(VideoFrames(torch.from_numpy(np.ascontiguousarray(frames)), fps, 0))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """may_en.mp4 (real speech, 512 px) as 60 frames at 256 px and 20 fps (3 s), and the same
    frames widened to a 384x256 landscape picture (edge-padded: the face is off centre)."""
    from facecast.media import open_video

    src = open_video(media("video/may_en.mp4"), max_side=256)
    frames = np.concatenate([c.frames.numpy() for c in src])[:60]
    folder = tmp_path_factory.mktemp("videoface")
    wide = np.pad(frames, ((0, 0), (0, 0), (96, 32), (0, 0)), mode="edge")
    return write_video(folder / "may.mp4", frames), write_video(folder / "wide.mp4", wide)


@pytest.fixture
def folder(tmp_path, clips):
    shutil.copy(clips[0], tmp_path / "may.mp4")
    shutil.copy(clips[1], tmp_path / "wide.mp4")
    shutil.copy(example_script().parent / "astronaut.jpg", tmp_path / "ana.jpg")
    return tmp_path


def mouth_gaps(frames: np.ndarray) -> np.ndarray:
    """Inner-lip gap (interocular units) of each frame, measured by dub's face tracker on the
    pictures themselves (NaN where it finds no face)."""
    from facecast.dubbing.calibrate import mouth_shape
    from facecast.dubbing.track import StreamTracker

    tr = StreamTracker(25.0, max_gap_s=0.0)
    out = []
    for f in frames:
        out += tr.push(np.ascontiguousarray(f))
    out += tr.finish()
    tr.close()
    return np.array([mouth_shape(t.points[None])[0, 0] if t.points is not None else np.nan for t in out])


def decode(path: Path):
    from facecast.media import open_video

    src = open_video(path)
    return src, np.concatenate([c.frames.numpy() for c in src])


def vtt_spans(path: Path) -> dict[str, list[tuple[float, float]]]:
    """speaker -> [(start, end)] of its cues in a VTT file."""
    def sec(s: str) -> float:
        h, m, rest = s.split(":")
        return int(h) * 3600 + int(m) * 60 + float(rest)

    out: dict[str, list] = {}
    for a, b, who in re.findall(r"(\S+) --> (\S+)\n<v ([^>]+)>", path.read_text()):
        out.setdefault(who, []).append((sec(a), sec(b)))
    return out


SHOW = """---
size: {size}
layout: {layout}
speakers:
  MAY: {{face: {face}}}
  ANA: {{face: ana.jpg}}
---
MAY: Hello there. Today we look at the numbers, and they are much better than expected.
ANA: Thanks for that. It is good to hear, and we should celebrate it together.
"""


@pytest.fixture(scope="module")
def split_show(tmp_path_factory, clips):
    folder = tmp_path_factory.mktemp("split")
    shutil.copy(clips[0], folder / "may.mp4")
    shutil.copy(example_script().parent / "astronaut.jpg", folder / "ana.jpg")
    (folder / "show.md").write_text(SHOW.format(size="512x256", layout="split", face="may.mp4"))
    out = render_script(folder / "show.md", folder / "show.mp4", ScriptOptions(subtitles="vtt"))
    return out, folder / "show.vtt"


def test_the_speaking_video_face_lip_syncs_and_listens_with_its_mouth_closed(split_show):
    out, vtt = split_show
    src, frames = decode(out)
    assert src.size == (512, 256) and abs(src.fps - 25.0) < 1e-6
    spans = vtt_spans(vtt)
    may_end, ana_start, ana_end = spans["MAY"][-1][1], spans["ANA"][0][0], spans["ANA"][-1][1]
    # Length: the whole timeline (both lines and the gap between them; Piper's durations vary a
    # little from run to run, so measured against the show's own sound and subtitles).
    info = probe_mp4(out)
    assert info["num_frames"] == frames.shape[0] and info["fps"] == pytest.approx(25.0)
    assert abs(info["video_duration"] - info["audio_duration"]) < 0.05
    assert ana_end <= info["video_duration"] < ana_end + 0.5
    tile = frames[:, :, :256]  # MAY's tile (split: MAY's column first)
    gap = mouth_gaps(tile)
    t = np.arange(len(gap)) / 25.0
    speaking = gap[(t > 0.3) & (t < may_end - 0.2)]
    listening = gap[(t > ana_start + 0.2) & (t < ana_end - 0.1)]
    assert np.isfinite(gap).mean() > 0.95
    assert np.nanmax(speaking) > 0.15 and np.nanstd(speaking) > 0.03, (np.nanmax(speaking), np.nanstd(speaking))
    # Closed lips measure 0.035-0.08 on this face (the tracker's noise on a 256 px tile; Piper's
    # durations vary from run to run, and with them the footage under each line); the clip
    # itself talks all along (its own mouth opens past 0.1 in most frames), so a closed mouth
    # while listening was drawn, not filmed.
    assert np.nanmedian(listening) < 0.06 and np.nanpercentile(listening, 90) < 0.07, listening
    assert np.nanmax(listening) < 0.1 and np.nanstd(listening) < 0.02, listening
    assert np.nanpercentile(speaking, 75) > 0.12, speaking
    own = mouth_gaps(decode(out.parent / "may.mp4")[1])
    assert np.nanpercentile(own, 75) > 0.1 > np.nanpercentile(listening, 90)
    # Listening is not frozen: the footage plays on above the mouth (head, eyes).
    upper = tile[(t > ana_start) & (t < ana_end), :110].astype(np.int16)
    assert np.abs(np.diff(upper, axis=0)).mean(axis=(1, 2, 3)).max() > 0.5


def test_the_video_is_resampled_by_time_onto_the_show_fps(folder):
    from facecast.show.cast import open_cast, say_options

    script = parse_script_with(folder, "may.mp4")
    cast = open_cast(script, ScriptOptions(), 256)
    try:
        src = cast["MAY"].source
        face = src.face
        assert face.fps == pytest.approx(CLIP_FPS) and face.num_frames == 60
        # Show frame f (at f / 25 s) shows the clip's frame at that time (f * 20 / 25) until the loop
        # turns (at a low-motion frame near the clip's end); 100 frames = 4 s, beyond the 3 s clip.
        idx = [face.source_index(f, 25.0) for f in range(100)]
        assert idx[:26] == [f * 20 // 25 for f in range(26)]
        assert max(idx) <= 59 and np.abs(np.diff(idx)).max() <= 1
        assert any(b < a for a, b in zip(idx, idx[1:]))  # played back and forth, never frozen at the end
        assert say_options(ScriptOptions(), 256, 0).fps == 25.0
    finally:
        cast["MAY"].source.close()
    cast = open_cast(script, ScriptOptions(video_loop_s=1.0), 256)  # only the first second loops
    try:
        face = cast["MAY"].source.face
        assert face.num_frames == 20 and max(face.source_index(f, 25.0) for f in range(100)) <= 19
    finally:
        cast["MAY"].source.close()


def parse_script_with(folder: Path, face: str, extra: str = "", layout: str = "split", size: str = "512x256"):
    text = SHOW.format(size=size, layout=layout, face=face)
    if extra:
        text = text.replace("  MAY: {face: " + face + "}", "  MAY: {face: " + face + extra + "}")
    (folder / "show.md").write_text(text)
    return parse_script(folder / "show.md")


def test_a_landscape_video_is_cropped_to_the_square_on_its_face(folder):
    from facecast.show.cast import open_cast

    cast = open_cast(parse_script_with(folder, "wide.mp4"), ScriptOptions(), 256)
    src = cast["MAY"].source
    try:
        assert src.face.size == (384, 256) and src.size == (256, 256)
        x, y, side = src.crop
        assert side == 256 and y == 0
        assert 64 <= x <= 128  # the padding put the face 96 px right of the picture's centre ... 32 px
        p = src.face.points(0)
        cx = (p[:, 0].min() + p[:, 0].max()) / 2
        assert abs((cx - x) - 128) < 24  # the face is centred in its square
    finally:
        src.close()


@pytest.mark.parametrize("layout,size", [("grid", "256x512"), ("solo", "256x256")])
def test_grid_and_solo_show_the_video_face_at_its_tile(folder, layout, size):
    parse_script_with(folder, "may.mp4", layout=layout, size=size)
    out = render_script(folder / "show.md", folder / "show.mp4", ScriptOptions(min_shot_s=0))
    src, frames = decode(out)
    assert src.size == tuple(int(v) for v in size.split("x"))
    if layout == "grid":  # 2 faces in 256x512: one above the other, 256 px each
        tile = frames[:, :256]
    else:  # solo: MAY's shot first (its line), then ANA's
        tile = frames[:40]
    gap = mouth_gaps(tile)
    assert np.isfinite(gap[:40]).mean() > 0.9  # a face, the right way up, in the tile
    assert np.nanmax(gap[5:40]) > 0.1  # speaking
    top = tile[:40, : tile.shape[1] // 3].astype(np.int16)
    assert np.abs(np.diff(top, axis=0)).mean() > 0.3  # the footage moves


def test_a_track_file_beside_or_named_is_used_without_mediapipe(folder, monkeypatch):
    from facecast.dubbing import trackfile, videoface
    from facecast.show.cast import open_cast

    track = trackfile.track_video_file(folder / "may.mp4")
    trackfile.save_track(track, folder / "may.track.npz")
    trackfile.save_track(track, folder / "mine.npz")

    def no_tracking(*a, **k):
        raise AssertionError("tracked although a track file was there")

    monkeypatch.setattr(trackfile, "track_video_file", no_tracking)
    monkeypatch.setattr(videoface, "_TRACKS", type(videoface._TRACKS)())  # nothing cached either
    for extra in ("", ", track: mine.npz"):
        cast = open_cast(parse_script_with(folder, "may.mp4", extra), ScriptOptions(), 256)
        try:
            assert cast["MAY"].source.face.num_frames == 60
        finally:
            cast["MAY"].source.close()


def track_of_another_video(folder: Path) -> None:
    """talk.mp4 (the landscape clip) with t.npz, the track of may.mp4."""
    from facecast.dubbing import trackfile

    shutil.copy(folder / "wide.mp4", folder / "talk.mp4")
    trackfile.save_track(trackfile.track_video_file(folder / "may.mp4"), folder / "t.npz")


def write_gray_video(path: Path) -> Path:
    return write_video(path, np.full((12, 128, 128, 3), 110, np.uint8))


@pytest.mark.parametrize("make,extra,words", [
    (lambda d: write_gray_video(d / "talk.mp4"), "", "no face found in any frame"),
    (lambda d: shutil.copy(media("audio/hdtf_radio31_en.wav"), d / "talk.mp4"), "", "is audio only"),
    (lambda d: (d / "talk.mp4").write_bytes(b"\0" * 4000), "", "not a readable video file"),
    (lambda d: (d / "talk.mp4").write_bytes((d / "may.mp4").read_bytes()[:9000]), "", "cannot be decoded"),
    (lambda d: (d / "talk.mp4").write_bytes((d / "may.mp4").read_bytes()[:-30000]), "", "truncated or damaged"),
    (lambda d: track_of_another_video(d), ", track: t.npz", "was made for another video"),
])
def test_bad_video_faces_are_named_at_the_speaker_line_and_nothing_is_left(folder, make, extra, words):
    make(folder)
    parse_script_with(folder, "talk.mp4", extra)
    before = sorted(p.name for p in folder.iterdir())
    r = CliRunner().invoke(app, ["script", str(folder / "show.md"), "-o", str(folder / "out.mp4"),
                                 "--subtitles", "both"])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip() and not ln.startswith("warning")]
    assert lines and lines[-1].startswith(f"error: {folder / 'show.md'}:5: speaker MAY: face: "), r.output
    assert words in lines[-1], r.output
    assert "Traceback" not in r.output
    assert sorted(p.name for p in folder.iterdir()) == before  # no video, no subtitles, no partial files


def test_a_track_for_a_portrait_or_a_missing_track_is_an_error_at_its_line(folder):
    from facecast.show.cast import open_cast

    (folder / "t.npz").write_bytes(b"x")
    text = SHOW.format(size="512x256", layout="split", face="may.mp4").replace(
        "ANA: {face: ana.jpg}", "ANA: {face: ana.jpg, track: t.npz}")
    (folder / "show.md").write_text(text)
    with pytest.raises(ScriptError, match=r"show.md:6: speaker ANA: track: a track file belongs to a video face"):
        open_cast(parse_script(folder / "show.md"), ScriptOptions(), 256)
    with pytest.raises(ScriptError, match=r"show.md:5: speaker MAY: track file .*nope.npz not found"):
        parse_script_with(folder, "may.mp4", ", track: nope.npz")
    (folder / "junk.npz").write_bytes(b"not a track")
    with pytest.raises(ScriptError, match=r"show.md:5: speaker MAY: face: .*junk.npz: not a facecast track file") as e:
        open_cast(parse_script_with(folder, "may.mp4", ", track: junk.npz"), ScriptOptions(), 256)
    assert isinstance(e.value, InputError)


def test_a_face_is_a_video_by_content_and_an_image_or_twin_never_is(folder):
    from safetensors.numpy import save_file

    from facecast.show.cast import is_video_face

    shutil.copy(folder / "may.mp4", folder / "clip.jpg")
    shutil.copy(folder / "ana.jpg", folder / "photo.mp4")
    save_file({"w": np.zeros(4, np.float32)}, str(folder / "twin.mp4"), metadata={"format": "x"})  # twin-shaped
    (folder / "broken.mov").write_bytes(b"\0" * 100)
    assert is_video_face(folder / "clip.jpg") and is_video_face(folder / "may.mp4")
    assert is_video_face(folder / "broken.mov")  # by its name: the video decoder says what is wrong
    assert not is_video_face(folder / "photo.mp4") and not is_video_face(folder / "twin.mp4")
    assert not is_video_face(folder / "ana.jpg")
