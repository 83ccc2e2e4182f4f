"""dub's lip sync, link 1 only (the mouth the model asks for, no rendering): every ordered pair of
clips of one person, the video of one dubbed with the sound of another, the asked lip gap scored
against the real mouth of the clip the sound came from (`facecast eval --mode dub`'s protocol and
its "link 1" row, in seconds instead of an hour).

    .venv/bin/python benchmarks/dub_links.py [CLIP.mp4 ...] [--json out/dub_links.json]

Default clips: the three styletalk Obama clips and obama_en.mp4 of the shared media (the 4th is
another recording of the same person: its pairs are reported apart from the three-clip ones).
Per video, as `dub` does it: the face tracked with dub's own streaming tracker, the video's own
speech (first 30 s, its phones recognised) -> the calibration and the learned mouth
(dubbing.learned); per pair, the new sound cut into dub's segments at the video's frame rate,
each segment's mouth with the next one as look-ahead. Rows: `phones` (the calibrated phone
model: --mouth-model phones) and `learned` (the learned mouth: --mouth-model learned, and what
auto runs where it won on the held-out folds). Scored like the eval: the real mouth tracked with
face.track_video(smooth=False), the face mesh's inner-lip gap; r at lag 0, the best of lags
-1..+1 (the goal: >= 0.6), the best lag within +-10 frames. A 25 fps truth against a 30 fps video
is compared at the truth's frame times (the asked gap interpolated). Per clip it also prints the
recording's own sound-to-mouth timing (`offsets`: the real mouth against its own loudness and
against the phone model, no learned model), which says which pairs must peak off lag 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media" / "video"
CLIPS = ("styletalk_obama_clip1_en", "styletalk_obama_clip2_en", "styletalk_obama_clip3_en", "obama_en")
CACHE: Path | None = None
"""--cache: where each clip's analysis (tracking, its own speech, calibration) and each sound's
speech analysis per frame rate are kept between runs (pickles; delete the folder after changing
the tracker, the speech analysis or the calibration)."""


def cached(key: str, make):
    """make(), kept under CACHE/key.pkl when --cache is given."""
    if CACHE is None:
        return make()
    f = CACHE / f"{key}.pkl"
    if f.exists():
        return pickle.loads(f.read_bytes())
    value = make()
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(value))
    tmp.replace(f)
    return value


@dataclasses.dataclass
class Clip:
    path: Path
    fps: float
    n: int
    truth: np.ndarray  # [n] real inner-lip gap (eval's tracking)
    audio: np.ndarray  # 16 kHz mono
    own: object = None  # dubbing.learned.OwnSpeech
    calibration: object = None
    learned: object = None
    fit: object = None


def speeches(path: Path, fps: float, first: float | None, until: float | None = None):
    return cached(f"speech_{path.stem}_{fps:.3f}_{first}_{until}", lambda: _speeches(path, fps, first, until))


def _speeches(path: Path, fps: float, first: float | None, until: float | None = None):
    from facecast.options import SayOptions
    from facecast.segments import audio_segments
    from facecast.speech import SpeechAnalyser
    from facecast.timing import Timings

    so = SayOptions(size=None, fps=fps, segment_max_s=4.0, workers=0, words=True)
    an = SpeechAnalyser(so, None, need_aligner=True)
    out = []
    for seg in audio_segments(path, fps, 4.0, first):
        out.append((seg, an.speech(seg, Timings())))
        if until is not None and seg.end >= until:
            break
    return out


def load(path: Path) -> Clip:
    fields = cached(f"clip_{path.stem}", lambda: vars(_load(path)))  # a dict: the pickle does not name this script
    return Clip(**fields)


def _load(path: Path) -> Clip:
    from facecast import face
    from facecast.audio import load_audio
    from facecast.dubbing.calibrate import SpeakerStats, fit_calibration, mouth_shape
    from facecast.dubbing.cues import phone_coverage
    from facecast.dubbing.learned import OwnSpeech
    from facecast.dubbing.trackfile import track_video_file
    from facecast.media import open_video
    from facecast.motion import MotionModel
    from facecast.options import MotionOptions

    src = open_video(path)
    frames = np.concatenate([c.frames.numpy() for c in src])
    fps = src.fps
    raw, _ = face.track_video(frames, fps=fps, smooth=False)
    track = track_video_file(path)  # dub's own tracker: what the calibration and the learned mouth see
    a = load_audio(path, sample_rate=16000, mono=True).samples[0]
    clip = Clip(path, fps, len(frames), face.mouth_metrics(raw)["mouth_open"], a)
    own = speeches(path, fps, None, until=30.0)
    model = MotionModel(MotionOptions())
    P = np.concatenate([model.frames(s).params for _, s in own])
    k = min(len(P), len(track.points))

    def cat(xs):
        return np.concatenate(xs)[:k]

    clip.own = OwnSpeech(P[:k], track.points[:k], cat([s.voiced for _, s in own]), np.concatenate([g.analysis for g, _ in own]),
                         fps, cat([phone_coverage(s) for _, s in own]), cat([s.energy for _, s in own]))
    shape = mouth_shape(track.points[:k])
    stats = SpeakerStats()
    for s in shape:
        stats.add(s)
    clip.calibration = fit_calibration(P[:k], shape, clip.own.voiced, stats)
    return clip


def asked(video: Clip, sound: Clip, learned: bool) -> np.ndarray:
    """The asked gap of dubbing ``video`` with ``sound``, at ``video``'s frame rate."""
    from facecast.motion import MotionModel
    from facecast.options import MotionOptions

    cal = video.calibration
    lead = float(np.clip(MotionOptions().lead_s - cal.lag_frames / video.fps, 0.0, 0.25))  # as FootageSource does
    mm, ahead_mm = (MotionModel(dataclasses.replace(MotionOptions(), lead_s=lead)) for _ in range(2))
    segs = speeches(sound.path, video.fps, 2.0)
    model = video.learned if learned else None
    if model is not None:
        model.reset()  # a new job
        model.listen(sound.audio[: 60 * 16000])
    out = []
    for i, (seg, s) in enumerate(segs):
        P = mm.frames(s).params
        if model is None:
            out.append(cal.target(P)[:, 0])
            continue
        nxt = segs[i + 1] if i + 1 < len(segs) else None
        ahead = (nxt[0], nxt[1], ahead_mm.frames(nxt[1]).params) if nxt else None
        out.append(model.targets(seg, s, P, ahead)[:, 0])
    return np.concatenate(out)


def peak_lag(x: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(lag, r): where x[t + lag] correlates best with ref[t] within +-10 frames, to a fraction of
    a frame (a parabola through the peak and its neighbours); + = x later than ref."""
    from facecast.quality.metrics import lagged_corr

    lags, r = lagged_corr(x, ref, 10)
    i = int(np.nanargmax(r))
    frac = 0.0
    if 0 < i < len(r) - 1 and np.isfinite(r[i - 1 : i + 2]).all():
        a, b, c = r[i - 1], r[i], r[i + 1]
        if a - 2 * b + c < 0:
            frac = 0.5 * (a - c) / (a - 2 * b + c)
    return float(lags[i] + frac), float(r[i])


def offsets(clip: Clip) -> dict:
    """The recording's own sound-to-mouth timing, without any learned model: the lag of its real
    mouth (the eval's truth) against its sound's loudness (log RMS over 40 ms at each frame's
    time) and against the phone model's jaw on its own speech (MotionOptions' default lead), in
    frames and ms (- = the mouth leads). Recordings whose lags differ by k frames make the pairs
    between them peak at +-k whatever the dub does."""
    from facecast.dubbing.calibrate import model_mouth

    t = (np.arange(clip.n) / clip.fps * 16000).astype(int)
    w = 320
    rms = np.array([np.sqrt(np.mean(np.square(clip.audio[max(0, i - w):i + w], dtype=np.float64)) + 1e-12) for i in t])
    k = min(clip.n, len(clip.own.params))
    out = {}
    for name, ref in (("loudness", np.log(rms + 1e-4)[:k]), ("phone_jaw", model_mouth(clip.own.params[:k])[0])):
        lag, r = peak_lag(clip.truth[:k], ref)
        out[name] = {"lag_frames": lag, "lag_ms": 1000 * lag / clip.fps, "r": r}
    return out


def score(gap: np.ndarray, fps: float, truth: Clip) -> dict:
    from facecast.quality.metrics import lagged_corr

    t = np.arange(truth.n) / truth.fps
    x = np.interp(t, np.arange(len(gap)) / fps, gap) if abs(fps - truth.fps) > 1e-3 else gap[: truth.n]
    n = min(len(x), truth.n)
    lags, r = lagged_corr(x[:n], truth.truth[:n])
    i = int(np.nanargmax(r))
    return {"r0": float(r[lags == 0][0]), "near": float(np.nanmax(r[np.abs(lags) <= 1])), "best": float(r[i]),
            "lag": int(lags[i])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="keep per-clip analyses here (e.g. out/dub_links_cache)")
    a = ap.parse_args()
    global CACHE
    CACHE = a.cache
    from facecast.dubbing.learned import fit_learned
    from facecast.sysinfo import machine_info

    import torch

    torch.set_num_threads(1)  # as dub runs
    paths = a.clips or [MEDIA / f"{c}.mp4" for c in CLIPS]
    clips = {}
    learn_cpu = {}
    for p in paths:
        t = time.perf_counter()
        c = clips[p.stem] = load(p)
        t1, c1 = time.perf_counter(), time.process_time()
        c.learned, c.fit = fit_learned(c.own, c.calibration, force=True)
        learn_cpu[p.stem] = time.process_time() - c1
        print(f"{p.stem}: calibration lag {c.calibration.lag_frames:+d}, r {c.calibration.r:.2f}; {c.fit.text()}; "
              f"held-out r per cue set {({k: round(v, 2) for k, v in c.fit.r_cues.items()})}; "
              f"prepared in {t1 - t:.0f} s, learned in {time.perf_counter() - t1:.2f} s "
              f"({learn_cpu[p.stem]:.2f} s of CPU)", flush=True)
    timing = {name: offsets(c) for name, c in clips.items()}
    for name, o in timing.items():
        print(f"{name}: real mouth vs its own sound: " + "; ".join(
            f"{k} {v['lag_frames']:+.2f} frames ({v['lag_ms']:+.0f} ms, r {v['r']:.2f})" for k, v in o.items()))
    rows = []
    for b, sound in clips.items():
        for v, video in clips.items():
            if v == b:
                continue
            row = {"video": v, "sound": b}
            for name in ("phones", "learned"):
                row[name] = score(asked(video, sound, name == "learned"), video.fps, sound)
            rows.append(row)
            print(f"{v} <- {b}: " + "; ".join(f"{k} r0 {row[k]['r0']:.2f} near {row[k]['near']:.2f} best "
                                            f"{row[k]['best']:.2f} ({row[k]['lag']:+d})" for k in ("phones", "learned")),
                  flush=True)
    main3 = set(list(clips)[:3])
    summary = {}
    for label, sel in (("first 3 clips", [r for r in rows if {r["video"], r["sound"]} <= main3]),
                       ("pairs with the others", [r for r in rows if not {r["video"], r["sound"]} <= main3])):
        if not sel:
            continue
        summary[label] = {k: {m: float(np.mean([r[k][m] for r in sel])) for m in ("r0", "near", "best")}
                          for k in ("phones", "learned")}
        print(f"{label} ({len(sel)} pairs), means: " + "; ".join(
            f"{k} r0 {v['r0']:.3f} near {v['near']:.3f} best {v['best']:.3f}" for k, v in summary[label].items()))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"command": "python benchmarks/dub_links.py " + " ".join(sys.argv[1:]),
                                      "machine": machine_info(), "pairs": rows, "means": summary,
                                      "timing": timing, "learn_cpu_s": learn_cpu,
                                      "held_out": {k: {"learned": c.fit.r_learned, "phones": c.fit.r_phones,
                                                       "members": c.fit.r_cues} for k, c in clips.items()}}, indent=1))


if __name__ == "__main__":
    main()
