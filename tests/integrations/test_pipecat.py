"""facecast.integrations.pipecat in a real pipecat pipeline (PipelineWorker + WorkerRunner): the
bot's TTS audio in, RGB frames with their audio out at the stream's frame rate, idle between
utterances, barge-in, a twin face, and the errors for bad faces and options."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from conftest import media
from pipecat_helpers import mouth_box, mouth_changes, need_pipecat, of_type, run_pipeline, speech_pcm, tts_frames

FPS = 25
RATE = 24000
FRAME_SAMPLES = RATE // FPS


@pytest.fixture(scope="module")
def portrait():
    from facecast.integrations.avatar import AvatarOptions, prepare_face

    return prepare_face(media("portrait/sam_512.jpg"), AvatarOptions(size=128))


def service_for(face, **kw):
    need_pipecat()
    from facecast.integrations.avatar import AvatarOptions
    from facecast.integrations.pipecat import FacecastVideoService

    return FacecastVideoService(face=face, options=AvatarOptions(size=128, fps=FPS, **kw))


def split(down):
    """(images, audio frames of any kind, speech audio frames) downstream of the service."""
    from pipecat.frames.frames import OutputAudioRawFrame, OutputImageRawFrame, TTSAudioRawFrame

    return of_type(down, OutputImageRawFrame), of_type(down, OutputAudioRawFrame), of_type(down, TTSAudioRawFrame)


def test_speech_in_frames_out_in_step(portrait):
    """2.4 s of real speech (JFK, 24 kHz as a TTS emits it, in a burst of 20 ms frames) between
    idle stretches: one RGB frame per 1/fps with its audio, at real-time pace, the speech handed
    back in step with the video for the right number of frames, the mouth moving during speech
    and still in silence, TTSStoppedFrame after the last word."""
    need_pipecat()
    from pipecat.frames.frames import ErrorFrame, TTSStartedFrame, TTSStoppedFrame

    service = service_for(portrait)
    pcm = speech_pcm(2.4, RATE)

    async def script(queue, marks):
        await asyncio.sleep(0.8)  # idle first
        marks["feed"] = time.monotonic()
        await queue(TTSStartedFrame())
        for f in tts_frames(pcm, RATE):
            await queue(f)
        await queue(TTSStoppedFrame())
        await asyncio.sleep(2.4 + 1.4)  # the speech plays out, then idle again

    down, up, marks = run_pipeline(service, script, out_rate=RATE)
    images, audio, speech = split(down)
    n = len(images)
    # Frames: RGB at the configured size, pts on the 1/fps grid from 0, as many as the run lasted.
    assert n >= 100 and service.stats["frames"] == n
    for _, f in images:
        assert f.size == (128, 128) and f.format == "RGB" and len(f.image) == 128 * 128 * 3
    assert [f.pts for _, f in images] == [round(i / FPS * 1e9) for i in range(n)]
    span = images[-1][0] - images[0][0]
    assert abs(span - (n - 1) / FPS) < 0.5, f"{n} frames over {span:.2f} s: not paced at {FPS} fps"
    # Audio: exactly one frame's worth with every image (idle_audio), same pts, at the pipeline's rate.
    assert len(audio) == n
    assert [f.pts for _, f in audio] == [f.pts for _, f in images]
    assert all(f.sample_rate == RATE and f.num_channels == 1 and f.num_frames == FRAME_SAMPLES for _, f in audio)
    # The speech comes back as TTSAudioRawFrames for as long as it lasts (a frame or two of rounding).
    assert abs(len(speech) - 2.4 * FPS) <= 2
    got = b"".join(f.audio for _, f in speech)
    assert abs(len(got) / 2 / RATE - 2.4) <= 2 / FPS
    # ... and is the speech that went in (delayed, not altered): correlate the two.
    x, y = np.frombuffer(pcm, "<i2").astype(np.float32), np.frombuffer(got, "<i2").astype(np.float32)
    lag = int(np.argmax(np.correlate(y[:RATE], x[:RATE // 2], mode="valid")))
    m = min(len(x), len(y) - lag)
    assert np.corrcoef(x[:m], y[lag:lag + m])[0, 1] > 0.99
    # Silence between utterances is silence.
    idle = [f for _, f in audio if f.pts < speech[0][1].pts or f.pts > speech[-1][1].pts]
    assert idle and all(not any(f.audio) for f in idle)
    # In step: the first speech leaves ~lookahead + jitter + margin after it came in.
    first = speech[0][0] - marks["feed"]
    assert 0.1 < first < 1.0, f"first speech frame {first:.3f} s after the TTS audio"
    # Frames that wait for the speech leave after it, in order.
    kinds = [type(f).__name__ for _, f in down]
    assert kinds.index("TTSStartedFrame") < kinds.index("TTSAudioRawFrame")
    last_tts = max(i for i, k in enumerate(kinds) if k == "TTSAudioRawFrame")
    assert kinds.index("TTSStoppedFrame") > last_tts
    # The mouth moves during speech and rests in silence (head drift alone moves it < 1 level/frame).
    change = mouth_changes([f for _, f in images], mouth_box(portrait))
    speech_pts = {f.pts for _, f in speech}
    talking = np.array([images[i + 1][1].pts in speech_pts for i in range(n - 1)])
    after = np.array([images[i + 1][0] > speech[-1][0] + 0.5 for i in range(n - 1)])
    before = np.array([images[i + 1][1].pts < speech[0][1].pts for i in range(n - 1)])
    rest = max(change[after].max(), change[before].max())
    assert rest < 1.5, f"mouth moves {rest:.2f} grey levels per frame in silence"
    assert np.percentile(change[talking], 90) > 3 * rest and change[talking].max() > 5
    assert not of_type(up, ErrorFrame)


def test_interruption_stops_speech_at_once(portrait):
    """Barge-in in the middle of a sentence: no speech audio leaves after the InterruptionFrame,
    the mouth is at rest within ~0.45 s, frames held behind the dropped speech are dropped, and
    the next utterance plays normally."""
    need_pipecat()
    from pipecat.frames.frames import InterruptionFrame, TTSAudioRawFrame, TTSStoppedFrame

    service = service_for(portrait)

    async def script(queue, marks):
        await asyncio.sleep(0.3)
        marks["feed"] = time.monotonic()
        for f in tts_frames(speech_pcm(2.4, RATE), RATE):
            await queue(f)
        await queue(TTSStoppedFrame())  # held behind the speech: dropped with it
        await asyncio.sleep(1.3)
        marks["interrupt"] = time.monotonic()
        await queue(InterruptionFrame())
        await asyncio.sleep(1.2)
        marks["again"] = time.monotonic()
        for f in tts_frames(speech_pcm(0.8, RATE, "audio/hdtf_radio31_en.wav"), RATE):
            await queue(f)
        await asyncio.sleep(0.8 + 0.8)

    down, up, marks = run_pipeline(service, script, out_rate=RATE)
    images, audio, speech = split(down)
    t_int = next(t for t, f in down if isinstance(f, InterruptionFrame))
    assert t_int - marks["interrupt"] < 0.2
    first = [(t, f) for t, f in speech if t < marks["again"]]
    second = [(t, f) for t, f in speech if t >= marks["again"]]
    # Speech stops with the interruption: nothing after it until the next utterance.
    assert first and max(t for t, _ in first) <= t_int + 0.01
    assert len(first) < 2.4 * FPS * 0.7
    assert not [f for t, f in down if isinstance(f, TTSStoppedFrame)]
    # Frames keep coming at the frame rate through the interruption.
    gaps = np.diff([t for t, _ in images if marks["feed"] < t < marks["again"]])
    assert gaps.max() < 0.5  # no freeze (a loaded machine may hold one frame back a little)
    # The mouth is at rest soon after the interruption.
    change = mouth_changes([f for _, f in images], mouth_box(portrait))
    quiet = np.array([t_int + 0.45 < images[i + 1][0] < marks["again"] for i in range(len(images) - 1)])
    talking = np.array([images[i + 1][1].pts in {f.pts for _, f in first} for i in range(len(images) - 1)])
    assert quiet.sum() >= 10 and change[quiet].max() < 1.5
    assert change[talking].max() > 5
    # The next utterance plays in full.
    assert abs(len(second) - 0.8 * FPS) <= 2
    assert all(isinstance(f, TTSAudioRawFrame) and f.num_frames == FRAME_SAMPLES for _, f in second)


def test_twin_face_and_bad_pcm(tiny_twin):
    """A .twin face (told by content): frames at the twin's size with its audio; a malformed TTS
    frame is reported upstream as an ErrorFrame saying what is wrong, and the stream goes on."""
    need_pipecat()
    from pipecat.frames.frames import ErrorFrame, TTSAudioRawFrame

    from facecast.integrations.avatar import AvatarOptions, prepare_face

    twin = prepare_face(tiny_twin[0], AvatarOptions(size=128))
    w, h = twin.size
    service = service_for(tiny_twin[0])

    async def script(queue, marks):
        await asyncio.sleep(0.3)
        await queue(TTSAudioRawFrame(b"\x00\x01\x02", RATE, 1))  # not whole 16-bit samples
        for f in tts_frames(speech_pcm(1.2, RATE), RATE):
            await queue(f)
        await asyncio.sleep(1.2 + 0.8)

    down, up, _ = run_pipeline(service, script, out_rate=RATE)
    images, audio, speech = split(down)
    assert images and all(f.size == (w, h) and len(f.image) == w * h * 3 for _, f in images)
    assert len(audio) == len(images)
    assert abs(len(speech) - 1.2 * FPS) <= 2
    errors = [f for _, f in of_type(up, ErrorFrame)]
    assert len(errors) == 1 and "16-bit" in errors[0].error


def test_bad_faces_fail_at_construction_with_clear_errors(tmp_path):
    need_pipecat()
    from PIL import Image

    from facecast.errors import InputError, NoFaceError
    from facecast.integrations.avatar import AvatarOptions
    from facecast.integrations.pipecat import FacecastVideoService
    from facecast.options import StreamOptions

    missing = tmp_path / "nobody.jpg"
    with pytest.raises(InputError, match="nobody.jpg: no such file"):
        FacecastVideoService(face=missing)
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture at all\n" * 20)
    with pytest.raises(InputError, match="notes.jpg"):
        FacecastVideoService(face=text)
    sky = tmp_path / "sky.png"
    Image.fromarray(np.tile(np.linspace(90, 220, 256, dtype=np.uint8)[:, None, None], (1, 256, 3))).save(sky)
    with pytest.raises(NoFaceError, match="sky.png"):
        FacecastVideoService(face=sky, options=AvatarOptions(size=128))
    fake_twin = tmp_path / "model.twin"  # a safetensors file that is not a facecast twin
    header = b'{"__metadata__": {"format": "other"}}'
    fake_twin.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(InputError, match="model.twin"):
        FacecastVideoService(face=fake_twin)
    with pytest.raises(TypeError, match="face must be"):
        FacecastVideoService(face=42)
    with pytest.raises(TypeError, match="AvatarOptions"):
        FacecastVideoService(face=missing, options=StreamOptions())


@pytest.mark.parametrize("field,value,rule", [
    ("size", 15, "even whole number in 64 ... 2048 pixels"),
    ("size", 513, "even whole number"),
    ("size", 4096, "64 ... 2048"),
    ("fps", 0, "1 ... 60 frames per second"),
    ("fps", float("nan"), "1 ... 60"),
    ("device", "gpu", '"cpu", "cuda", "cuda:N", "auto"'),
    ("lookahead_s", 0.5, "0 ... 0.2 s"),
    ("jitter_s", -0.1, "0 ... 1 s"),
    ("margin_s", float("inf"), "0 ... 1 s"),
    ("audio_rate", 44000, "AAC sample rate"),
    ("face_index", -1, "0 ... 99"),
    ("idle_audio", "yes", "True or False"),
])
def test_bad_options_name_the_field(field, value, rule):
    from facecast.errors import OptionError
    from facecast.integrations.avatar import AvatarOptions

    with pytest.raises(OptionError, match=f"AvatarOptions.{field} = ") as e:
        AvatarOptions(**{field: value})
    assert rule in str(e.value)


def test_engine_shared_avatar(portrait):
    """With a live.Engine (what a GPU server shares between bots: batched rendering), the same
    frames come out: RGB at the engine's size, one audio frame each, the speech for its length,
    the mouth moving; an engine that cannot hand out RGB frames of the right size is refused."""
    need_pipecat()
    from facecast.integrations.avatar import AvatarOptions
    from facecast.integrations.pipecat import FacecastVideoService
    from facecast.live import Engine, EngineOptions

    options = AvatarOptions(size=128, fps=FPS, margin_s=0.08)
    with Engine(EngineOptions(size=128, workers=0, encoders=0)) as engine:
        service = FacecastVideoService(face=portrait, options=options, engine=engine)

        async def script(queue, marks):
            await asyncio.sleep(0.5)
            for f in tts_frames(speech_pcm(2.0, RATE), RATE):
                await queue(f)
            await asyncio.sleep(2.0 + 0.8)

        down, up, _ = run_pipeline(service, script, out_rate=RATE)
        with pytest.raises(ValueError, match="EngineOptions.size 128"):
            FacecastVideoService(face=portrait, options=AvatarOptions(size=256), engine=engine)
    images, audio, speech = split(down)
    assert len(images) > 60 and all(f.size == (128, 128) for _, f in images)
    assert [f.pts for _, f in images] == [round(i / FPS * 1e9) for i in range(len(images))]
    assert len(audio) == len(images)
    assert abs(len(speech) - 2.0 * FPS) <= 2
    change = mouth_changes([f for _, f in images], mouth_box(portrait))
    speech_pts = {f.pts for _, f in speech}
    talking = np.array([images[i + 1][1].pts in speech_pts for i in range(len(images) - 1)])
    assert change[talking].max() > 5
    with Engine(EngineOptions(size=128, workers=0, encoders=0, frames=False)) as blind:
        with pytest.raises(ValueError, match="frames=True"):
            FacecastVideoService(face=portrait, options=AvatarOptions(size=128), engine=blind)
    with pytest.raises(TypeError, match="live.Engine"):
        FacecastVideoService(face=portrait, options=AvatarOptions(size=128), engine=object())
