"""`dub` on the GPU machine: RTF end to end and per stage at 1080p and 4K, peak VRAM.

    python benchmarks/gpu_dub.py --inputs .devrun/dub [--heights 1080 2160] [--mouth mesh footage]
                                 [--seconds S] [--device cuda] [--encode-workers 8] [--phone-workers 4]
                                 [--preset veryfast] [--json $OUT/gpu_dub.json]

Inputs come from `benchmarks/make_dub_inputs.py` (run on a machine with mediapipe): ``in{H}.mp4``,
its face track ``in{H}.track.npz`` (so no tracking runs here: the GPU machine has no mediapipe)
and ``speech.npz`` (16 kHz samples, written to a WAV first, so audio decoding is measured too).
Per height and mouth drawer: a warm-up dub of 3 s (models, CUDA context, kernels; reported
apart), then the timed dub of --seconds of speech (default: the video's length) with
``DubOptions(render=RenderOptions(device), encode=EncodeOptions(workers=...))``.

Reported per run: wall and RTF end to end; the job's stages (facecast.timing, wall seconds on
the thread that runs them; the encoder runs on its own thread, overlapped), grouped as decode
(video + audio), motion, render, composite, encode; for the mesh mouth the renderer's device
time from CUDA events (``render (CUDA events)``) and its wall time, the rest of ``draw`` being
the host side (placing the mouth, compositing); peak VRAM (torch.cuda.max_memory_allocated and
max_memory_reserved) and peak RSS. With --device cpu it runs the same path on a CPU (a check
that it works, not a GPU number).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from facecast.audio import write_wav


class RenderClock:
    """Wraps MeshRenderer.render (the mesh mouth's renderer) to time it: CUDA events on a GPU
    (device time, read after the job), wall time with a synchronize on any device."""

    def __init__(self, cuda: bool):
        import torch

        from facecast.render import MeshRenderer

        self.cuda, self.torch, self.cls = cuda, torch, MeshRenderer
        self.orig = MeshRenderer.render
        self.events: list = []
        self.wall = 0.0
        self.calls = 0

    def __enter__(self):
        clock, orig = self, self.orig

        def render(renderer, motion, bases=None):
            t = time.perf_counter()
            if clock.cuda:
                a, b = clock.torch.cuda.Event(enable_timing=True), clock.torch.cuda.Event(enable_timing=True)
                a.record()
            out = orig(renderer, motion, bases=bases)
            if clock.cuda:
                b.record()
                clock.events.append((a, b))
                clock.torch.cuda.synchronize()
            clock.wall += time.perf_counter() - t
            clock.calls += 1
            return out

        self.cls.render = render
        return self

    def __exit__(self, *exc):
        self.cls.render = self.orig

    def device_s(self) -> float | None:
        if not self.cuda:
            return None
        self.torch.cuda.synchronize()
        return sum(a.elapsed_time(b) for a, b in self.events) / 1000


GROUPS = {"decode": ("video decode", "audio decode", "decode"), "motion": ("motion",), "encode": ("encode (overlapped)",)}


def run_one(video: Path, track: Path, wav: Path, seconds: float, mouth: str, a, out_dir: Path) -> dict:
    import torch

    from facecast.dubbing import DubReport, dub
    from facecast.dubbing.options import DubOptions
    from facecast.options import EncodeOptions, RenderOptions
    from facecast.sysinfo import MemorySampler
    from facecast.timing import Timings

    cuda = a.device.startswith("cuda")
    opts = DubOptions(mouth=mouth, workers=a.phone_workers, calibrate=False, scan_s=a.scan_s, words=not a.no_words,
                      render=RenderOptions(device=a.device),
                      encode=EncodeOptions(crf=18, preset=a.preset, workers=a.encode_workers))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    timings, report = Timings(), DubReport()
    load0 = os.getloadavg()[0]
    with RenderClock(cuda) as clock, MemorySampler(0.25) as mem:
        t0 = time.perf_counter()
        dub(video, out_dir / f"out_{video.stem}_{mouth}.mp4", audio=wav, track=track, options=opts, timings=timings,
            report=report)
        wall = time.perf_counter() - t0
    st = dict(timings.seconds)
    row = {"video": video.name, "size": list(report.size), "fps": report.fps, "frames": report.frames,
           "seconds": seconds, "mouth": report.mouth, "device": a.device, "wall_s": round(wall, 3),
           "rtf": round(wall / seconds, 4), "stage_s": {k: round(v, 3) for k, v in st.items()},
           "report": report.text(), "load_before": round(load0, 2), "rss_peak_mib": round(mem.peak)}
    grouped = {g: sum(st.get(k, 0.0) for k in keys) for g, keys in GROUPS.items()}
    draw = st.get("draw", 0.0)
    if clock.calls:
        grouped["render"] = clock.wall
        grouped["composite"] = max(draw - clock.wall, 0.0)
        dev = clock.device_s()
        if dev is not None:
            row["render_cuda_events_s"] = round(dev, 4)
    else:
        grouped["render"] = draw  # the footage mouth draws on the host: picking, placing, compositing
        grouped["composite"] = None
    row["stage_rtf"] = {g: (None if v is None else round(v / seconds, 4)) for g, v in grouped.items()}
    if cuda:
        row["vram_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        row["vram_peak_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=Path, required=True)
    ap.add_argument("--heights", type=int, nargs="+", default=[1080, 2160])
    ap.add_argument("--mouth", nargs="+", default=["mesh", "footage"])
    ap.add_argument("--seconds", type=float, default=None, help="seconds of speech (default: the video's length)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--encode-workers", type=int, default=8)
    ap.add_argument("--phone-workers", type=int, default=4)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--scan-s", type=float, default=20.0)
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-words", action="store_true",
                    help="phones only, no word recognition (the GPU box's carried pocketsphinx has no language model)")
    a = ap.parse_args()
    import torch

    from facecast.media import open_video

    speech = np.load(a.inputs / "speech.npz")["samples"]
    mid = max(0, len(speech) // 2 - 24000)  # 3 s from the middle (the clip starts with a pause)
    warm_wav = write_wav(a.out_dir / "gpu_dub_warm.wav", np.tile(speech, 2)[mid:mid + 3 * 16000])
    info = {"argv": sys.argv, "torch": torch.__version__, "cores": os.cpu_count(),
            "device_name": torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    rows = []
    for h in a.heights:
        video, track = a.inputs / f"in{h}.mp4", a.inputs / f"in{h}.track.npz"
        src = open_video(video)
        seconds = a.seconds or src.num_frames / src.fps
        n = int(seconds * 16000)
        wav = write_wav(a.out_dir / f"gpu_dub_{h}.wav", np.tile(speech, int(np.ceil(n / len(speech))))[:n])
        for mouth in a.mouth:
            t0 = time.perf_counter()
            from facecast.dubbing import dub
            from facecast.dubbing.options import DubOptions
            from facecast.options import RenderOptions

            dub(video, a.out_dir / "gpu_dub_warm.mp4", audio=warm_wav, track=track,
                options=DubOptions(mouth=mouth, workers=0, calibrate=False, scan_s=2.0, words=not a.no_words,
                                   render=RenderOptions(device=a.device)))
            warm = time.perf_counter() - t0
            row = run_one(video, track, wav, seconds, mouth, a, a.out_dir)
            row["warmup_s"] = round(warm, 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{info['device_name']}, {info['cores']} cores, torch {info['torch']}, {info['date']}")
    print("| video | mouth | s of speech | wall s | RTF | decode | motion | render | composite | encode | "
          "render CUDA s | VRAM alloc / reserved MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        g = r["stage_rtf"]
        f = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
        print(f"| {r['size'][0]}x{r['size'][1]} | {r['mouth']} | {r['seconds']:.1f} | {r['wall_s']:.2f} | "
              f"{r['rtf']:.4f} | {f(g['decode'])} | {f(g['motion'])} | {f(g['render'])} | {f(g['composite'])} | "
              f"{f(g['encode'])} | {r.get('render_cuda_events_s', '-')} | "
              f"{r.get('vram_peak_allocated_mib', '-')} / {r.get('vram_peak_reserved_mib', '-')} |")
    if a.json:
        a.json.write_text(json.dumps({"info": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
