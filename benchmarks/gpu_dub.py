"""`dub` on the GPU machine: RTF end to end and per stage at 1080p and 4K, peak VRAM, RSS over the job.

    python benchmarks/gpu_dub.py --inputs .devrun/dub [.devrun/dub4k] [--heights 1080 2160] [--mouth mesh footage]
                                 [--seconds S] [--loop-seconds S] [--draw-workers 0 1 ...] [--device cuda]
                                 [--encode-workers 8] [--phone-workers 4] [--preset veryfast] [--json $OUT/gpu_dub.json]

The runs issue #14 asks for (footage mouth, the default; estimated minutes of a 16-core box):

    # 1080p end to end on a 2-minute input, serial drawing against the parallel default (~2 min)
    python benchmarks/gpu_dub.py --inputs .devrun/dub --heights 1080 --mouth footage --loop-seconds 120 \
        --draw-workers 1 0 --no-words --json $OUT/gpu_dub_1080.json
    # 4K on a 1-minute input, parallel (~1-2 min)
    python benchmarks/gpu_dub.py --inputs .devrun/dub4k --heights 2160 --mouth footage --loop-seconds 60 \
        --draw-workers 0 --no-words --json $OUT/gpu_dub_4k.json
    # the 30-minute 1080p input: flat memory (RSS at 10 / 50 / 90 % of the output), peak VRAM (~4-6 min)
    python benchmarks/gpu_dub.py --inputs .devrun/dub --heights 1080 --mouth footage --loop-seconds 1800 \
        --no-warmup --no-words --json $OUT/gpu_dub_30min.json

--loop-seconds builds the long input on the machine (a call carries at most 64 MiB, and the box has
no mediapipe to track one; ``--tracks none`` dubs without the track, tracking with mediapipe
carried there): ``in{H}.mp4`` repeated by copying its packets with shifted timestamps
(no re-encoding; whole repeats, so at least --loop-seconds), and its track tiled to match: the
same landmarks for the same decoded pictures, a shot cut marked at each seam where dub's own
tracker would see one (its thumbnail test, run on the clip's last and first frames), the SHA-256
of the new file. The speech is speech.npz looped to the same length.

Inputs come from `benchmarks/make_dub_inputs.py` (run on a machine with mediapipe): ``in{H}.mp4``,
its face track ``in{H}.track.npz`` (so no tracking runs here: the GPU machine has no mediapipe)
and ``speech.npz`` (16 kHz samples, written to a WAV first, so audio decoding is measured too).
Per height and mouth drawer: a warm-up dub of 3 s (models, CUDA context, kernels; reported
apart), then the timed dub of --seconds of speech (default: the video's length) with
``DubOptions(render=RenderOptions(device), encode=EncodeOptions(workers=...), draw_workers=...)``, once
per --draw-workers value (0 = auto: the cores minus one).

Reported per run: wall and RTF end to end; the job's stages (facecast.timing, wall seconds on
the thread that runs them; the encoder runs on its own thread, overlapped), grouped as decode
(video + audio), motion, render, composite, encode; for the mesh mouth the renderer's device
time from CUDA events (``render (CUDA events)``) and its wall time, the rest of ``draw`` being
the host side (placing the mouth, compositing); peak VRAM (torch.cuda.max_memory_allocated and
max_memory_reserved) and peak RSS, and RSS at 10 / 50 / 90 % of the output written (sampled at
every finished segment of speech) with the second half's slope (MiB per minute of output). With --device cpu it runs the same path on a CPU (a check
that it works, not a GPU number).
"""

from __future__ import annotations

import argparse
import itertools
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


def loop_video(src: Path, dst: Path, seconds: float) -> int:
    """``src`` repeated (its packets copied with shifted timestamps, no re-encoding) to at least
    ``seconds``; returns the number of repeats. Whole repeats only: each starts with the clip's
    first (key) frame, and no repeat is cut inside a group of pictures."""
    import av

    with av.open(str(src)) as c:
        vs = c.streams.video[0]
        packets = [p for p in c.demux(vs) if p.dts is not None and p.size]
        tb = vs.time_base
        step = int(round(1 / (float(vs.average_rate) * tb)))
        period = step * len(packets)  # a constant-rate clip: every frame lasts one step
        reps = max(1, int(np.ceil(seconds / float(period * tb) - 1e-9)))
        with av.open(str(dst), "w") as out:
            ov = out.add_stream_from_template(vs)
            for k in range(reps):
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts, q.dts = int(p.pts) + k * period, int(p.dts) + k * period
                    q.duration, q.time_base, q.is_keyframe = step, tb, p.is_keyframe
                    q.stream = ov
                    out.mux(q)
    return reps


def seam_is_cut(video: Path) -> bool:
    """Whether dub's tracker would see a shot cut where the looped clip starts again (its own
    thumbnail test on the clip's last and first frames)."""
    from facecast.dubbing.track import CUT_DIFF, thumb
    from facecast.media import open_video

    frames = list(open_video(video).frames())
    return float(np.abs(thumb(frames[-1]) - thumb(frames[0])).mean()) > CUT_DIFF


def tile_track(track, reps: int, looped: Path, cut: bool):
    """The clip's VideoTrack for ``reps`` repeats of it (``looped``): the same landmarks for the
    same pictures, a cut at each seam when ``cut``, keyed by the looped file's SHA-256."""
    from facecast.dubbing.trackfile import VideoTrack, video_sha256

    n = track.num_frames
    cuts = np.tile(track.cuts, reps)
    cuts[n::n] = cut
    return VideoTrack(video_sha256(looped), track.fps, track.size, np.tile(track.points, (reps, 1, 1)),
                      np.tile(track.detected, reps), cuts, track.face_index)


def long_input(video: Path, track_path: Path, seconds: float, out_dir: Path) -> tuple[Path, object, float]:
    """(looped video, its tiled VideoTrack, its length in seconds) of at least ``seconds``."""
    from facecast.dubbing.trackfile import load_track
    from facecast.media import open_video

    t0 = time.perf_counter()
    track = load_track(track_path, video)
    looped = out_dir / f"{video.stem}_loop{int(seconds)}.mp4"
    reps = loop_video(video, looped, seconds)
    tiled = tile_track(track, reps, looped, seam_is_cut(video))
    src = open_video(looped)
    if abs(src.num_frames - tiled.num_frames) > 1 or abs(src.fps - track.fps) > 1e-3:
        raise SystemExit(f"error: {looped}: {src.num_frames} frames at {src.fps} fps, its track {tiled.num_frames} "
                         f"at {track.fps}: the packet copy went wrong")
    print(f"{looped.name}: {reps} x {video.name} = {tiled.num_frames} frames ({tiled.num_frames / track.fps:.0f} s), "
          f"{looped.stat().st_size / 2**20:.0f} MiB, {int(tiled.cuts.sum())} cuts; built in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    return looped, tiled, tiled.num_frames / track.fps


def run_one(video: Path, track, wav: Path, seconds: float, mouth: str, draw_workers: int, a, out_dir: Path,
            processes: int = 1) -> dict:
    import torch

    from facecast.dubbing import DubReport, dub
    from facecast.dubbing.options import DubOptions
    from facecast.options import EncodeOptions, RenderOptions
    from facecast.sysinfo import MemorySampler, rss_mb
    from facecast.timing import Timings

    cuda = a.device.startswith("cuda")
    opts = DubOptions(mouth=mouth, workers=a.phone_workers, calibrate=False, scan_s=a.scan_s, words=not a.no_words,
                      draw_workers=draw_workers, processes=processes, render=RenderOptions(device=a.device),
                      encode=EncodeOptions(crf=18, preset=a.preset, workers=a.encode_workers))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    timings, report = Timings(), DubReport()
    load0 = os.getloadavg()[0]
    marks: list[tuple[float, float]] = []

    t_start = time.perf_counter()

    def progress(done: float, total: float | None) -> None:
        if total:
            marks.append((done / total, rss_mb(True)))
            if int(10 * done / total) > int(10 * (marks[-2][0] if len(marks) > 1 else 0)):  # every 10 %: a
                # line a run cut off by its time limit still leaves behind
                print(f"  {100 * done / total:3.0f} % of {video.name} at {time.perf_counter() - t_start:6.1f} s, "
                      f"RSS {marks[-1][1]:.0f} MiB", flush=True)

    out = out_dir / f"out_{video.stem}_{mouth}.mp4"
    with RenderClock(cuda) as clock, MemorySampler(0.25) as mem:
        t0 = time.perf_counter()
        dub(video, out, audio=wav, track=track, options=opts, timings=timings, report=report, progress=progress)
        wall = time.perf_counter() - t0
    out.unlink(missing_ok=True)  # a 30-minute output is ~1 GB
    st = dict(timings.seconds)
    row = {"video": video.name, "size": list(report.size), "fps": report.fps, "frames": report.frames,
           "seconds": round(seconds, 2), "mouth": report.mouth, "device": a.device, "draw_workers": draw_workers,
           "draw_threads": opts.draw_threads(), "processes": opts.process_count(), "notes": report.notes,
           "preset": a.preset, "wall_s": round(wall, 3),
           "rtf": round(wall / seconds, 4), "stage_s": {k: round(v, 3) for k, v in st.items()},
           "report": report.text(), "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
           "rss_peak_mib": round(mem.peak), **rss_marks(marks, seconds)}
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


def rss_marks(marks: list[tuple[float, float]], seconds: float) -> dict:
    """RSS (MiB) at 10 / 50 / 90 % of the output written, from (fraction, MiB) marks, and the
    second half's least-squares slope in MiB per minute of output."""
    if not marks:
        return {}
    f, r = np.array([m[0] for m in marks]), np.array([m[1] for m in marks])
    late = f >= 0.5
    slope = float(np.polyfit(f[late] * seconds / 60, r[late], 1)[0]) if late.sum() >= 3 else None
    return {"rss_at_output_mib": {f"{p}%": round(float(r[np.argmin(np.abs(f - p / 100))])) for p in (10, 50, 90)},
            "rss_second_half_mib": [round(float(r[late].min())), round(float(r[late].max()))] if late.any() else None,
            "rss_slope_mib_per_min": None if slope is None else round(slope, 2)}


def find_input(dirs: list[Path], h: int) -> tuple[Path, Path]:
    for d in dirs:
        if (d / f"in{h}.mp4").exists():
            return d / f"in{h}.mp4", d / f"in{h}.track.npz"
    raise SystemExit(f"error: no in{h}.mp4 in {', '.join(map(str, dirs))} (make it with benchmarks/make_dub_inputs.py)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=Path, nargs="+", required=True, help="folders with in{H}.mp4 + track; "
                    "speech.npz from the first")
    ap.add_argument("--heights", type=int, nargs="+", default=[1080, 2160])
    ap.add_argument("--mouth", nargs="+", default=["mesh", "footage"])
    ap.add_argument("--seconds", type=float, default=None, help="seconds of speech (default: the video's length)")
    ap.add_argument("--loop-seconds", type=float, default=None,
                    help="build a long input of at least this many seconds from the clip (see the docstring)")
    ap.add_argument("--draw-workers", type=int, nargs="+", default=[0], help="DubOptions.draw_workers, one run "
                    "each (0 = auto)")
    ap.add_argument("--processes", type=int, nargs="+", default=[1], help="DubOptions.processes, one run each "
                    "(1 = one process draws; 0 = auto; N >= 2: span workers, see dubbing/spans.py)")
    ap.add_argument("--tracks", nargs="+", choices=["given", "none"], default=["given"],
                    help="given: dub reads the carried (tiled) track; none: dub tracks the face itself (with "
                    "--processes N >= 2 in pieces on its workers: needs mediapipe). One run each")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--encode-workers", type=int, default=8)
    ap.add_argument("--phone-workers", type=int, default=4)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--scan-s", type=float, default=20.0)
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-warmup", action="store_true", help="skip the 3-s warm-up dub per height and mouth")
    ap.add_argument("--no-words", action="store_true",
                    help="phones only, no word recognition (the GPU box's carried pocketsphinx has no language model)")
    a = ap.parse_args()
    import torch

    from facecast.media import open_video

    speech = np.load(a.inputs[0] / "speech.npz")["samples"]
    mid = max(0, len(speech) // 2 - 24000)  # 3 s from the middle (the clip starts with a pause)
    warm_wav = write_wav(a.out_dir / "gpu_dub_warm.wav", np.tile(speech, 2)[mid:mid + 3 * 16000])
    info = {"argv": sys.argv, "torch": torch.__version__, "cores": os.cpu_count(),
            "device_name": torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    rows = []
    for h in a.heights:
        video, track = find_input(a.inputs, h)
        if a.loop_seconds:
            video, track, length = long_input(video, track, a.loop_seconds, a.out_dir)
        else:
            src = open_video(video)
            length = src.num_frames / src.fps
        seconds = a.seconds or length
        n = int(seconds * 16000)
        wav = write_wav(a.out_dir / f"gpu_dub_{h}.wav", np.tile(speech, int(np.ceil(n / len(speech))))[:n])
        for mouth in a.mouth:
            warm = None
            if not a.no_warmup:
                from facecast.dubbing import dub
                from facecast.dubbing.options import DubOptions
                from facecast.options import RenderOptions

                t0 = time.perf_counter()
                dub(video, a.out_dir / "gpu_dub_warm.mp4", audio=warm_wav, track=track,
                    options=DubOptions(mouth=mouth, workers=0, calibrate=False, scan_s=2.0, words=not a.no_words,
                                       processes=max(a.processes), render=RenderOptions(device=a.device)))
                warm = round(time.perf_counter() - t0, 2)
            for dw, pr, given in itertools.product(a.draw_workers, a.processes, a.tracks):
                row = run_one(video, track if given == "given" else None, wav, seconds, mouth, dw, a, a.out_dir, pr)
                row["warmup_s"], row["track"] = warm, given
                rows.append(row)
                print(json.dumps(row), flush=True)
        if a.loop_seconds:
            video.unlink(missing_ok=True)
    print(f"\n{info['device_name']}, {info['cores']} cores, torch {info['torch']}, {info['date']}")
    print("| video | mouth | processes | draw threads | s of speech | wall s | RTF | decode | motion | render | composite | encode | "
          "render CUDA s | VRAM alloc / reserved MiB | RSS 10/50/90 % of output, peak MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        g = r["stage_rtf"]
        f = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
        rss = r.get("rss_at_output_mib") or {}
        print(f"| {r['size'][0]}x{r['size'][1]} | {r['mouth']} | {r['processes']} | {r['draw_threads']} | {r['seconds']:.1f} | "
              f"{r['wall_s']:.2f} | {r['rtf']:.4f} | {f(g['decode'])} | {f(g['motion'])} | {f(g['render'])} | "
              f"{f(g['composite'])} | {f(g['encode'])} | {r.get('render_cuda_events_s', '-')} | "
              f"{r.get('vram_peak_allocated_mib', '-')} / {r.get('vram_peak_reserved_mib', '-')} | "
              f"{rss.get('10%', '-')} / {rss.get('50%', '-')} / {rss.get('90%', '-')}, {r['rss_peak_mib']} |")
    if a.json:
        a.json.write_text(json.dumps({"info": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
