"""Photo mode up close (issue #17): blinks and closed mouths measured on the shared portraits.

For every portrait in ../shared/media/portrait: `say` with an audio file (default
hdtf_radio31_en.wav, 512 px), the face mesh tracked on the output (facecast.face.track_video,
unsmoothed), and per scheduled blink the eye opening at its deepest frame as a fraction of the
open eye (median outside blinks); blinks counted as `facecast eval` counts them
(quality.metrics.blink_events) against the blinks scheduled. Then the lip box PSNR of closed
mouths (an m with the jaw at 0.1 and 0.3, head still) against the portrait at rest.

Runs against whatever facecast is on the path, so the same script measures an older checkout:

    PYTHONPATH=src python benchmarks/photo_check.py --json out/photo_after.json
    PYTHONPATH=/path/to/old/src python benchmarks/photo_check.py --json out/photo_before.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def scheduled(options, duration: float) -> list[tuple[float, float, float]]:
    """(onset, end, depth) of the blinks `say` draws: the schedule of its motion options."""
    from facecast.motion import BlinkSchedule

    sched = BlinkSchedule(options.blinks_per_minute, options.seed)
    if hasattr(sched, "blinks"):
        return [(b.onset, b.end, b.depth) for b in sched.blinks(0.0, duration)]
    sched._extend(duration + 1.0)  # before issue #17: (onset, duration) pairs, all full blinks
    return [(o, o + d, 1.0) for o, d in sched._blinks if o < duration]


def blinks(path: Path, audio: Path, size: int) -> dict:
    from facecast import face
    from facecast.options import SayOptions
    from facecast.pipeline import say_chunks
    from facecast.quality.metrics import blink_events

    opt = SayOptions(size=size)
    frames = np.concatenate([c.video.frames.cpu().numpy() for c in say_chunks(str(path), audio=str(audio), options=opt)])
    pts, _ = face.track_video(frames, fps=opt.fps, smooth=False)
    m = face.mouth_metrics(pts)
    eye = (m["eye_open_left"] + m["eye_open_right"]) / 2
    t = np.arange(len(eye)) / opt.fps
    sched = [b for b in scheduled(opt.motion, t[-1]) if b[0] < t[-1]]
    busy = np.zeros(len(eye), bool)
    for on, end, _ in sched:
        busy |= (t >= on - 0.1) & (t <= end + 0.1)
    open_eye = float(np.nanmedian(eye[~busy]))
    full = [(on, end) for on, end, d in sched if d >= 1.0 and end <= t[-1]]
    deepest = [float(np.nanmin(eye[(t >= on) & (t <= end)]) / open_eye) for on, end in full]
    minutes = len(eye) / opt.fps / 60
    return {"frames": len(eye), "open_eye": open_eye, "deepest_of_open": deepest,
            "counted": blink_events(eye, opt.fps), "scheduled_full": len(full), "scheduled_all": len(sched),
            "counted_per_min": blink_events(eye, opt.fps) / minutes, "scheduled_per_min": len(sched) / minutes}


def closed_mouth_psnr(path: Path, size: int) -> list[float]:
    from facecast import face
    from facecast.options import RenderOptions
    from facecast.render import MeshRenderer
    from facecast.types import MOTION_INDEX, MOTION_PARAMS, MotionFrames

    img = face.load_image(path)
    p = face.frame_portrait(img, face.find_face(img, source=str(path)), size=size, source=str(path))
    params = np.zeros((2, len(MOTION_PARAMS)), np.float32)
    for i, jaw in enumerate((0.1, 0.3)):
        for k, v in (("jaw_open", jaw), ("lip_close", 1.0), ("lip_spread", 0.1), ("upper_lip", 0.05)):
            params[i, MOTION_INDEX[k]] = v
    frames = MeshRenderer(p, RenderOptions()).render(MotionFrames(params, 25.0, 0)).frames.numpy()
    u = p.face.interocular
    lips = p.face.points[[61, 291, 0, 17], :2]
    (x0, y0), (x1, y1) = (lips.min(0) - 0.1 * u).astype(int), (lips.max(0) + 0.1 * u).astype(int)
    ref = p.image[y0:y1, x0:x1].astype(float)
    return [float(10 * np.log10(255.0 ** 2 / max(((f[y0:y1, x0:x1] - ref) ** 2).mean(), 1e-9))) for f in frames]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--audio", type=Path, default=MEDIA / "audio" / "hdtf_radio31_en.wav")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import facecast

    out = {"facecast": str(Path(facecast.__file__).parent), "audio": str(args.audio), "portraits": {}}
    t0 = time.time()
    for path in sorted((MEDIA / "portrait").iterdir()):
        r = blinks(path, args.audio, args.size)
        r["closed_mouth_psnr"] = closed_mouth_psnr(path, args.size)
        out["portraits"][path.name] = r
        print(f"{path.name:24s} deepest blink {max(r['deepest_of_open'], default=float('nan')):.2f} of open "
              f"({', '.join(f'{d:.2f}' for d in r['deepest_of_open'])}); counted {r['counted']} of "
              f"{r['scheduled_all']} scheduled; closed-mouth lip PSNR "
              f"{', '.join(f'{v:.1f}' for v in r['closed_mouth_psnr'])} dB", flush=True)
    out["seconds"] = time.time() - t0
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
