"""How far can facecast's generic, phone-driven mouth go? Experiments against real mouths.

Reads a ``facecast eval --json`` file (it holds every clip's real per-frame mouth opening),
re-runs the speech analysis `say` does on each clip's sound track
(:func:`facecast.pipeline.analyse_audio`) and scores variants of the motion model by the Pearson
correlation, at lag 0, of the jaw parameter with the real mouth opening. Nothing is rendered: the
jaw stands in for the rendered mouth (``facecast eval`` measures r = 0.84-0.93 between the two per
clip), so a variant costs seconds instead of a 25-minute eval run.

Rows of the output table:

  shipped                 MotionModel() as it ships, and the loudness-only baseline's jaw
  timing, shape           lead, look-ahead, output smoothing, loudness gain, mouth opening ahead of
                          phrase onsets, one phone timeline instead of two
  viseme table, LOSO      the jaw is linear in the viseme table's jaw targets v (the blending
                          weights do not depend on them): jaw = F @ v. v is fitted by ridge
                          regression towards the shipped table on the clips of all other speakers
                          and scored on the held-out speaker's clips
  per-clip table          v fitted on the first half of a clip, scored on its second half (and,
                          as an upper bound nobody can ship, in-sample on the whole clip)
  acoustic ridge, LOSO    per-clip normalised log-mel windows (+ the shipped jaw) -> opening,
                          ridge, scored on held-out speakers

Usage:
    python scripts/lipsync_lab.py out/eval.json [--media ../shared/media/video] [--markdown out/lab.md]

It reads motion.py's private tables (_VISEME, time constants): it studies that module's internals
and checks its own decomposition against MotionModel (the "decomposition check" line).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np

from facecast import motion as M
from facecast.audio import load_audio
from facecast.options import MotionOptions, SayOptions
from facecast.pipeline import analyse_audio
from facecast.twin.features import audio_features
from facecast.twin.mouth import MouthConfig

# Clips of one person are one speaker for leave-one-speaker-out (LOSO) fits; any other clip is a
# speaker of its own.
SPEAKERS = {"obama_en": "obama", "styletalk_obama_clip1_en": "obama", "styletalk_obama_clip2_en": "obama",
            "styletalk_obama_clip3_en": "obama"}
PHONES = list(M._VISEME)


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over the frames both have (series may differ by a frame at the end)."""
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - np.nanmean(x)) / (np.nanstd(x) + 1e-9)


@dataclasses.dataclass
class ClipData:
    name: str
    fps: float
    speech: list        # [Speech] per segment, as `say` animates them
    real: np.ndarray    # [N] real mouth opening (IOD), NaN where no face was tracked
    audio16k: np.ndarray
    rendered: np.ndarray | None  # [N] the eval's facecast row, measured on its rendered frames


def load_clips(eval_json: Path, media: Path) -> list[ClipData]:
    clips = []
    for c in json.loads(eval_json.read_text())["clips"]:
        path = media / Path(c["path"]).name
        real = np.array([np.nan if v is None else v for v in c["series"]["real.mouth_open"]], float)
        speech = list(analyse_audio(path, SayOptions(size=None, fps=c["fps"])))
        audio = load_audio(path, sample_rate=16000, mono=True).samples[0]
        fc = c["series"].get("facecast.mouth_open")
        rendered = None if fc is None else np.array([np.nan if v is None else v for v in fc], float)
        clips.append(ClipData(c["clip"], c["fps"], speech, real, audio, rendered))
        print(f"analysed {c['clip']}", flush=True)
    return clips


def jaw(clip: ClipData, opt: MotionOptions = MotionOptions(), speech=None) -> np.ndarray:
    """MotionModel's jaw_open [N] for the clip (its own segments, as `say` runs them)."""
    model = M.MotionModel(opt)
    out = np.concatenate([model.frames(s).params[:, 0] for s in (speech or clip.speech)])
    return _fit_len(out, len(clip.real))


def _fit_len(x: np.ndarray, n: int) -> np.ndarray:
    """x cut or padded (last frame repeated) to the real clip's n frames (they differ by <= 1)."""
    return x[:n] if len(x) >= n else np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])


def jaw_features(clip: ClipData, opt: MotionOptions = MotionOptions()) -> np.ndarray:
    """F [N, P + 2] with MotionModel's jaw ~= F @ [v_phone..., v_unknown, 1]: passes 1, 2, 4, 5 of
    motion.py for the jaw only (closures, the pause floor and the final clip left out, which is
    why it is checked against MotionModel)."""
    rows = []
    for sp in clip.speech:
        fps, n, f0 = sp.fps, sp.num_frames, sp.first_frame
        offsets = (np.arange(M._SUBSTEPS) + 0.5) / M._SUBSTEPS - 0.5
        fine_t = ((f0 + np.arange(n))[:, None] + offsets[None, :]).reshape(-1) / fps + opt.lead_s
        lead = int(round(opt.lead_s * fps))
        energy = M._ahead(sp.energy.astype(np.float32), lead)
        voiced = M._soften(M._ahead(sp.voiced.astype(np.float32), lead), fps)
        gain_energy = M._soften(energy, fps, tau=0.06)
        gain = 0.55 + 0.6 * M._smoothstep(gain_energy * 1.4)
        per_source = []
        for phones in [sp.phones] + ([sp.alt_phones] if sp.alt_phones else []):
            F = np.zeros((fine_t.size, len(PHONES) + 1))
            den = np.full(fine_t.size, 1e-3)
            tau_before = max(opt.lookahead_s, 0.02)
            for t, p in zip(M.mouth_targets(phones), phones):
                dt = fine_t - t.center
                w = np.exp(-np.maximum(np.abs(dt) - t.half, 0) / np.where(dt < 0, tau_before, M._TAU_AFTER[0]))
                w *= t.dominance[0]
                den += w
                F[:, PHONES.index(p.phone) if p.phone in PHONES else len(PHONES)] += w
            F = (F / den[:, None]).reshape(n, M._SUBSTEPS, -1).mean(1)
            spoken = M.spoken_frames(phones, n, f0, fps, opt)
            phone_part = np.where(spoken[:, None], F * gain[:, None], 0.0)
            energy_part = np.where(spoken, 0.0, 0.65 * M._smoothstep(gain_energy * 1.3))
            per_source.append(np.concatenate([phone_part, energy_part[:, None]], 1) * voiced[:, None] * opt.jaw_scale)
        rows.append(np.mean(per_source, 0))
    return _fit_len(np.concatenate(rows), clip.real.shape[0])


def shipped_table() -> np.ndarray:
    """The shipped jaw targets, in jaw_features' column order (jaw contrast applied)."""
    v = [M._viseme(p, False)[0][0] for p in PHONES]
    return np.array(v + [0.3, 1.0])  # unknown phone, energy-only part


def ridge(X: np.ndarray, y: np.ndarray, w: np.ndarray, lam: float, prior: np.ndarray) -> np.ndarray:
    """argmin sum w (y - X v)^2 + lam |v - prior|^2."""
    Xw = X * w[:, None]
    return np.linalg.solve(Xw.T @ X + lam * np.eye(X.shape[1]), Xw.T @ y + lam * prior)


def _stack(clips: list[ClipData], feats: dict[str, np.ndarray]):
    """Per-clip centred features, z-scored real opening, and weights giving every clip equal say."""
    Xs, ys, ws = [], [], []
    for c in clips:
        ok = np.isfinite(c.real) & np.isfinite(feats[c.name]).all(1)
        X = feats[c.name][ok]
        Xs.append(X - X.mean(0))
        ys.append(zscore(c.real[ok]))
        ws.append(np.full(ok.sum(), 1.0 / ok.sum()))
    return np.concatenate(Xs), np.concatenate(ys), np.concatenate(ws)


def loso(clips: list[ClipData], feats: dict[str, np.ndarray], lam: float, prior_fn) -> dict[str, float]:
    """Fit on all speakers but one, score that one's clips; every speaker in turn."""
    speaker = {c.name: SPEAKERS.get(c.name, c.name) for c in clips}
    out = {}
    for s in sorted(set(speaker.values())):
        train = [c for c in clips if speaker[c.name] != s]
        X, y, w = _stack(train, feats)
        v = ridge(X, y, w, lam, prior_fn(X, y, w))
        for c in clips:
            if speaker[c.name] == s:
                out[c.name] = corr(feats[c.name] @ v, c.real)
    return out


@contextmanager
def jaw_gain(base: float, slope: float):
    """motion.loudness with another jaw gain (base + slope * smoothstep(1.4 e))."""
    def loudness(mouth, energy, has_phones, scale=1.0):
        g = base + slope * M._smoothstep(energy * 1.4)
        mouth[:, 0] = scale * np.where(has_phones, mouth[:, 0] * g, 0.65 * M._smoothstep(energy * 1.3))
        return mouth
    with mock.patch.object(M, "loudness", loudness):
        yield


def open_before_onsets(speech, frames: int):
    """Speech with the VAD's speech stretches starting ``frames`` earlier."""
    out = []
    for s in speech:
        v = s.voiced.copy()
        for i in np.nonzero(s.voiced[1:] & ~s.voiced[:-1])[0] + 1:
            v[max(i - frames, 0):i] = True
        out.append(dataclasses.replace(s, voiced=v))
    return out


def experiments(clips: list[ClipData]) -> list[tuple[str, dict[str, float]]]:
    rows: list[tuple[str, dict[str, float]]] = []

    def add(label: str, per_clip: dict[str, float]) -> None:
        rows.append((label, per_clip))
        print(f"{label:55s} mean {np.mean(list(per_clip.values())):.3f}", flush=True)

    score = lambda series: {c.name: corr(series(c), c.real) for c in clips}  # noqa: E731
    stand_in = [corr(jaw(c), c.rendered) for c in clips if c.rendered is not None]
    if stand_in:  # how well the jaw parameter stands for the rendered, re-tracked mouth
        print(f"stand-in check: r(jaw, eval's rendered facecast mouth) = {min(stand_in):.2f}-{max(stand_in):.2f}")
    add("shipped (MotionModel())", score(lambda c: jaw(c)))
    add("loudness-only baseline", score(lambda c: jaw(c, MotionOptions(drive="loudness"))))
    for lead in (0.0, 0.04, 0.12, 0.16):
        add(f"lead_s {lead:.2f} (shipped 0.08)", score(lambda c: jaw(c, MotionOptions(lead_s=lead))))
    for la in (0.05, 0.2):
        add(f"lookahead_s {la:.2f} (shipped 0.10)", score(lambda c: jaw(c, MotionOptions(lookahead_s=la))))
    for tau in (0.04, 0.08):
        add(f"jaw smoothed, tau {tau:.2f} s", score(lambda c: M._soften(jaw(c), c.fps, tau)))
    for base, slope in ((1.0, 0.0), (0.1, 1.2)):
        with jaw_gain(base, slope):
            add(f"loudness gain {base} + {slope} s(1.4 e) (shipped 0.55 + 0.6)", score(lambda c: jaw(c)))
    add("mouth opens 4 frames before phrase onsets", score(lambda c: jaw(c, speech=open_before_onsets(c.speech, 4))))
    add("recognised phones only (no word timeline)",
        score(lambda c: jaw(c, speech=[dataclasses.replace(s, alt_phones=()) for s in c.speech])))
    add("recognised words only",
        score(lambda c: jaw(c, speech=[dataclasses.replace(s, phones=s.alt_phones or s.phones, alt_phones=())
                                       for s in c.speech])))

    feats = {c.name: jaw_features(c) for c in clips}
    v0 = shipped_table()
    check = {c.name: corr(feats[c.name] @ v0, jaw(c)) for c in clips}
    print(f"decomposition check: r(F @ v_shipped, MotionModel jaw) = {min(check.values()):.3f}-{max(check.values()):.3f}")

    def towards_shipped(X, y, w):  # the shipped table at the scale that fits best
        j = X @ v0
        return v0 * float((j * y * w).sum() / ((j * j * w).sum() + 1e-12))

    for lam in (1e-3, 1e-2, 1e-1):
        add(f"viseme table fitted, LOSO (ridge {lam:g} towards shipped)", loso(clips, feats, lam, towards_shipped))
    half, full = {}, {}
    for c in clips:
        ok = np.isfinite(c.real)
        X, y = feats[c.name][ok], c.real[ok]
        k = len(y) // 2
        Xa = X[:k] - X[:k].mean(0)
        v = np.linalg.solve(Xa.T @ Xa + 1e-3 * np.eye(X.shape[1]), Xa.T @ (y[:k] - y[:k].mean()))
        half[c.name] = corr(X[k:] @ v, y[k:])
        Xc = X - X.mean(0)
        full[c.name] = corr(Xc @ np.linalg.lstsq(Xc, y - y.mean(), rcond=None)[0], y)
    add("viseme table per clip: 1st half -> 2nd half", half)
    add("viseme table per clip, in-sample (upper bound)", full)

    cfg = MouthConfig(num_mels=40, context_s=0.1, lookahead_s=0.2, step_s=0.04)
    mel = {}
    for c in clips:
        f = audio_features(c.audio16k, c.fps, len(c.real), cfg)
        mel[c.name] = (f - f.mean(0)) / (f.std(0) + 1e-6)  # per-clip normalisation (channel, speaker)
    zero = lambda X, y, w: np.zeros(X.shape[1])  # noqa: E731
    with_jaw = {c.name: np.concatenate([mel[c.name], 10 * zscore(jaw(c))[:, None]], 1) for c in clips}
    for lam in (1e2, 1e4):
        add(f"acoustic ridge (log-mel windows), LOSO, lam {lam:g}", loso(clips, mel, lam * 1e-3, zero))
        add(f"acoustic ridge + shipped jaw, LOSO, lam {lam:g}", loso(clips, with_jaw, lam * 1e-3, zero))
    return rows


def markdown(rows, clips) -> str:
    names = [c.name for c in clips]
    head = "| variant | mean | " + " | ".join(names) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(names)]
    for label, per in rows:
        lines.append(f"| {label} | {np.mean([per[n] for n in names]):.3f} | "
                     + " | ".join(f"{per[n]:.2f}" for n in names) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("eval_json", type=Path)
    ap.add_argument("--media", type=Path, default=Path(__file__).resolve().parents[2] / "shared/media/video")
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    clips = load_clips(args.eval_json, args.media)
    rows = experiments(clips)
    md = markdown(rows, clips)
    print(md)
    if args.markdown:
        args.markdown.write_text(md + "\n")


if __name__ == "__main__":
    main()
