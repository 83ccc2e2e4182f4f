"""Single-stream offline `say` on the GPU machine: RTF end to end and per stage.

Usage: python benchmarks/gpu_say.py --portraits .devrun/portraits512.npz --speech .devrun/speech60s.npz
       [--seconds 60 600] [--workers 12] [--preset veryfast] [--device cuda]
The portrait comes pre-framed (no mediapipe there); the speech is real (speech60s_en.wav at 16 kHz,
looped for longer inputs) and written to a WAV first, so decoding is part of the measurement.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

if __name__ == "__main__":
    from facecast.audio import write_wav
    from facecast.live.loadtest import portraits_from_npz as load_portraits
    from facecast.options import EncodeOptions, RenderOptions, SayOptions
    from facecast.pipeline import say
    from facecast.timing import Timings

    ap = argparse.ArgumentParser()
    ap.add_argument("--portraits", required=True)
    ap.add_argument("--speech", required=True)
    ap.add_argument("--seconds", type=float, nargs="+", default=[60.0])
    ap.add_argument("--workers", type=int, default=12)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    portrait = load_portraits(args.portraits)[0]
    speech = np.load(args.speech)["samples"]
    rows = []
    for secs in args.seconds:
        n = int(secs * 16000)
        samples = np.tile(speech, int(np.ceil(n / len(speech))))[:n]
        wav = f"/tmp/speech_{int(secs)}.wav"
        write_wav(wav, samples)
        opts = SayOptions(render=RenderOptions(device=args.device), encode=EncodeOptions(preset=args.preset),
                          workers=args.workers)
        # warm-up (model loads, CUDA context, kernels) on 5 s, reported separately
        t0 = time.perf_counter()
        write_wav("/tmp/warm.wav", speech[: 16000 * 5])
        say(portrait, "/tmp/warm.mp4", audio="/tmp/warm.wav", options=opts)
        warm = time.perf_counter() - t0
        t = Timings()
        t0 = time.perf_counter()
        say(portrait, "/tmp/out.mp4", audio=wav, options=opts, timings=t)
        wall = time.perf_counter() - t0
        row = {"seconds": secs, "wall_s": wall, "rtf": wall / secs, "fps": secs * 25 / wall, "warmup_s": warm,
               "stages_s": {k: round(v, 3) for k, v in t.seconds.items()}, "workers": args.workers,
               "preset": args.preset, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        json.dump(rows, open(args.out, "w"), indent=1)
