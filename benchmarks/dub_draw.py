"""`dub`'s render side alone: decode + mouth drawing per frame, no tracking (a precomputed track),
no encoder, for 1 ... N draw threads.

    python benchmarks/dub_draw.py --inputs .devrun/dub [--height 1080] [--seconds 8] [--scan-s 4]
                                  [--draw-workers 1 2 4] [--rounds 1] [--json out/dub_draw.json]

Inputs as `benchmarks/gpu_dub.py` takes them (``in{H}.mp4``, its track ``in{H}.track.npz``,
``speech.npz``; made by `benchmarks/make_dub_inputs.py`). Each run is `dub_chunks` over --seconds
of that speech (phones only, no calibration, the footage mouth), the chunks consumed and dropped.
Reported per run: wall; per frame the main thread's ``draw`` stage (choosing the mouths, and
waiting for the pool's pixel work or doing it itself with 1 thread) and ``video decode`` (waiting
for the next decoded RGB frame), both wall ms, and the ``draw`` stage's CPU ms on the main thread
(with 1 draw thread: all of the drawing); the process's CPU ms per frame (all threads:
decoder, pool); frames per second; the 1-minute load average before and after (on a shared
machine wall times stretch with the load: compare runs made side by side). Without
--draw-workers the option is not set at all (so the script also runs on trees from before
``DubOptions.draw_workers`` existed: a before/after pair).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def cpu_timings():
    """A facecast Timings that also charges each stage the calling thread's CPU seconds
    (``cpu``): with one draw thread, the ``draw`` stage's CPU time is the drawing's own, far
    less stretched by other jobs on a shared machine than its wall time."""
    from contextlib import contextmanager

    from facecast.timing import Timings

    class CpuTimings(Timings):
        def __init__(self):
            super().__init__()
            self.cpu: dict[str, float] = {}

        @contextmanager
        def stage(self, name):
            c = time.thread_time()
            with super().stage(name):
                yield
            self.cpu[name] = self.cpu.get(name, 0.0) + time.thread_time() - c

    return CpuTimings()


def run(inputs: Path, height: int, seconds: float, scan_s: float, draw_workers: int | None) -> dict:
    from facecast.audio import write_wav
    from facecast.dubbing import DubReport, dub_chunks
    from facecast.dubbing.options import DubOptions
    speech = np.load(inputs / "speech.npz")["samples"]
    n = int(seconds * 16000)
    wav = write_wav(Path("/tmp") / f"dub_draw_{os.getpid()}.wav", np.tile(speech, int(np.ceil(n / len(speech))))[:n])
    extra = {} if draw_workers is None else {"draw_workers": draw_workers}
    opts = DubOptions(mouth="footage", calibrate=False, workers=0, words=False, scan_s=scan_s, **extra)
    timings, report = cpu_timings(), DubReport()
    load0 = os.getloadavg()[0]
    c0, t0 = os.times(), time.perf_counter()
    frames = 0
    try:
        for chunk in dub_chunks(inputs / f"in{height}.mp4", audio=wav, options=opts, timings=timings, report=report,
                                track=inputs / f"in{height}.track.npz"):
            frames += chunk.video.num_frames
    finally:
        wav.unlink(missing_ok=True)
    wall = time.perf_counter() - t0
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    st = timings.seconds
    ms = lambda k: round(1000 * st.get(k, 0.0) / max(frames, 1), 2)  # noqa: E731
    return {"height": height, "size": list(report.size), "frames": frames, "draw_workers": draw_workers,
            "wall_s": round(wall, 2), "fps": round(frames / wall, 1), "draw_ms": ms("draw"),
            "draw_cpu_ms": round(1000 * timings.cpu.get("draw", 0.0) / max(frames, 1), 2),
            "decode_ms": ms("video decode"), "cpu_ms_per_frame": round(1000 * cpu / max(frames, 1), 2),
            "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2), "report": report.text()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=Path, required=True)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--scan-s", type=float, default=4.0)
    ap.add_argument("--draw-workers", type=int, nargs="*", default=None)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    rows = []
    for _ in range(a.rounds):
        for w in (a.draw_workers or [None]):
            row = run(a.inputs, a.height, a.seconds, a.scan_s, w)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| draw threads | frames | wall s | frames/s | draw ms/frame | draw CPU ms/frame (main thread) | "
          "decode ms/frame | process CPU ms/frame | load |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['draw_workers'] if r['draw_workers'] is not None else '(unset)'} | {r['frames']} | {r['wall_s']} | "
              f"{r['fps']} | {r['draw_ms']} | {r['draw_cpu_ms']} | {r['decode_ms']} | {r['cpu_ms_per_frame']} | "
              f"{r['load_before']} -> {r['load_after']} |")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"argv": sys.argv, "cores": os.cpu_count(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
