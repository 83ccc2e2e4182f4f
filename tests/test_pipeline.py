"""End to end: `say` on real portraits and real speech, segmenting, durations, bad inputs."""

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import media
from facecast.audio import write_wav
from facecast.media import probe_mp4
from facecast.errors import InputError, NoFaceError, OutputError
from facecast.options import SayOptions
from facecast.pipeline import say, say_chunks
from facecast.segments import audio_segments
from facecast.speech import LoudnessGain, analyse_audio

PORTRAITS = ["hallo_ref7.jpg", "sam_512.jpg", "sadtalker_people0.png", "leijun.png", "dreamtalk_face3.png",
             "bw_s12.jpg", "art0_painting.png"]
AUDIO = ["jfk_en.flac", "hdtf_radio31_en.wav", "lecture_en.wav", "speech60s_en.wav", "german_de.wav",
         "french_fr.wav", "japanese_ja.wav", "news_zh.wav"]
CLI = [str(Path(sys.executable).with_name("facecast"))]


def clip_of(name, seconds, tmp_path):
    from facecast.audio import load_audio

    a = load_audio(media(f"audio/{name}"))
    return write_wav(tmp_path / f"{Path(name).stem}_{seconds}s.wav", a.samples[0, : int(seconds * 16000)])


@pytest.mark.parametrize("portrait", PORTRAITS)
def test_every_portrait_talks(portrait, tmp_path):
    out = say(media(f"portrait/{portrait}"), tmp_path / "out.mp4", audio=clip_of("jfk_en.flac", 2.5, tmp_path),
              options=SayOptions(size=256))
    info = probe_mp4(out)
    assert info["video_codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["audio_codec"] == "aac"
    assert (info["width"], info["height"]) == (256, 256)
    assert abs(info["video_duration"] - info["audio_duration"]) <= 1 / 25 + 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("clip", AUDIO)
def test_every_audio_clip_gives_a_valid_video(clip, tmp_path):
    out = say(media("portrait/sam_512.jpg"), tmp_path / "out.mp4", audio=media(f"audio/{clip}"),
              options=SayOptions(size=256))
    info = probe_mp4(out)
    src = av.open(str(media(f"audio/{clip}")))
    duration = float(src.duration / av.time_base)
    assert abs(info["video_duration"] - duration) <= 1 / 25 + 0.03
    assert info["num_frames"] == pytest.approx(duration * 25, abs=1.5)


def test_segments_tile_the_frame_grid_and_cut_in_pauses():
    segs = list(audio_segments(media("audio/lecture_en.wav"), 25.0, segment_max_s=4.0, first_segment_s=1.5))
    assert segs[0].end <= 1.5 + 1e-6
    assert all(s.end - s.start <= 4.0 + 1e-6 for s in segs)
    for a, b in zip(segs, segs[1:]):
        assert b.first_frame == a.first_frame + a.num_frames
        assert b.start == pytest.approx(a.end)
    total = segs[-1].end
    assert segs[-1].first_frame + segs[-1].num_frames == int(np.ceil(total * 25 - 1e-9))
    # All output audio is handed on exactly once.
    n = sum(c.num_samples for s in segs for c in s.output_audio)
    assert n / 44100 == pytest.approx(total, abs=0.01)


def test_text_job_streams_chunks_with_matching_audio():
    chunks = list(say_chunks(media("portrait/leijun.png"), text="One sentence. And another one!",
                             options=SayOptions(size=128)))
    assert len(chunks) == 2
    frames = sum(c.video.num_frames for c in chunks)
    dur = sum(a.duration for c in chunks for a in c.audio)
    assert abs(frames / 25 - dur) <= 1 / 25
    assert chunks[1].video.first_frame == chunks[0].video.num_frames
    assert chunks[0].speech.phones == chunks[0].segment.phones  # TTS phones drive the motion


def test_audio_job_exposes_the_recognised_phones():
    chunks = list(say_chunks(media("portrait/leijun.png"), audio=media("audio/jfk_en.flac"),
                             options=SayOptions(size=128, first_segment_s=12.0)))
    phones = [p for c in chunks for p in c.speech.phones]
    assert any(p.phone in ("M", "B", "P") for p in phones) and any(p.phone == "SIL" for p in phones)
    assert all(c.speech.num_frames == c.video.num_frames for c in chunks)


def test_audio_job_recognises_words_unless_told_not_to():
    """SayOptions.words: the second phone timeline (recognised words) is there by default and
    absent with words=False (the cheaper alignment for slow machines)."""
    def alt(words: bool) -> list:
        chunks = list(say_chunks(media("portrait/leijun.png"), audio=media("audio/jfk_en.flac"),
                                 options=SayOptions(size=64, first_segment_s=12.0, words=words)))
        return [p for c in chunks for p in c.speech.alt_phones]

    assert any(p.phone in ("M", "B", "P") for p in alt(True))
    assert alt(False) == []


def test_analyse_audio_gives_what_say_animates():
    """analyse_audio (no portrait, no render) yields the same Speech, segment by segment, as the
    chunks of a `say` job on the same audio: studies of the motion model see what ships."""
    opts = SayOptions(size=64, words=False)
    chunks = list(say_chunks(media("portrait/leijun.png"), audio=media("audio/jfk_en.flac"), options=opts))
    speech = list(analyse_audio(media("audio/jfk_en.flac"), opts))
    assert len(speech) == len(chunks) > 1
    for s, c in zip(speech, chunks):
        assert (s.first_frame, s.num_frames, s.phones) == (c.speech.first_frame, c.speech.num_frames, c.speech.phones)
        np.testing.assert_array_equal(s.energy, c.speech.energy)
        np.testing.assert_array_equal(s.voiced, c.speech.voiced)


def test_analyse_audio_refuses_unreadable_audio_clearly(tmp_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(InputError, match="noise.wav"):
        list(analyse_audio(bad))
    with pytest.raises(InputError, match="missing.wav"):
        list(analyse_audio(tmp_path / "missing.wav"))


def test_loudness_gain_levels_quiet_and_loud_recordings_alike():
    quiet, loud = LoudnessGain(), LoudnessGain()
    v = np.ones(200, bool)
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, 200).astype(np.float32)
    a, b = quiet(base * 0.6 + 0.3, v), loud(np.clip(base + 0.4, 0, 1), v)  # ~17 dB apart
    assert abs(np.percentile(a, 90) - np.percentile(b, 90)) < 0.05


# ---- bad input: one clear line, exit code 2, no traceback, no output file ----

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


@pytest.fixture
def sam():
    return str(media("portrait/sam_512.jpg"))


def test_cli_zero_byte_audio(tmp_path, sam):
    bad = tmp_path / "empty.wav"
    bad.write_bytes(b"")
    out = tmp_path / "o.mp4"
    assert_clean_error(run_cli("say", sam, "--audio", str(bad), "-o", str(out)), out, "empty.wav")


def test_cli_corrupt_audio(tmp_path, sam):
    bad = tmp_path / "noise.mp3"
    bad.write_bytes(np.random.default_rng(1).bytes(5000))
    out = tmp_path / "o.mp4"
    assert_clean_error(run_cli("say", sam, "--audio", str(bad), "-o", str(out)), out, "noise.mp3")


def test_cli_image_without_face(tmp_path):
    from PIL import Image

    img = tmp_path / "wall.png"
    Image.fromarray(np.full((300, 300, 3), 180, np.uint8)).save(img)
    out = tmp_path / "o.mp4"
    assert_clean_error(run_cli("say", str(img), "--text", "Hello.", "-o", str(out)), out, "wall.png", "no face")


def test_cli_silent_audio(tmp_path, sam):
    silent = write_wav(tmp_path / "silence.wav", np.zeros(16000 * 2, np.float32))
    out = tmp_path / "o.mp4"
    assert_clean_error(run_cli("say", sam, "--audio", str(silent), "-o", str(out), "--size", "128"), out,
                       "silence.wav", "no speech")


def test_cli_empty_and_huge_text(tmp_path, sam):
    out = tmp_path / "o.mp4"
    assert_clean_error(run_cli("say", sam, "--text", "  ", "-o", str(out)), out, "empty")
    assert_clean_error(run_cli("say", sam, "--text", "word " * 20_000, "-o", str(out)), out, "50,000", "Split")


def test_cli_missing_output_dir_and_bad_extension(tmp_path, sam):
    out = tmp_path / "nope" / "o.mp4"
    assert_clean_error(run_cli("say", sam, "--text", "Hi.", "-o", str(out)), out, "nope")
    out = tmp_path / "o.avi"
    assert_clean_error(run_cli("say", sam, "--text", "Hi.", "-o", str(out)), out, "o.avi", ".mp4")


def test_cli_missing_portrait(tmp_path):
    out = tmp_path / "o.mp4"
    assert_clean_error(run_cli("say", str(tmp_path / "ghost.jpg"), "--text", "Hi.", "-o", str(out)), out, "ghost.jpg")


def test_api_errors_are_typed(tmp_path):
    with pytest.raises(OutputError):
        say(media("portrait/sam_512.jpg"), tmp_path / "x.gif", text="Hi.")
    with pytest.raises(InputError):
        list(say_chunks(media("portrait/sam_512.jpg"), text="Hi.", audio="x.wav"))
    with pytest.raises(NoFaceError):
        list(say_chunks(np.zeros((200, 200, 3), np.uint8), text="Hi."))


def test_cli_cuda_request_without_cuda_is_an_error(tmp_path, sam):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "o.mp4"
    assert_clean_error(run_cli("say", sam, "--text", "Hi.", "--device", "cuda", "-o", str(out)), out,
                       "--device cuda", "doctor")


def test_cli_parallel_encoders_give_the_same_video(tmp_path, sam):
    """`say --encoders 3` (segment-parallel H.264, 2 s segments) writes the same frames and sound
    track as one encoder: same frame count and durations, a keyframe every 50 frames, and the
    decoded pictures within H.264's own noise of each other."""
    clip = clip_of("jfk_en.flac", 4.5, tmp_path)
    outs = {}
    for n in (1, 3):
        out = tmp_path / f"enc{n}.mp4"
        r = run_cli("say", sam, "--audio", str(clip), "--size", "128", "--encoders", str(n), "-o", str(out))
        assert r.returncode == 0, r.stderr
        with av.open(str(out)) as c:
            keys = [i for i, p in enumerate(sorted((p for p in c.demux(video=0) if p.size), key=lambda p: p.pts))
                    if p.is_keyframe]
        with av.open(str(out)) as c:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.float64)
        outs[n] = (probe_mp4(out), keys, frames)
    (one, k1, f1), (par, kp, fp) = outs[1], outs[3]
    assert par["num_frames"] == one["num_frames"] > 100
    assert par["video_duration"] == one["video_duration"] and par["audio_duration"] == one["audio_duration"]
    assert kp == list(range(0, par["num_frames"], 50)) and k1 == [0]
    psnr = 10 * np.log10(255 ** 2 / np.mean((f1 - fp) ** 2))
    assert psnr > 35


def test_cli_rejects_bad_encoder_count(tmp_path, sam):
    out = tmp_path / "o.mp4"
    assert_clean_error(run_cli("say", sam, "--text", "Hi.", "--encoders", "0", "-o", str(out)), out, "--encoders")
