"""`facecast dub` speed and memory: real-time factor end to end and per stage, RSS over the job.

    .venv/bin/python benchmarks/dub_bench.py [--seconds 30] [--height 720] [--mouth auto]
                                             [--append docs/benchmarks.md] [--json out/dub_bench.json]
    .venv/bin/python benchmarks/dub_bench.py --seconds 300 --save-input out/in720_300.mp4   # long: memory
    .venv/bin/python benchmarks/dub_bench.py --seconds 60 --own-sound    # calibrate + learn run too


The input is made here: joygen_zh.mp4 of the shared media (900x900 @ 25 fps, a talking head),
played back and forth to the length, scaled to the height and centred on a 16:9 canvas whose
sides show the same picture enlarged and blurred (a 1280x720 @ 25 fps H.264 file at --height
720), so the decoder, the tracker and the encoder see a real 720p video. The speech is the first
--seconds of speech60s_en.wav, played again from its start when --seconds is longer than 60 s.
With --own-sound the input carries joygen_zh's own sound track, played back and forth with its
frames (each frame's samples, reversed where the picture runs backwards), so that the video has
speech of its own: the calibration and the learned mouth (--mouth-model) run as they do on a
real video with sound; such inputs are made whole, not looped.
Stages are wall-clock time on the main thread; the encoder runs on its own thread ("encode
(overlapped)"), its time overlaps the others.

Memory: RSS (this process and its phone workers) is sampled every 0.25 s and at every finished
segment of speech; "RSS at 10 / 50 / 90 %" are the samples at those fractions of the output
written, and the slope is a least-squares line through the segment samples of the second half
(MiB per minute of output), which the result extrapolates to a 30-minute input.
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
LOOP_OVER_S = 30.0
"""Inputs longer than this are this much made and then repeated (loop_input)."""


def own_sound(idx: np.ndarray, fps: float):
    """joygen_zh's sound following the frames ``idx`` (source frame per output frame at ``fps``):
    each output frame gets its source frame's samples, reversed where the frames run backwards."""
    from facecast.audio import load_audio
    from facecast.types import AudioChunk

    a = load_audio(MEDIA / "video" / "joygen_zh.mp4", sample_rate=16000, mono=True).samples[0]
    step = int(round(16000 / fps))
    a = np.concatenate([a, np.zeros(step * (int(idx.max()) + 2) - len(a), np.float32)]) if len(a) < step * (
        int(idx.max()) + 2) else a
    back = np.r_[np.diff(idx) < 0, False]
    parts = [a[j * step:(j + 1) * step][::-1] if b else a[j * step:(j + 1) * step] for j, b in zip(idx, back)]
    return AudioChunk(np.concatenate(parts)[None], 16000, 0.0)


def make_input(path: Path, seconds: float, height: int, sound: bool = False) -> Path:
    """A 16:9 talking-head video of ``seconds`` at 25 fps and ``height`` px (see the docstring);
    ``sound``: with the clip's own sound (own_sound)."""
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
    with Mp4Writer(path, fps=25.0, width=W, height=height, crf=18, preset="veryfast",
                   audio_rate=16000 if sound else None) as w:
        if sound:
            w.write_audio(own_sound(idx, 25.0))
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


def loop_input(base: Path, path: Path, seconds: float) -> Path:
    """``base`` played again and again to ``seconds`` (packets copied with shifted timestamps, no
    re-encoding: a long input in seconds; each repeat starts with a cut back to its first frame)."""
    import av

    with av.open(str(base)) as src:
        vs = src.streams.video[0]
        packets = [p for p in src.demux(vs) if p.dts is not None]
        period = max(int(p.pts) for p in packets) + int(packets[1].pts - packets[0].pts if len(packets) > 1 else 1)
        tb = vs.time_base
        with av.open(str(path), "w") as out:
            os_ = out.add_stream_from_template(vs)
            k = 0
            while k * period * tb < seconds:
                for p in packets:
                    if (int(p.pts) + k * period) * tb >= seconds:
                        continue
                    q = av.Packet(bytes(p))
                    q.pts, q.dts, q.time_base = int(p.pts) + k * period, int(p.dts) + k * period, tb
                    q.is_keyframe = p.is_keyframe
                    q.stream = os_
                    out.mux(q)
                k += 1
    return path


def speech(path: Path, seconds: float) -> Path:
    import av

    from facecast.audio import load_audio

    a = load_audio(MEDIA / "audio" / "speech60s_en.wav", sample_rate=16000, mono=True).samples[0]
    a = np.tile(a, int(math.ceil(seconds * 16000 / len(a))))[: int(seconds * 16000)]
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


def rss_trend(marks: list[tuple[float, float]], seconds: float) -> dict:
    """RSS at 10 / 50 / 90 % of the output and the second half's slope (MiB per minute of output),
    extrapolated to 30 minutes, from (fraction of the output written, MiB) marks."""
    if not marks:
        return {}
    f = np.array([m[0] for m in marks])
    r = np.array([m[1] for m in marks])
    at = {f"{p}%": float(r[np.argmin(np.abs(f - p / 100))]) for p in (10, 50, 90)}
    late = f >= 0.5
    slope = float(np.polyfit(f[late] * seconds / 60, r[late], 1)[0]) if late.sum() >= 3 else float("nan")
    return {"rss_at_output_mib": {k: round(v) for k, v in at.items()}, "rss_slope_mib_per_min": round(slope, 2),
            "rss_second_half_range_mib": [round(float(r[late].min())), round(float(r[late].max()))] if late.any() else None,
            "rss_30min_extrapolated_mib": round(float(r[-1] + slope * max(30 - seconds / 60, 0))) if math.isfinite(slope)
            else None}


def run(seconds: float, height: int, mouth: str, video: Path | None = None, workers: int = 1,
        save_input: Path | None = None, draw_workers: int | None = None, sound: bool = False,
        mouth_model: str = "auto") -> dict:
    from facecast.dubbing import DubReport, dub
    from facecast.dubbing.options import DubOptions
    from facecast.sysinfo import MemorySampler, rss_mb
    from facecast.timing import Timings

    with tempfile.TemporaryDirectory(prefix="dubbench-") as d:
        d = Path(d)
        if video is None and save_input is not None and save_input.exists():
            video = save_input
        if video is None and seconds > LOOP_OVER_S and not sound:  # long: LOOP_OVER_S made, then repeated
            base = make_input(d / "base.mp4", LOOP_OVER_S, height)
            video = loop_input(base, save_input or d / "input.mp4", seconds)
        vid = video or make_input(save_input or d / "input.mp4", seconds, height, sound)
        wav = speech(d / "speech.wav", seconds)
        timings, report = Timings(), DubReport()
        load0 = load_average()
        c0 = os.times()
        k0 = children_cpu_s()
        marks: list[tuple[float, float]] = []

        def progress(done: float, total: float | None) -> None:
            if total:
                marks.append((done / total, rss_mb(True)))

        t0 = time.perf_counter()
        with MemorySampler(0.25) as mem:
            # draw_workers only when given: the script also runs on trees from before the option (before/after pairs)
            extra = {} if draw_workers is None else {"draw_workers": draw_workers}
            dub(vid, d / "out.mp4", audio=wav,
                options=DubOptions(mouth=mouth, mouth_model=mouth_model, workers=workers, **extra),
                timings=timings, report=report, progress=progress)
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
            "mouth": report.mouth, "mouth_model": mouth_model, "own_sound": sound,
            "learned": report.learned.text() if report.learned is not None else None, "workers": workers,
            "draw_workers": draw_workers, "report": report.text(), "load_before": load0,
            "load_after": load1, "rss_marks": [(round(f, 4), round(m)) for f, m in marks], **rss_trend(marks, seconds),
            "cpu_count": os.cpu_count()}


def markdown(res: dict, command: str, machine: dict) -> str:
    lines = [f"## {machine['date']} - `facecast dub` on this CPU ({machine['cpu']}, {machine['cores']} cores)", "",
             f"`{command}` at revision {machine['git']}.", "",
             f"Input {res['size'][0]}x{res['size'][1]} @ {res['fps']:g} fps, {res['seconds']:g} s of speech, mouth from "
             f"{res['mouth']} ({res.get('learned') or 'no sound of its own: phone-driven mouth'}), "
             f"{res['workers']} phone worker(s): **RTF {res['rtf']:.2f}** end to end ({res['wall_s']:.1f} s "
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
    if res.get("rss_at_output_mib"):
        o = res["rss_at_output_mib"]
        lines += [f"RSS at 10 / 50 / 90 % of the output written: {o['10%']} / {o['50%']} / {o['90%']} MiB; second half "
                  f"{res['rss_second_half_range_mib'][0]}-{res['rss_second_half_range_mib'][1]} MiB, slope "
                  f"{res['rss_slope_mib_per_min']:+.2f} MiB per minute of output, extrapolated to a 30-minute input: "
                  f"{res['rss_30min_extrapolated_mib']} MiB.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--mouth", default="auto")
    ap.add_argument("--mouth-model", default="auto", help="DubOptions.mouth_model: auto, learned or phones.")
    ap.add_argument("--own-sound", action="store_true",
                    help="Give the made input its own sound track (the calibration and the learned mouth run).")
    ap.add_argument("--workers", type=int, default=1, help="DubOptions.workers (the CLI's default: 1).")
    ap.add_argument("--draw-workers", type=int, default=None,
                    help="DubOptions.draw_workers (default: not set, i.e. auto; unset also runs on older trees).")
    ap.add_argument("--video", type=Path, default=None, help="Use this video instead of making one.")
    ap.add_argument("--save-input", type=Path, default=None,
                    help="Keep the made input here (and reuse it when it exists): long inputs take minutes to make.")
    ap.add_argument("--append", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    from facecast.sysinfo import machine_info

    machine = machine_info()
    res = run(a.seconds, a.height, a.mouth, a.video, a.workers, a.save_input, a.draw_workers, a.own_sound,
              a.mouth_model)
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
