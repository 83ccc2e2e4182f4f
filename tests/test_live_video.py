"""A video of the person as a live face (dubbing.videoface, live.video_session): frames in real-time
order, the mouth moving with speech and resting in silence, a background loop without jumps,
barge-in, the Engine, and bad inputs. A real clip (may_en.mp4, 2.5 s at 256 px) and real speech."""

import asyncio
import shutil

import numpy as np
import pytest
import torch

from conftest import media
from facecast.errors import InputError, NoFaceError
from facecast.options import StreamOptions
from facecast.types import AudioChunk, VideoFrames
from live_helpers import FPS, check_contiguous, jfk_speech, pieces

OPTS = StreamOptions(size=256, realtime=False)


def write_video(path, frames, fps=25.0):
    from facecast.media import Mp4Writer

    with Mp4Writer(path, fps=fps, width=frames.shape[2], height=frames.shape[1], crf=14) as w:
        w.write_video(VideoFrames(torch.from_numpy(np.ascontiguousarray(frames)), fps, 0))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from facecast.media import open_video

    src = open_video(media("video/may_en.mp4"), max_side=256)
    frames = np.concatenate([c.frames.numpy() for c in src])[:62]
    return write_video(tmp_path_factory.mktemp("videoface") / "may256.mp4", frames)


@pytest.fixture(scope="module")
def face(clip):
    from facecast.dubbing.videoface import open_video_face

    f = open_video_face(clip, size=256)
    yield f
    f.close()


def mouth_gaps(frames):
    """Inner-lip gap (IOD) of each frame, measured by dub's tracker on the frames themselves."""
    from facecast.dubbing.calibrate import mouth_shape
    from facecast.dubbing.track import StreamTracker

    tr = StreamTracker(FPS, max_gap_s=0.0)
    out = []
    for f in frames:
        out += tr.push(f)
    out += tr.finish()
    return np.array([mouth_shape(t.points[None])[0, 0] if t.points is not None else np.nan for t in out])


@pytest.fixture(scope="module")
def speech_then_silence(face):
    """2.4 s of real speech in 20 ms pieces, then the clock runs on to 4.0 s (silence: idle
    frames); 100 frames, longer than the 62-frame clip, so the loop turns."""
    from facecast.live.video_session import VideoSession

    s = VideoSession(face, OPTS)
    chunks = []
    for piece in pieces(jfk_speech(), 0.02):
        s.push_audio(piece)
        chunks += s.poll()
    s.advance_to(4.0)
    chunks += s.poll()
    chunks += s.close()
    return chunks


def test_frames_come_out_in_real_time_order_with_their_audio(speech_then_silence, face):
    n = check_contiguous(speech_then_silence)
    assert n == 100
    frames = torch.cat([c.video.frames for c in speech_then_silence])
    assert frames.shape == (100, 256, 256, 3) and frames.dtype == torch.uint8
    assert face.size == (256, 256) and face.num_frames == 62


def test_mouth_moves_during_speech_and_rests_in_silence(speech_then_silence, face):
    frames = torch.cat([c.video.frames for c in speech_then_silence]).numpy()
    gap = mouth_gaps(frames)
    speech, silence = gap[8:55], gap[75:100]
    assert np.isfinite(gap).mean() > 0.95
    assert np.nanmax(speech) > 0.12 and np.nanstd(speech) > 0.03, (np.nanmax(speech), np.nanstd(speech))
    assert np.nanmax(silence) < 0.06 and np.nanstd(silence) < 0.015, (np.nanmax(silence), np.nanstd(silence))
    # The footage's own mouth under those silent frames talks (may_en is speech): it was redrawn.
    own = mouth_gaps(np.stack([face.frame(face.source_index(f, FPS)).image for f in range(100)]))
    assert np.nanmax(own[75:100]) > np.nanmax(silence) + 0.03


def test_background_loops_back_and_forth_without_jumps(speech_then_silence, face):
    src = [face.source_index(f, FPS) for f in range(100)]
    steps = np.abs(np.diff(src))
    assert steps.max() == 1  # every frame's neighbour is a neighbouring real frame
    assert src[:62] == list(range(62)) or max(src) < 62
    assert max(src) <= 61 and any(b < a for a, b in zip(src, src[1:]))  # the loop turned
    frames = torch.cat([c.video.frames for c in speech_then_silence]).numpy().astype(np.int16)
    nose_y = int(face.portrait.face.points[1, 1])
    top = frames[:, : nose_y - 20]  # well above the redrawn lower face
    out_jump = np.abs(np.diff(top, axis=0)).mean(axis=(1, 2, 3))
    footage = np.stack([face.frame(j).image for j in range(face.num_frames)]).astype(np.int16)[:, : nose_y - 20]
    own_jump = np.abs(np.diff(footage, axis=0)).mean(axis=(1, 2, 3))
    assert out_jump.max() <= own_jump.max() + 1e-9, (out_jump.max(), own_jump.max())


def test_interrupt_closes_the_mouth_and_frames_go_on(face):
    from facecast.live.video_session import VideoSession
    from facecast.types import MOTION_INDEX

    s = VideoSession(face, OPTS)
    chunks = []
    speech = jfk_speech()
    for k, piece in enumerate(pieces(speech, 0.02)):
        if k * 0.02 >= 1.2:
            break
        s.push_audio(piece)
        chunks += s.poll()
    cut = s._next_frame  # frames from here on follow the interrupt
    s.interrupt()
    s.advance_to(2.4)
    chunks += s.poll() + s.close()
    check_contiguous(chunks)
    jaw = np.concatenate([c.motion.params[:, MOTION_INDEX["jaw_open"]] for c in chunks])
    assert jaw[cut - 15:cut].max() > 0.1  # it was speaking
    assert np.abs(jaw[cut + 3:]).max() < 0.03  # at rest from the third frame after the cut
    frames = torch.cat([c.video.frames for c in chunks]).numpy()
    # The drawn mouth follows through real footage (the next frame of the same take is preferred
    # over a jump), so it has closed a few frames later.
    gap = mouth_gaps(frames[cut - 15:])
    assert np.nanmax(gap[:15]) > 0.1 and np.nanmax(gap[15 + 8:]) < 0.06, gap


def test_stream_takes_a_video_by_content_and_speaks_text(clip, tmp_path):
    from facecast import stream
    from live_helpers import ToneVoice

    named_like_an_image = tmp_path / "person.jpg"
    shutil.copy(clip, named_like_an_image)

    async def run():
        return [c async for c in stream(named_like_an_image, ["Hello there, this is my video."], options=OPTS,
                                        voice=ToneVoice())]

    chunks = asyncio.run(run())
    n = check_contiguous(chunks)
    assert n == pytest.approx(6 * 0.3 * FPS, abs=2)  # six words of 0.3 s
    assert chunks[0].video.frames.shape[1:] == (256, 256, 3)


def test_engine_prepares_a_video_face_once_and_streams_it(clip, monkeypatch):
    from facecast.dubbing import trackfile, videoface
    from facecast.live.engine import Engine
    from facecast.live.messages import AudioIn, EndInput
    from facecast.live.options import EngineOptions

    calls = []
    real = trackfile.track_video_file
    monkeypatch.setattr(trackfile, "track_video_file", lambda *a, **k: calls.append(1) or real(*a, **k))
    videoface._TRACKS.clear()
    with Engine(EngineOptions(size=256, workers=0, encoders=0)) as engine:
        f1 = engine.prepare(clip)
        f2 = engine.prepare(str(clip))
        assert len(calls) == 1 and f1.size == f2.size == (256, 256)
        ids = [engine.add(f1, OPTS), engine.add(f1, OPTS)]
        speech = jfk_speech()
        for sid in ids:
            for piece in pieces(AudioChunk(speech.samples[:, : int(1.2 * 44100)], 44100), 0.04):
                engine.feed(sid, AudioIn(piece))
            engine.feed(sid, EndInput())
        got = {sid: [] for sid in ids}
        for _ in range(300):
            if all(engine.done(s) for s in ids):
                break
            engine.wait(0.2)
            for s in ids:
                got[s] += engine.read(s)
        for s in ids:
            got[s] += engine.read(s)
            assert check_contiguous(got[s]) == 30
            assert got[s][0].video.frames.shape[1:] == (256, 256, 3)


def test_a_video_without_a_face_and_an_audio_file_are_refused(tmp_path):
    from facecast.live.driver import open_session

    rng = np.random.default_rng(0)
    noise = np.repeat(rng.integers(0, 255, (1, 128, 128, 3), dtype=np.uint8), 20, axis=0)
    empty = write_video(tmp_path / "wall.mp4", noise)
    with pytest.raises(NoFaceError, match="no face found in any frame"):
        open_session(empty, StreamOptions(size=128, realtime=False))
    wav = media("audio/hdtf_radio31_en.wav")
    with pytest.raises(InputError, match="is audio only .*send the audio as speech"):
        open_session(wav, OPTS)


def test_video_face_options_have_ranges():
    from facecast.dubbing.videoface import VideoFaceOptions
    from facecast.errors import OptionError

    with pytest.raises(OptionError, match="loop_s"):
        VideoFaceOptions(loop_s=0.5)
    with pytest.raises(OptionError, match="must be a DubOptions"):
        VideoFaceOptions(dub="auto")
