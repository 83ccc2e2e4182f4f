"""The face track in pieces (dubbing/trackspans.py) against one tracker: wall time and agreement.

    python benchmarks/track_pieces.py VIDEO [VIDEO ...] [--processes 2 4] [--json out/track_pieces.json]

Per video: one StreamTracker over every frame (``track_video_file``, the CPU reference and the
path `dub` takes on one process), then ``track_in_pieces`` with N worker processes for each
--processes value (the workers' start and their mediapipe import counted: a job pays them).
Agreement: the same frames with a face, detected and cut; the landmarks' largest and median
distance (px) and the largest as a fraction of the inter-ocular distance (IOD).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def agreement(one, par) -> dict:
    from facecast.dubbing.mask import iod

    both = one.has_face & par.has_face
    d = np.abs(one.points[both, :, :2] - par.points[both, :, :2]).max(axis=(1, 2))
    size = np.array([iod(p) for p in one.points[both]])
    return {"same_faces": bool((one.has_face == par.has_face).all()),
            "same_detected": bool((one.detected == par.detected).all()),
            "same_cuts": bool((one.cuts == par.cuts).all()),
            "max_px": round(float(d.max()), 3) if d.size else None,
            "median_px": round(float(np.median(d)), 4) if d.size else None,
            "max_iod": round(float((d / size).max()), 4) if d.size else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", type=Path, nargs="+")
    ap.add_argument("--processes", type=int, nargs="+", default=[2])
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    from facecast.dubbing.spans import start_workers
    from facecast.dubbing.trackfile import track_video_file
    from facecast.dubbing.trackspans import track_in_pieces
    from facecast.media import open_video

    rows = []
    for video in a.videos:
        src = open_video(video, chunk_frames=8)
        t0 = time.perf_counter()
        one = track_video_file(src, sha256="")
        row = {"video": video.name, "size": list(src.size), "frames": src.num_frames, "fps": src.fps,
               "one_tracker_s": round(time.perf_counter() - t0, 2), "pieces": []}
        for n in a.processes:
            t0 = time.perf_counter()
            pool = start_workers(n)
            try:
                par = track_in_pieces(src, pool, n, frames=src.num_frames)
            finally:
                pool.shutdown()
            wall = time.perf_counter() - t0
            row["pieces"].append({"processes": n, "wall_s": round(wall, 2),
                                  "speed_up": round(row["one_tracker_s"] / wall, 2),
                                  **(agreement(one, par) if par is not None else {"joined": False})})
        rows.append(row)
        print(json.dumps(row), flush=True)
    info = {"cores": os.cpu_count(), "load_after": round(os.getloadavg()[0], 2),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"\n{info['cores']} cores, {info['date']}")
    print("| video | frames | one tracker s | processes | pieces s | x | same faces / detected / cuts | "
          "max px | median px | max / IOD |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        for p in r["pieces"]:
            print(f"| {r['video']} ({r['size'][0]}x{r['size'][1]}) | {r['frames']} | {r['one_tracker_s']} | "
                  f"{p['processes']} | {p['wall_s']} | {p['speed_up']} | {p.get('same_faces')} / "
                  f"{p.get('same_detected')} / {p.get('same_cuts')} | {p.get('max_px')} | {p.get('median_px')} | "
                  f"{p.get('max_iod')} |")
    if a.json:
        a.json.write_text(json.dumps({"info": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
