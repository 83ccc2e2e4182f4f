"""dub's learned mouth (facecast.dubbing.learned, cues, ridge): a closed-form per-speaker model of
the lip gap and width from the video's own speech. Synthetic speech whose loudness drives a
mouth, and synthetic regressions with known answers."""

import numpy as np
import pytest

from facecast.dubbing import learned
from facecast.dubbing.calibrate import Calibration
from facecast.dubbing.cues import OFFSETS_S, PHONE_GROUPS, around, feature_blocks, phone_coverage
from facecast.dubbing.learned import OwnSpeech, fit_learned
from facecast.dubbing import cues, ridge
from facecast.dubbing.ridge import fit_kernel_ridge, fit_ridge, folds, kernel_out_of_fold, out_of_fold
from facecast.face import mouth_metrics
from facecast.landmarks import JAW_LOWER, LIPS_INNER_LOWER, LIPS_OUTER_LOWER
from facecast.segments import Segment
from facecast.timing import Timings
from facecast.types import MOTION_INDEX, PhoneSpan, Speech

FPS = 25.0
RATE = 16000


def face(seed=0):
    """One plausible frontal face [478, 3] (a grid; only eyes and lips matter here) with the
    lower lip and jaw movable."""
    from facecast.landmarks import LEFT_EYE_CORNERS, LIPS_INNER_UPPER, LIPS_OUTER_UPPER, RIGHT_EYE_CORNERS

    rng = np.random.default_rng(seed)
    p = np.zeros((478, 3), np.float32)
    p[:, :2] = rng.uniform(80, 120, (478, 2))
    p[list(RIGHT_EYE_CORNERS), :2] = [[70, 80], [90, 80]]
    p[list(LEFT_EYE_CORNERS), :2] = [[110, 80], [130, 80]]
    for chain, y in ((LIPS_OUTER_UPPER, 138), (LIPS_INNER_UPPER, 141), (LIPS_INNER_LOWER, 142),
                     (LIPS_OUTER_LOWER, 146), (JAW_LOWER, 170)):
        p[list(chain), 0] = np.linspace(82, 118, len(chain))
        p[list(chain), 1] = y
    return p


def speech(seconds, seed, level=1.0):
    """(audio float32 at 16 kHz, per-frame gap in IOD): noise bursts whose loudness the mouth
    follows, 3-5 syllables per second, some pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    env = np.clip(np.convolve(rng.normal(0, 1, n), np.ones(5) / 5, "same"), 0, None)
    env[rng.random(n) < 0.1] = 0
    t = np.arange(int(seconds * RATE)) / RATE
    amp = np.interp(t, np.arange(n) / FPS, env)
    audio = (0.2 * level * amp * rng.normal(0, 1, len(t)) * (1 + np.sin(2 * np.pi * 180 * t))).astype(np.float32)
    return audio, (0.25 * env / env.max()).astype(np.float32)


def footage(seconds, seed, voiced_s=None):
    """OwnSpeech of a video whose mouth follows its sound; the phone model's cues say nothing
    (random params, silence for phones, no loudness), so only the sound can teach the mouth."""
    audio, gap = speech(seconds, seed)
    base = face()
    iod = 40.0
    pts = np.repeat(base[None], len(gap), 0)
    for chain in (LIPS_INNER_LOWER, LIPS_OUTER_LOWER, JAW_LOWER):
        pts[:, list(chain), 1] += gap[:, None] * iod
    voiced = np.ones(len(gap), bool)
    if voiced_s is not None:
        voiced[int(voiced_s * FPS):] = False
    n = len(gap)
    params = np.random.default_rng(seed + 7).uniform(0, 1, (n, len(MOTION_INDEX))).astype(np.float32)
    phones = np.zeros((n, len(PHONE_GROUPS)), np.float32)
    phones[:, 0] = 1
    return OwnSpeech(params, pts, voiced, audio, FPS, phones, np.zeros(n, np.float32)), gap


# -- ridge ---------------------------------------------------------------------------------------


def test_ridge_recovers_a_known_linear_relation_and_cv_prefers_little_shrinkage_on_clean_data():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (600, 12)) * rng.uniform(0.5, 3, 12) + 5
    w = rng.normal(0, 1, (12, 2))
    Y = (X - 5) @ w + 0.01 * rng.normal(0, 1, (600, 2)) + [0.3, -1.0]
    m = fit_ridge(X, Y, 1e-6)
    assert np.allclose(m.predict(X), Y, atol=0.05)
    assert np.allclose(m.coef / m.scale[:, None], w, atol=0.01)  # back in X's units
    held = folds(600, 5)
    assert [h.sum() for h in held] == [120] * 5 and np.logical_or.reduce(held).all()
    oof = out_of_fold(X, Y, (0.001, 10.0), held)
    err = {a: float(np.mean((p - Y) ** 2)) for a, p in oof.items()}
    assert err[0.001] < 0.01 < err[10.0]  # clean data: little shrinkage wins on held-out folds
    # ... and the held-out predictions equal a ridge refitted without each fold
    m0 = fit_ridge(X[~held[0]], Y[~held[0]], 0.001)
    assert np.allclose(oof[0.001][held[0]], m0.predict(X[held[0]]), atol=1e-4)


def test_ridge_cv_prefers_shrinkage_on_noise():
    rng = np.random.default_rng(1)
    X = rng.normal(0, 1, (300, 80))
    Y = X[:, :1] * 0.3 + rng.normal(0, 1, (300, 1))  # one weak real column among 80
    oof = out_of_fold(X, Y, (1e-4, 1.0), folds(300, 5))
    r = {a: np.corrcoef(p[:, 0], Y[:, 0])[0, 1] for a, p in oof.items()}
    assert r[1.0] > r[1e-4]


def test_ridge_rejects_bad_shapes():
    with pytest.raises(ValueError, match="must be"):
        fit_ridge(np.zeros((5, 2)), np.zeros((4, 1)), 1.0)
    with pytest.raises(ValueError, match="must be"):
        fit_kernel_ridge(np.zeros((5, 2)), np.zeros((4, 1)), 1.0)


def test_kernel_ridge_learns_what_a_linear_one_cannot():
    """y = x0 * x1 (a loud open vowel is not a loud closure plus a quiet vowel): no linear map
    knows it; the kernel does, on held-out folds, and its held-out predictions are the model
    refitted without each fold."""
    rng = np.random.default_rng(2)
    X = rng.normal(0, 1, (500, 4))
    Y = (X[:, 0] * X[:, 1])[:, None] + 0.1 * rng.normal(0, 1, (500, 1))
    held = folds(500, 5)
    lin = out_of_fold(X, Y, (0.01,), held)[0.01]
    ker = kernel_out_of_fold(X, Y, (1e-3,), held)[1e-3]
    r = lambda p: np.corrcoef(p[:, 0], Y[:, 0])[0, 1]  # noqa: E731
    assert r(ker) > 0.8 and abs(r(lin)) < 0.2
    m0 = fit_kernel_ridge(X[~held[0]], Y[~held[0]], 1e-3)
    assert np.allclose(ker[held[0]], m0.predict(X[held[0]]), atol=1e-4)
    assert m0.predict(X[:3]).shape == (3, 1)


def test_kernel_ridge_builds_on_at_most_kernel_rows_frames(monkeypatch):
    monkeypatch.setattr(ridge, "KERNEL_ROWS", 50)
    rng = np.random.default_rng(3)
    X = rng.normal(0, 1, (200, 3))
    Y = np.sin(X[:, :1])
    m = fit_kernel_ridge(X, Y, 1e-3)
    assert m.basis.shape == (50, 3) and m.coef.shape == (50, 1)
    assert np.corrcoef(m.predict(X)[:, 0], Y[:, 0])[0, 1] > 0.9  # 50 of 200 frames still span sin()


# -- cues ----------------------------------------------------------------------------------------


def test_phone_coverage_classes_silence_and_two_timelines():
    fps = 10.0
    s = Speech((PhoneSpan("M", 0.0, 0.2), PhoneSpan("AA", 0.2, 0.4)), np.zeros(6, np.float32), np.ones(6, bool),
               fps, 0, alt_phones=(PhoneSpan("AA", 0.0, 0.4),))
    c = phone_coverage(s)
    m = [i for i, g in enumerate(PHONE_GROUPS) if "M" in g][0]
    aa = [i for i, g in enumerate(PHONE_GROUPS) if "AA" in g][0]
    assert c.shape == (6, len(PHONE_GROUPS)) and np.allclose(c.sum(1), 1.0)
    assert np.allclose(c[0, [m, aa]], [0.5, 0.5])  # the two timelines disagree: half each
    assert np.allclose(c[3, aa], 1.0)
    assert np.allclose(c[5, 0], 1.0)  # past the phones: silence


def test_around_samples_each_offset_with_edges_held():
    x = np.arange(20, dtype=np.float32)[:, None]
    fps = 25.0
    w = around(x, fps)
    assert w.shape == (20, len(OFFSETS_S))
    k0 = int(np.argmin(np.abs(OFFSETS_S)))
    assert np.allclose(w[:, k0], x[:, 0])
    assert np.allclose(w[10, -1], 10 + OFFSETS_S[-1] * fps) and np.allclose(w[19, -1], 19)
    assert np.allclose(w[0, 0], 0)


def test_sound_cues_ignore_the_recording_level():
    audio, _ = speech(4.0, 5)
    audio = audio + np.random.default_rng(5).normal(0, 0.01, len(audio)).astype(np.float32)  # a room's noise floor
    n = 100
    args = (0.0, 0, FPS, np.zeros((n, len(MOTION_INDEX)), np.float32), np.zeros((n, len(PHONE_GROUPS))),
            np.zeros(n), np.zeros(n, bool))
    a = feature_blocks(audio, *args)["sound"]
    b = feature_blocks(audio * 0.05, *args)["sound"]  # 26 dB quieter: each recording against its own mean
    # Against a fixed reference the quieter one would read 2 ln 20 = 6.0 lower in every band.
    assert np.abs(a - b).mean() < 0.05 and np.abs(a - b).max() < 0.6


def test_sound_cues_are_smoothed_along_time(monkeypatch):
    """Each sample of the sound block reads the ~40 ms around it (MEL_SMOOTH_S), not one 25 ms
    window: a 10 ms click spreads over the neighbouring frames' cues instead of hitting one."""
    audio = np.zeros(RATE * 2, np.float32)
    audio[RATE: RATE + 160] = np.random.default_rng(6).normal(0, 0.5, 160)
    n = 50
    args = (0.0, 0, FPS, np.zeros((n, len(MOTION_INDEX)), np.float32), np.zeros((n, len(PHONE_GROUPS))),
            np.zeros(n), np.zeros(n, bool))

    def click_frames():
        centre = list(OFFSETS_S).index(0.0)
        x = feature_blocks(audio, *args)["sound"].reshape(n, cues.MELS, len(OFFSETS_S))[:, :, centre].mean(1)
        return int((x > x.min() + 0.25 * (x.max() - x.min())).sum())  # frames whose own sample hears the click

    smoothed = click_frames()
    monkeypatch.setattr(cues, "MEL_SMOOTH_S", 0.0)
    assert smoothed > click_frames() >= 1


# -- the learned mouth ---------------------------------------------------------------------------


def _segments(audio, n):
    half = n // 2
    cut = int(half / FPS * RATE)
    return [Segment(0.0, half / FPS, 0, half, audio[:cut], ()),
            Segment(half / FPS, n / FPS, half, n - half, audio[cut:], ())]


def _speech(seg):
    return Speech((), np.zeros(seg.num_frames, np.float32), np.ones(seg.num_frames, bool), FPS, seg.first_frame)


def test_learned_mouth_beats_the_phones_and_follows_new_speech():
    own, _ = footage(30.0, 1)
    model, fit = fit_learned(own, Calibration(0.0, 0.8))
    assert fit.used and model is not None, fit.why
    for lrn in learned.LEARNERS:  # each cue set, linear and kernel
        assert fit.r_cues[f"{lrn}: sound + motion"] > 0.5 > fit.r_cues[f"{lrn}: motion"]  # the sound knows the mouth
        assert fit.r_cues[f"{lrn}: motion"] < 0.3 < fit.r_learned  # the phone model's cues alone know nothing
    assert len(model.members) == len(fit.r_cues) == 2 * len(learned.CUE_SETS)
    assert fit.r_learned >= fit.r_phones + learned.MIN_GAIN and fit.seconds < 30
    # New speech in two contiguous segments, the second the first's look-ahead: the targets
    # follow its mouth, on this speaker's scale.
    audio, gap = speech(8.0, 2, level=0.3)  # another recording, 10 dB quieter
    P = np.zeros((len(gap), len(MOTION_INDEX)), np.float32)
    segs = _segments(audio, len(gap))
    model.listen(audio)
    targets = np.concatenate([model.targets(segs[0], _speech(segs[0]), P[:segs[0].num_frames],
                                            (segs[1], _speech(segs[1]), P[segs[1].first_frame:])),
                              model.targets(segs[1], _speech(segs[1]), P[segs[1].first_frame:])])
    assert targets.shape == (len(gap), 2) and np.isfinite(targets).all()
    assert np.corrcoef(targets[:, 0], gap)[0, 1] > 0.6
    assert 0.0 <= targets[:, 0].min() and targets[:, 0].max() <= 0.4  # about the range it saw (0 ... 0.25)
    assert "learned mouth" in fit.text()


def test_look_ahead_reaches_across_the_cut():
    """The last frames of a segment read the next segment's sound when it is given."""
    own, _ = footage(30.0, 1)
    model, _ = fit_learned(own, Calibration(0.0, 0.8), force=True)
    audio, gap = speech(8.0, 3)
    P = np.zeros((len(gap), len(MOTION_INDEX)), np.float32)
    segs = _segments(audio, len(gap))
    model.listen(audio)
    nxt = (segs[1], _speech(segs[1]), P[segs[1].first_frame:])
    with_ahead = model.targets(segs[0], _speech(segs[0]), P[:segs[0].num_frames], nxt)
    model._tail_end = None
    without = model.targets(segs[0], _speech(segs[0]), P[:segs[0].num_frames])
    k = int(learned.AHEAD_S * FPS)
    assert np.allclose(with_ahead[:-k], without[:-k], atol=1e-4)
    assert not np.allclose(with_ahead[-3:], without[-3:], atol=1e-4)


def test_too_little_speech_keeps_the_phones_and_says_why():
    own, _ = footage(20.0, 3, voiced_s=6.0)
    model, fit = fit_learned(own, Calibration(0.0, 0.8))
    assert model is None and not fit.used and "needs 10" in fit.why
    assert fit.text().startswith("phone-driven mouth")


def test_phones_stay_where_the_learned_mouth_does_not_win():
    """A video whose mouth the phone model already explains: the learned mouth cannot beat it by
    MIN_GAIN on held-out folds, so the phones stay (and `learned` forces the model anyway)."""
    own, gap = footage(30.0, 4)
    own.params = np.zeros_like(own.params)
    own.params[:, MOTION_INDEX["jaw_open"]] = gap / 0.25  # the phone model's jaw is the real mouth
    model, fit = fit_learned(own, Calibration(0.0, 0.8))
    assert fit.r_phones > 0.99
    assert model is None and "did not beat the phones" in fit.why, fit.text()
    forced, fit2 = fit_learned(own, Calibration(0.0, 0.8), force=True)
    assert forced is not None and fit2.used


def test_timings_tell_each_stage_as_it_starts():
    seen = []
    t = Timings(on_stage=seen.append)
    with t.stage("learn"):
        pass
    with t.stage("draw"):
        pass
    assert seen == ["learn", "draw"] and set(t.seconds) == {"learn", "draw"}


def test_eval_links_score_each_step_of_the_chain():
    """quality.dub_eval's links: asked vs real (with its lag), drawn vs asked, measured vs both."""
    from pathlib import Path

    from facecast.quality.dub_eval import Truth, _links

    own, gap = footage(8.0, 4)
    real = mouth_metrics(own.points)["mouth_open"]
    truth = Truth(Path("b.mp4"), FPS, own.points, own.voiced, Path("b.wav"), len(gap))
    asked = np.concatenate([np.full(2, real[0]), real[:-2]])  # the real mouth, 2 frames late
    drawn = asked + np.random.default_rng(0).normal(0, 0.01, len(asked))
    links = _links({"asked": list(asked), "drawn": list(drawn)}, drawn, truth, len(gap))
    assert links["asked_lag"] == 2 and links["asked_corr_best"] > 0.99 > links["asked_corr"]
    assert 0.8 < links["drawn_vs_asked"] < 1.0 and links["rendered_vs_drawn"] > 0.999


def test_dub_learns_the_speakers_mouth_from_a_real_video_in_seconds(tmp_path):
    """End to end on a real clip (20 s of one speaker): the video's own speech trains the model
    (the learn stage takes seconds, not minutes), the new speech is drawn with it, and the
    summary says so."""
    from conftest import media
    from facecast.audio import load_audio, write_wav
    from facecast.dubbing import DubReport, dub
    from facecast.dubbing.options import DubOptions

    video = media("video/styletalk_obama_clip1_en.mp4")
    a = load_audio(media("audio/hdtf_radio31_en.wav"), sample_rate=16000, mono=True)
    wav = write_wav(tmp_path / "new.wav", a.samples[0, : 4 * 16000])
    report, timings = DubReport(), Timings(on_stage=lambda name: stages.append(name))
    stages: list[str] = []
    report.trace = {}
    out = dub(video, tmp_path / "out.mp4", audio=wav, options=DubOptions(mouth_model="learned", scan_s=20.0),
              report=report, timings=timings)
    assert out.exists() and report.learned is not None and report.learned.used, report.text()
    assert report.learned.speech_s >= learned.MIN_SPEECH_S and "learned mouth" in report.text()
    assert timings.seconds["learn"] < 20  # ~1 s on a free core; the twin's training took minutes
    assert stages.index("footage") < stages.index("calibrate") < stages.index("learn") < stages.index("draw")
    asked = np.asarray(report.trace["asked"])
    assert len(asked) == 120 and np.isfinite(asked).mean() > 0.9 and np.nanstd(asked) > 0.01
