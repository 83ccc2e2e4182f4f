"""`facecast dub` speed and memory: real-time factor end to end and per stage, RSS over the job.

    .venv/bin/python benchmarks/dub_bench.py [--seconds 30] [--height 720] [--mouth auto]
                                             [--append docs/benchmarks.md] [--json out/dub_bench.json]

The input is made here: joygen_zh.mp4 of the shared media (900x900 @ 25 fps, a talking head),
played back and forth to the length, scaled to the height and centred on a 16:9 canvas whose
sides show the same picture enlarged and blurred (a 1280x720 @ 25 fps H.264 file at --height
720), so the decoder, the tracker and the encoder see a real 720p video. The speech is the first
--seconds of speech60s_en.wav. Stages are wall-clock time on the main thread; the encoder runs on
its own thread ("encode (overlapped)"), its time overlaps the others.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def make_input(path: Path, seconds: float, height: int) -> Path:
    """A 16:9 talking-head video of ``seconds`` at 25 fps and ``height`` px (see the docstring)."""
    import cv2
    import torch

    from facecast.media import Mp4Writer, open_video
    from facecast.twin.generate import pingpong_index
    from facecast.types import VideoFrames

    src = open_video(MEDIA / "video" / "joygen_zh.mp4")
    frames = np.concatenate([c.frames.numpy() for c in src])
    W = int(round(height * 16 / 9)) // 2 * 2
    n = int(round(seconds * 25))
    idx = pingpong_index(np.arange(n), 25.0, len(frames), src.fps)
    with Mp4Writer(path, fps=25.0, width=W, height=height, crf=18, preset="veryfast") as w:
        for a in range(0, n, 25):
            out = []
            for i in idx[a:a + 25]:
                f = cv2.resize(frames[i], (height, height), interpolation=cv2.INTER_AREA)
                bg = cv2.GaussianBlur(cv2.resize(frames[i], (W, W), interpolation=cv2.INTER_LINEAR)[(W - height) // 2:
                                      (W - height) // 2 + height], (0, 0), 12)
                x0 = (W - height) // 2
                bg[:, x0:x0 + height] = f
                out.append(bg)
            w.write_video(VideoFrames(torch.from_numpy(np.stack(out)), 25.0, a))
    return path


def speech(path: Path, seconds: float) -> Path:
    import av

    from facecast.audio import load_audio

    a = load_audio(MEDIA / "audio" / "speech60s_en.wav", sample_rate=16000, mono=True).samples[0]
    a = a[: int(seconds * 16000)]
    with av.open(str(path), "w") as out:
        st = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        fr = av.AudioFrame.from_ndarray((np.clip(a, -1, 1) * 32767).astype(np.int16)[None], format="s16", layout="mono")
        fr.sample_rate = 16000
        for p in list(st.encode(fr)) + list(st.encode()):
            out.mux(p)
    return path


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's live children (the phone workers)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    try:
        pids = []
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                pids += f.read().split()
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        pass
    return total


def run(seconds: float, height: int, mouth: str, video: Path | None = None, workers: int = 1) -> dict:
    from facecast.dubbing import DubReport, dub
    from facecast.dubbing.options import DubOptions
    from facecast.sysinfo import MemorySampler
    from facecast.timing import Timings

    with tempfile.TemporaryDirectory(prefix="dubbench-") as d:
        d = Path(d)
        vid = video or make_input(d / "input.mp4", seconds, height)
        wav = speech(d / "speech.wav", seconds)
        timings, report = Timings(), DubReport()
        load0 = load_average()
        c0 = os.times()
        k0 = children_cpu_s()
        t0 = time.perf_counter()
        with MemorySampler(0.25) as mem:
            dub(vid, d / "out.mp4", audio=wav, options=DubOptions(mouth=mouth, workers=workers), timings=timings, report=report)
        wall = time.perf_counter() - t0
        c1 = os.times()
        cpu = (c1.user - c0.user) + (c1.system - c0.system) + children_cpu_s() - k0
        load1 = load_average()
    audio_s = seconds
    stages = {k: round(v, 2) for k, v in timings.seconds.items()}
    return {"seconds": seconds, "size": list(report.size), "fps": report.fps, "frames": report.frames,
            "wall_s": round(wall, 2), "rtf": round(wall / audio_s, 3), "cpu_s": round(cpu, 2),
            "cpu_rtf": round(cpu / audio_s, 3),
            "stage_rtf": {k: round(v / audio_s, 3) for k, v in timings.seconds.items()}, "stage_s": stages,
            "rss_mib": {f"{p}%": round(mem.at_fraction(p / 100), 0) for p in (10, 50, 90)}, "rss_peak_mib": round(mem.peak),
            "mouth": report.mouth, "workers": workers, "report": report.text(), "load_before": load0,
            "load_after": load1,
            "cpu_count": os.cpu_count()}


def markdown(res: dict, command: str, machine: dict) -> str:
    lines = [f"## {machine['date']} - `facecast dub` on this CPU ({machine['cpu']}, {machine['cores']} cores)", "",
             f"`{command}` at revision {machine['git']}.", "",
             f"Input {res['size'][0]}x{res['size'][1]} @ {res['fps']:g} fps, {res['seconds']:g} s of speech, mouth from "
             f"{res['mouth']}, {res['workers']} phone worker(s): **RTF {res['rtf']:.2f}** end to end ({res['wall_s']:.1f} s "
             f"wall); the job (with its phone workers) used "
             f"{res['cpu_s']:.1f} CPU-seconds, {res['cpu_rtf']:.2f} per second of speech (on 2 free cores the wall RTF "
             f"cannot be below {res['cpu_rtf'] / 2:.2f}). "
             f"Load average before / after: {res['load_before'][0]:.1f} / {res['load_after'][0]:.1f} "
             f"(the machine's {res['cpu_count']} cores were shared with other jobs when it was above ~0.5).", "",
             "| stage | seconds | RTF |", "|---|---:|---:|"]
    for k, v in sorted(res["stage_s"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {k} | {v:.2f} | {res['stage_rtf'][k]:.3f} |")
    r = res["rss_mib"]
    lines += ["", f"RSS at 10 / 50 / 90 % of the job: {r['10%']:.0f} / {r['50%']:.0f} / {r['90%']:.0f} MiB "
              f"(peak {res['rss_peak_mib']:.0f} MiB). {res['report']}.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--mouth", default="auto")
    ap.add_argument("--workers", type=int, default=1, help="DubOptions.workers (the CLI's default: 1).")
    ap.add_argument("--video", type=Path, default=None, help="Use this video instead of making one.")
    ap.add_argument("--append", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    from facecast.sysinfo import machine_info

    machine = machine_info()
    res = run(a.seconds, a.height, a.mouth, a.video, a.workers)
    command = "python benchmarks/dub_bench.py " + " ".join(sys.argv[1:])
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"command": command, "machine": machine, "result": res}, indent=1))
    if a.append:
        with open(a.append, "a") as f:
            f.write("\n" + markdown(res, command, machine))
    if not math.isfinite(res["rtf"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
