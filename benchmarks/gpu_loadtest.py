"""Load test on the GPU machine (no mediapipe/typer there): portraits and speech from .npz.

Usage: python benchmarks/gpu_loadtest.py --portraits .devrun/portraits512.npz --speech .devrun/speech60s.npz \
           --streams 16 32 64 --seconds 20 --workers 10 --encoders 5 --out results.json
       Memory over an hour-long stream in minutes (clients' clock 8x the wall clock):
       ... --streams 4 --seconds 3600 --speed 8 --memory-every 15 --out memory.json
"""

import argparse
import json

import numpy as np

from facecast.live.loadtest import portraits_from_npz, run_loadtest
from facecast.live.options import EngineOptions, LoadTestOptions

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--portraits", required=True)
    ap.add_argument("--speech", required=True)
    ap.add_argument("--streams", type=int, nargs="+", default=[16])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--encoders", type=int, default=5)
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--preset", default="ultrafast")
    ap.add_argument("--chunk", type=float, default=0.02, help="client audio chunk (s)")
    ap.add_argument("--speed", type=float, default=1.0, help="clients' clock / wall clock")
    ap.add_argument("--lookahead", type=float, default=0.1, help="stream look-ahead (s)")
    ap.add_argument("--memory-every", type=float, default=0.0, help="sample RSS/VRAM every N wall seconds")
    ap.add_argument("--rgb", action="store_true", help="hand RGB to the encoders (the pre-yuv420p layout)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    faces = portraits_from_npz(args.portraits)
    speech = np.load(args.speech)["samples"]
    rows = []
    for n in args.streams:
        engine = EngineOptions(size=faces[0].image.shape[0], device="cuda", dtype=args.dtype, workers=args.workers,
                               encoders=args.encoders, i420=False if args.rgb else None)
        r = run_loadtest(faces, speech, LoadTestOptions(streams=n, seconds=args.seconds, preset=args.preset, stagger_s=1.0,
                                                        chunk_s=args.chunk, speed=args.speed,
                                                        memory_every_s=args.memory_every, lookahead_s=args.lookahead,
                                                        verbose=True, engine=engine))
        keys = ["frames_min", "frames_expected_per_stream", "late_fraction", "latency_p50_s", "latency_p95_s",
                "ttff_p50_s", "ttff_p95_s", "per_stream_fps", "frames_per_launch_mean", "gpu_render_ms_mean",
                "gpu_busy_fraction", "launch_host_ms_mean", "peak_vram_gib", "wall_s", "cpu_cores_main", "cpu_cores_workers",
                "cpu_per_stream_s"]
        print(json.dumps({"streams": n, **{k: r.get(k) for k in keys}}), flush=True)
        for m in r["memory"]:
            print(json.dumps(m), flush=True)
        rows.append(r)
    if args.out:
        json.dump(rows, open(args.out, "w"), indent=1)
