"""facecast.twin: preparation checks, renderer geometry (tensor ops vs OpenCV), the .twin file,
and a tiny end-to-end train -> say on a real clip (CPU). The twin live (streams, load test):
tests/test_live_twin_session.py, test_live_driver.py, test_live_loadtest.py."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from facecast.errors import InputError
from facecast.twin.net import (RenderConfig, RenderNet, blend_mask, crop_frames, draw_sketch, lower_face_mask,
                               paste_crops, scale_affine)
from facecast.twin.options import PrepOptions
from facecast.twin.prepare import crop_affine, mouth_anchor, prepare
from tests.conftest import media, tiny_render_config

TINY = tiny_render_config()


# ---------------------------------------------------------------------------------------------
# prepare


def test_prepare_real_clip(may_track):
    f = prepare([may_track], PrepOptions(crop_px=64, min_speech_s=2.0))
    n = may_track.num_frames
    assert f.crops.shape == (n, 64, 64, 3) and f.crops.dtype == np.uint8
    assert f.mouth.shape == (n, 53, 2)
    # The lips sit inside the crop, centred horizontally, in its middle band.
    lips = f.mouth[:, :40]
    assert 0.2 < lips[..., 0].min() and lips[..., 0].max() < 0.8
    assert 0.3 < lips[..., 1].mean() < 0.7
    assert f.summary["cuts"] == 0 and f.summary["segments"] == 1
    assert 2.0 < f.summary["speech_seconds"] <= 5.1
    assert f.voiced.any() and not f.voiced.all()


def test_prepare_rejects_bad_footage(may_track):
    nan = replace(may_track, points=np.full_like(may_track.points, np.nan))
    with pytest.raises(InputError, match="no face found"):
        prepare([nan], PrepOptions(crop_px=64, min_speech_s=1))
    small = replace(may_track, points=may_track.points * 0.1)
    with pytest.raises(InputError, match="too small"):
        prepare([small], PrepOptions(crop_px=64, min_speech_s=1))
    with pytest.raises(InputError, match="only .* s of speech"):
        prepare([may_track], PrepOptions(crop_px=64, min_speech_s=60))
    holes = may_track.points.copy()
    holes[: len(holes) // 2] = np.nan
    with pytest.raises(InputError, match="no face in 50%"):
        prepare([replace(may_track, points=holes)], PrepOptions(crop_px=64, min_speech_s=1))
    with pytest.raises(InputError, match="no training videos"):
        prepare([], PrepOptions())


def test_cut_between_shots_splits_the_clip(may_track):
    pts = may_track.points.copy()
    half = len(pts) // 2
    pts[half:, :, 0] += 0.6 * 100  # the face jumps sideways by ~half the frame: a new shot
    f = prepare([replace(may_track, points=pts)], PrepOptions(crop_px=64, min_speech_s=1))
    assert f.summary["cuts"] == 1 and f.summary["segments"] == 2
    assert len(np.unique(f.segment)) == 2


# ---------------------------------------------------------------------------------------------
# renderer geometry: tensor ops against OpenCV


def test_crop_frames_matches_cv2_warp(may_track):
    from facecast.media import open_video

    frame = next(iter(open_video(media("video/may_en.mp4")))).frames[0].numpy()
    pts = may_track.points[:1]
    m = crop_affine(pts, mouth_anchor(may_track.points), 1.6, 96)
    ref = cv2.warpAffine(frame, m[0], (96, 96), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    got = crop_frames(x, torch.from_numpy(m), 96)[0].permute(1, 2, 0).numpy()
    err = np.abs(got - ref.astype(np.float32))
    assert err.mean() < 0.6 and np.percentile(err, 99) < 3, (err.mean(), err.max())


def test_paste_restores_frame_and_leaves_outside_untouched(may_track):
    from facecast.media import open_video

    frame = next(iter(open_video(media("video/may_en.mp4")))).frames[0].numpy()
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].double() / 127.5 - 1
    m = torch.from_numpy(crop_affine(may_track.points[:1], mouth_anchor(may_track.points), 1.6, 128))
    crop = crop_frames(x, m, 128)
    back = paste_crops(x, crop, m)
    d = (back - x).abs()
    assert float(d.max()) < 0.25  # bilinear there and back on real texture
    assert float(d.mean()) < 2e-3
    # A crop of constant colour changes only the pasted region, never outside the warped box.
    painted = paste_crops(x, torch.ones_like(crop), m)
    changed = (painted - x).abs().sum(1)[0] > 1e-9
    ys, xs = np.nonzero(changed.numpy())
    lips = may_track.points[0, 0, :2]  # landmark 0 = upper lip centre
    assert changed.any() and xs.min() < lips[0] < xs.max() and ys.min() < lips[1] < ys.max()
    assert changed.float().mean() < 0.2


def test_scale_affine_matches_resized_frame(may_track):
    m = torch.from_numpy(crop_affine(may_track.points[:1], mouth_anchor(may_track.points), 1.6, 64))
    p = torch.tensor([100.0, 200.0, 1.0], dtype=torch.float64)
    k = 2.0
    big = torch.tensor([(100 + 0.5) * k - 0.5, (200 + 0.5) * k - 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(m[0] @ p, scale_affine(m, k)[0] @ big)


def test_scale_affine_per_axis(may_track):
    m = torch.from_numpy(crop_affine(may_track.points[:1], mouth_anchor(may_track.points), 1.6, 64))
    p = torch.tensor([100.0, 200.0, 1.0], dtype=torch.float64)
    kx, ky = 1.5, 1.25
    q = torch.tensor([(100 + 0.5) * kx - 0.5, (200 + 0.5) * ky - 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(m[0] @ p, scale_affine(m, (kx, ky))[0] @ q)


def test_sketch_fills_open_mouth_only(may_track):
    f = prepare([may_track], PrepOptions(crop_px=64, min_speech_s=2.0))
    from facecast.twin.mouth import aperture

    ap = aperture(f.mouth)
    shut, wide = int(np.argmin(ap)), int(np.argmax(ap))
    s = draw_sketch(torch.from_numpy(f.mouth[[shut, wide]]), 64)
    assert s.shape == (2, 3, 64, 64) and s.min() >= -1 and s.max() <= 1
    inner = (s[:, 1] > 0.5).float().mean((1, 2))
    assert inner[1] > 2 * inner[0]
    assert (s[:, 0] > 0.5).any() and (s[:, 2] > 0.5).any()


def test_masks():
    m, a = lower_face_mask(64), blend_mask(64)
    assert set(np.unique(m.numpy())) <= {0.0, 1.0}
    assert (a <= m + 1e-6).all()  # never pastes where the network saw the original
    assert m[0].sum() == 0 and m[:, 0].sum() == 0 and a.max() == 1


def test_rendernet_shapes_and_mask_blindness():
    torch.manual_seed(0)
    net = RenderNet(TINY).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    s = torch.rand(2, 3, 64, 64) * 2 - 1
    y = net(x, s, x)
    assert y.shape == (2, 3, 64, 64)
    # What is under the mask cannot leak into the output (the network regenerates it).
    x2 = x.clone()
    mask = lower_face_mask(64).bool()
    x2[:, :, mask] = -x2[:, :, mask]
    assert torch.allclose(net(x2, s, x), y, atol=1e-6)


def test_context_partners_stay_in_the_shot():
    """Context swap (train.py): swapped samples take a nearby frame of the same shot, never one
    across a cut or further than max_frames; the swap fraction is what was asked."""
    from facecast.twin.train import context_partners

    seg = torch.tensor([0] * 50 + [1] * 50)
    frame_no = torch.cat([torch.arange(50), torch.arange(100, 150)])
    gen = torch.Generator().manual_seed(0)
    pick = torch.randint(0, 100, (4000,), generator=gen)
    ctx = context_partners(pick, seg, frame_no, 0.5, 6, gen)
    assert (seg[ctx] == seg[pick]).all()
    assert ((frame_no[ctx] - frame_no[pick]).abs() <= 6).all()
    swapped = (ctx != pick).float().mean()
    assert 0.35 < swapped < 0.5  # 0.5 asked, less the zero offsets and draws that left the shot
    assert (context_partners(pick, seg, frame_no, 0.0, 6, gen) == pick).all()


# ---------------------------------------------------------------------------------------------
# .twin file


def _twin_data():
    from facecast.twin.file import TwinData

    net = RenderNet(TINY)
    return TwinData(render_state=net.state_dict(), mouth_state={"w": torch.arange(6.0).reshape(2, 3)},
                    reference=torch.zeros(64, 64, 3, dtype=torch.uint8), bg_video=b"\x00\x01mp4bytes",
                    bg_affine=torch.eye(2, 3)[None].repeat(4, 1, 1), config={"render": TINY.to_json(), "x": 1})


def test_twin_file_roundtrip(tmp_path):
    from facecast.twin.file import load_twin, save_twin

    data = _twin_data()
    digest = save_twin(tmp_path / "a.twin", data)
    got = load_twin(tmp_path / "a.twin")
    assert got.sha256 == digest and got.config == json.loads(json.dumps(data.config)) and got.bg_video == data.bg_video
    for k, v in data.render_state.items():
        assert torch.equal(got.render_state[k].float(), v.half().float())
    assert torch.equal(got.mouth_state["w"], data.mouth_state["w"])
    assert not list(tmp_path.glob(".*partial"))


def test_twin_file_errors(tmp_path):
    from safetensors.torch import save_file

    from facecast.twin.file import load_twin, save_twin

    with pytest.raises(InputError, match="no such twin file"):
        load_twin(tmp_path / "missing.twin")
    p = tmp_path / "a.twin"
    save_twin(p, _twin_data())
    raw = bytearray(p.read_bytes())
    raw[-3] ^= 0xFF  # flip bits inside the last tensor
    bad = tmp_path / "bad.twin"
    bad.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="damaged"):
        load_twin(bad)
    cut = tmp_path / "cut.twin"
    cut.write_bytes(bytes(raw[:100]))
    with pytest.raises(InputError, match="cut.twin"):
        load_twin(cut)
    foreign = tmp_path / "foreign.twin"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(InputError, match="not a facecast twin"):
        load_twin(foreign)
    newer = tmp_path / "newer.twin"
    save_file({"x": torch.zeros(2)}, str(newer), metadata={"format": "facecast-twin", "version": "99"})
    with pytest.raises(InputError, match="newer"):
        load_twin(newer)
    text = tmp_path / "text.twin"
    text.write_text("hello")
    with pytest.raises(InputError, match="text.twin"):
        load_twin(text)


# ---------------------------------------------------------------------------------------------
# end to end (tiny)


def test_pingpong_never_jumps():
    from facecast.twin.generate import pingpong_index

    idx = pingpong_index(np.arange(500), 25.0, 40, 25.0)
    assert idx.min() == 0 and idx.max() == 39
    assert np.abs(np.diff(idx)).max() == 1


def test_train_and_say_tiny(tmp_path, tiny_twin):
    from facecast.media import probe_mp4
    from facecast.options import SayOptions
    from facecast.pipeline import say
    from facecast.sources import TwinSource
    from facecast.twin.generate import Twin

    path, report = tiny_twin
    assert report["render"]["steps"] == 6
    assert report["background"]["frames"] == 50  # 2 s at 25 fps, from the training part
    assert set(report["seconds"]) == {"track", "prepare", "mouth", "render", "package"}
    assert not (path.parent / "work" / "render.ckpt").exists()  # finished runs leave no checkpoint
    twin = Twin.load(path, size=128)
    assert twin.size == (128, 128) and twin.num_background_frames == 50
    out = say(TwinSource(twin, 25.0), tmp_path / "o.mp4", audio=media("audio/hdtf_radio31_en.wav"),
              options=SayOptions(size=128, first_segment_s=1.0, segment_max_s=3.0))
    info = probe_mp4(out)
    assert info["width"] == 128 and abs(info["video_duration"] - 8.0) < 0.2 and info["audio_codec"] == "aac"
    # Chunk-by-chunk mouth shapes (with the model's look-ahead pushed) match one pass over the
    # whole clip up to the log-mel frame phase (the STFT grid starts where the kept audio does).
    from facecast.audio import load_audio
    from facecast.twin.generate import MouthStream

    a = load_audio(media("audio/hdtf_radio31_en.wav")).mono()
    whole = twin.mouth(a, 25.0, 200)
    ms = MouthStream(twin, 25.0)
    parts = []
    for f0 in range(0, 200, 50):
        ms.push(f0 / 25.0, a[f0 * 640 : (f0 + 50) * 640 + 8 * 640])  # + 8 frames of look-ahead
        parts.append(ms.frames(f0, 50))
    # (in units of the model's own output: the calibrated gain scales any difference with it)
    d = np.abs(np.concatenate(parts) - whole) / twin.mouth_model.config.gain
    assert d.mean() < 1e-3 and d.max() < 0.01, (d.mean(), d.max(), twin.mouth_model.config.gain)


@pytest.mark.gpu
def test_cuda_render_matches_cpu(tiny_twin):
    """The CUDA half-precision render path against the CPU float32 reference."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from facecast.twin.generate import Twin

    gpu = Twin.load(tiny_twin[0], device="cuda", size=128)
    cpu = Twin.load(tiny_twin[0], device="cpu", size=128)
    rng = np.random.default_rng(0)
    mouth = gpu.mouth(rng.standard_normal(16000).astype(np.float32) * 0.1, 25.0, 8)
    idx = rng.integers(0, gpu.num_background_frames, 8)
    d = (gpu.render_indexed(mouth, idx).cpu().float() - cpu.render_indexed(mouth, idx).float()).abs()
    assert float(d.mean()) < 0.5 and float(d.max()) <= 16


def test_renderer_learns_and_resumes(tmp_path, may_track):
    from facecast.twin.options import RenderTrainOptions
    from facecast.twin.train import train_renderer

    f = prepare([may_track], PrepOptions(crop_px=32, min_speech_s=2.0))
    cfg = RenderConfig(size=32, widths=(16, 16, 32), mid_blocks=1)
    net, st = train_renderer(f, RenderTrainOptions(config=cfg, steps=150, batch=4, lr=2e-3))
    assert st["loss_curve"][-1] < 0.7 * st["loss_curve"][0], st["loss_curve"]
    ckpt = tmp_path / "r.ckpt"
    train_renderer(f, RenderTrainOptions(config=cfg, steps=4, batch=2, checkpoint=str(ckpt), checkpoint_every=2))
    assert ckpt.exists()
    _, st2 = train_renderer(f, RenderTrainOptions(config=cfg, steps=6, batch=2, checkpoint=str(ckpt), checkpoint_every=2))
    assert st2["steps"] == 6 and st2["steps_this_run"] == 2  # picked up at step 4


def test_cli_twin_errors(tmp_path):
    from typer.testing import CliRunner

    from facecast.cli import app

    r = CliRunner().invoke(app, ["twin", "train", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "x.twin"),
                                 "--device", "cpu"])
    assert r.exit_code == 2 and "none.mp4: no such video file" in r.output
    r = CliRunner().invoke(app, ["twin", "train", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "x.mp4")])
    assert r.exit_code == 2 and "must end in .twin" in r.output
    r = CliRunner().invoke(app, ["say", "--twin", str(tmp_path / "missing.twin"), "--text", "hi", "-o",
                                 str(tmp_path / "o.mp4")])
    assert r.exit_code == 2 and "no such twin file" in r.output
    r = CliRunner().invoke(app, ["say", "face.png", "--twin", str(tmp_path / "missing.twin"), "--text", "hi", "-o",
                                 str(tmp_path / "o.mp4")])
    assert r.exit_code == 2 and "exactly one" in r.output
    assert not (tmp_path / "o.mp4").exists()


def test_eval_twin_mode(tiny_twin):
    from facecast.quality.eval import evaluate_clip
    from facecast.quality.options import EvalOptions

    report = evaluate_clip(media("video/may_en.mp4"), EvalOptions(mode="twin", twin=tiny_twin[0], start_fraction=0.8,
                                                                  baselines=("real", "loudness"), identity=False))
    assert report.num_frames == 25  # the held-out last second only
    assert set(report.rows) == {"real", "loudness", "facecast"}
    # Every row covers the evaluated span only (the portrait rows render from the audio's start
    # and keep the held-out frames).
    assert all(r.num_frames == 25 for r in report.rows.values())
    assert "twin" in report.rows["facecast"].description
    assert any("--start-fraction" in n for n in report.notes)
    from facecast.quality.report import write_json

    write_json([report], tiny_twin[0].parent / "eval.json", {})
    assert json.loads((tiny_twin[0].parent / "eval.json").read_text())
    with pytest.raises(InputError, match="needs --twin"):
        EvalOptions(mode="twin")


def test_cli_twin_train_then_say(tmp_path):
    from typer.testing import CliRunner

    from facecast.cli import app
    from facecast.media import probe_mp4

    twin = tmp_path / "may.twin"
    r = CliRunner().invoke(app, ["twin", "train", str(media("video/may_en.mp4")), "--tiny", "--crop", "64",
                                 "--steps", "4", "--device", "cpu", "-o", str(twin)])
    assert r.exit_code == 0, r.output
    assert twin.exists() and "sha256" in r.output
    out = tmp_path / "o.mp4"
    r = CliRunner().invoke(app, ["say", "--twin", str(twin), "--audio", str(media("audio/hdtf_radio31_en.wav")),
                                 "--size", "128", "-o", str(out)])
    assert r.exit_code == 0, r.output
    info = probe_mp4(out)
    assert info["width"] == 128 and abs(info["video_duration"] - 8.0) < 0.2


def test_bad_twin_options_and_files(tmp_path):
    from typer.testing import CliRunner

    from facecast.cli import app
    from facecast.quality.options import EvalOptions
    from facecast.twin.file import load_twin, save_twin
    from facecast.twin.generate import Twin

    for bad in ("talk.mp4", "talk.mp4:1.5", ":0.2"):
        r = CliRunner().invoke(app, ["twin", "train", str(tmp_path / "v.mp4"), "--holdout", bad, "-o",
                                     str(tmp_path / "x.twin")])
        assert r.exit_code == 2 and "--holdout" in r.output, (bad, r.output)
    r = CliRunner().invoke(app, ["twin", "train", str(tmp_path / "v.mp4"), "--crop", "100", "-o",
                                 str(tmp_path / "x.twin")])
    assert r.exit_code == 2 and "multiple of 16" in r.output
    with pytest.raises(InputError, match="start-fraction"):
        EvalOptions(start_fraction=1.5)
    with pytest.raises(InputError, match="goes with --mode twin"):
        EvalOptions(twin=tmp_path / "x.twin")
    # A well-formed file whose weights do not fit the models: a clear error, not a traceback.
    save_twin(tmp_path / "odd.twin", _twin_data())
    with pytest.raises(InputError, match="re-train"):
        Twin(load_twin(tmp_path / "odd.twin"))


def test_holdout_must_name_a_training_video(may_track):
    from facecast.twin.pipeline import holdout_mask

    f = prepare([may_track], PrepOptions(crop_px=32, min_speech_s=2.0))
    assert holdout_mask(f, ("may_en.mp4", 0.2)).sum() == 25
    with pytest.raises(InputError, match="not one of the training videos"):
        holdout_mask(f, ("other.mp4", 0.2))
