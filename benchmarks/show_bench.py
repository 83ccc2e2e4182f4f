"""`facecast script` on a long generated show: memory at 10 / 50 / 90 % of the script, wall time
per minute of output (minute by minute, to see that it stays flat), and the one-hour estimate.

    .venv/bin/python benchmarks/show_bench.py [--minutes 10] [--size 256x144] [--layout split]
                                              [--subtitles both] [--device cpu] [--append docs/benchmarks.md]
                                              [--json out/show_bench.json] [--keep out/long_show.mp4]
                                              [--video ../shared/media/video/may_en.mp4]

The show is made here: two speakers (the example show's faces, which ship with facecast) taking
turns, lines of 1-3 sentences from a fixed pool of varied English sentences, a [pause] every
seventh line, until the text should last --minutes (3 words per second; the real length is
measured from the output). ``--video FILE``: the guest's face is that video (a video face,
re-lip-synced; tracked once before the show starts). Everything runs in this process (`render_script`); RSS is sampled
every 0.5 s and read at the moments the renderer reached 10, 50 and 90 % of the script's lines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

SENTENCES = [
    "Welcome back to the weekly update.", "Today we look at the numbers from the last quarter.",
    "They are better than expected, and the team deserves the credit.", "How much better, exactly?",
    "Rendering is about twice as fast as it was last month.", "Memory stays flat however long the show runs.",
    "That is good news for anyone with a long script.", "What about the people who write by hand?",
    "The format is plain text, with one line for each thing a speaker says.",
    "A pause is written in square brackets, with its length in seconds.",
    "Subtitles come for free, with the exact time of every word.", "Can we see a recorded take as well?",
    "Yes, a recorded take plays in the speaker's place, and the mouth follows it.",
    "On the third of May, 2026, we counted 1,250 shows.", "The budget was $3.5M, and we spent less than half.",
    "Thank you, that was very clear.", "See you next week!", "Let us move on to the questions.",
    "Why does the listener nod from time to time?", "Because people who listen are never perfectly still.",
]


def make_script(folder: Path, minutes: float, size: str, layout: str, video: Path | None = None
                ) -> tuple[Path, int, int]:
    """The generated show in ``folder`` (faces copied next to it): (path, lines, words)."""
    from facecast.show import example_script

    for face in ("astronaut.jpg", "hopper.jpg"):
        shutil.copy(example_script().parent / face, folder / face)
    guest = "hopper.jpg"
    if video is not None:
        guest = "guest" + video.suffix
        (folder / guest).symlink_to(video.resolve())
    head = (f"---\ntitle: a long show\nsize: {size}\nlayout: {layout}\ncaptions: on\nspeakers:\n"
            f"  HOST: {{face: astronaut.jpg}}\n  GUEST: {{face: {guest}, rate: 1.1}}\n---\n")
    lines, words, i = [], 0, 0
    while words / 3.0 < minutes * 60:
        k = 1 + (i * 7) % 3
        text = " ".join(SENTENCES[(i * 3 + j) % len(SENTENCES)] for j in range(k))
        if i % 7 == 6:
            text = text.replace(". ", ". [pause 0.6] ", 1) if ". " in text else text + " [pause 0.6]"
        lines.append(f"{'HOST' if i % 2 == 0 else 'GUEST'}: {text}")
        words += len(text.split())
        i += 1
    path = folder / "long_show.md"
    path.write_text(head + "\n".join(lines) + "\n")
    return path, len(lines), words


def run(minutes: float, size: str, layout: str, subtitles: str, keep: Path | None, device: str = "cpu",
        video: Path | None = None) -> dict:
    from facecast.media import probe_mp4
    from facecast.options import RenderOptions
    from facecast.show import ScriptOptions, parse_script, render_script
    from facecast.sysinfo import MemorySampler
    from facecast.timing import Timings

    with tempfile.TemporaryDirectory(prefix="showbench-") as d:
        d = Path(d)
        path, n_lines, n_words = make_script(d, minutes, size, layout, video)
        script = parse_script(path)
        out = d / "long_show.mp4"
        marks: dict[int, float] = {}   # percent of lines -> seconds since start
        minute_wall: list[float] = []  # wall seconds at each whole minute of output
        timings = Timings()
        load0 = os.getloadavg()
        c0 = os.times()
        t0 = time.perf_counter()

        def progress(status) -> None:
            now = time.perf_counter() - t0
            for p in (10, 50, 90):
                if p not in marks and status.line >= p / 100 * status.lines:
                    marks[p] = now
            while status.seconds >= 60 * (len(minute_wall) + 1):
                minute_wall.append(now)

        with MemorySampler(0.5) as mem:
            render_script(script, out, ScriptOptions(subtitles=subtitles, render=RenderOptions(device=device)),
                          progress=progress, timings=timings)
        wall = time.perf_counter() - t0
        c1 = os.times()
        load1 = os.getloadavg()
        info = probe_mp4(out)
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(out, keep)

    def rss_at(t: float) -> float:
        return min(mem.samples, key=lambda s: abs(s[0] - t))[1]

    video_min = info["video_duration"] / 60
    per_minute = [b - a for a, b in zip([0.0] + minute_wall, minute_wall)]
    return {
        "minutes_target": minutes, "lines": n_lines, "words": n_words, "size": size, "layout": layout,
        "subtitles": subtitles, "device": device, "video_face": str(video) if video else None, "video_s": round(info["video_duration"], 2), "frames": info["num_frames"],
        "wall_s": round(wall, 1), "wall_per_output_min_s": round(wall / video_min, 1),
        "rtf": round(wall / info["video_duration"], 3),
        "cpu_s": round((c1.user - c0.user) + (c1.system - c0.system), 1),
        "wall_per_minute_s": [round(x, 1) for x in per_minute],
        "rss_mib_at_lines": {f"{p}%": round(rss_at(marks.get(p, wall)), 0) for p in (10, 50, 90)},
        "rss_peak_mib": round(mem.peak), "rss_start_mib": round(mem.samples[0][1]),
        "one_hour_estimate_min": round(wall / video_min * 60 / 60, 1),
        "stage_s": {k: round(v, 1) for k, v in timings.seconds.items()},
        "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in load1],
        "cpu_count": os.cpu_count(),
    }


def markdown(res: dict, command: str, machine: dict) -> str:
    r = res["rss_mib_at_lines"]
    pm = res["wall_per_minute_s"]
    lines = [
        f"## {machine['date']} - `facecast script`: a {res['video_s'] / 60:.1f}-minute show on this CPU "
        f"({machine['cpu']}, {machine['cores']} cores)", "",
        f"`{command}` at revision {machine['git']}: {res['lines']} lines ({res['words']} words), two speakers"
        + (f" (the guest a video face: {Path(res['video_face']).name})" if res.get("video_face") else "") + ", "
        f"{res['layout']} layout at {res['size']}, 25 fps, subtitles {res['subtitles']}, device "
        f"{res.get('device', 'cpu')}.", "",
        f"- Output {res['video_s']:.1f} s ({res['frames']} frames) in {res['wall_s']:.0f} s wall: "
        f"**{res['wall_per_output_min_s']:.0f} s per minute of output** (RTF {res['rtf']:.2f}); "
        f"{res['cpu_s']:.0f} CPU-seconds in this process.",
        f"- Wall seconds for each minute of output, in order: {', '.join(f'{x:.0f}' for x in pm)} (flat = linear).",
        f"- RSS when the renderer reached 10 / 50 / 90 % of the lines: {r['10%']:.0f} / {r['50%']:.0f} / "
        f"{r['90%']:.0f} MiB (start {res['rss_start_mib']} MiB, peak {res['rss_peak_mib']} MiB).",
        f"- A one-hour script at this rate: about {res['one_hour_estimate_min']:.0f} minutes.",
        f"- Load average before / after: {res['load_before'][0]:.1f} / {res['load_after'][0]:.1f} on "
        f"{res['cpu_count']} cores (shared with other jobs: above ~2 the numbers are slower than an idle machine's).",
        "", "| stage | seconds |", "|---|---:|",
    ]
    for k, v in sorted(res["stage_s"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {k} | {v:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="Length of the generated show (target).")
    ap.add_argument("--size", default="256x144")
    ap.add_argument("--layout", default="split")
    ap.add_argument("--subtitles", default="both")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (RenderOptions.device).")
    ap.add_argument("--keep", type=Path, default=None, help="Keep the rendered show here.")
    ap.add_argument("--video", type=Path, default=None, help="The guest's face: this video (a video face).")
    ap.add_argument("--append", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    from facecast.sysinfo import machine_info

    machine = machine_info()
    res = run(a.minutes, a.size, a.layout, a.subtitles, a.keep, a.device, a.video)
    command = "python benchmarks/show_bench.py " + " ".join(sys.argv[1:])
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"command": command, "machine": machine, "result": res}, indent=1))
    if a.append:
        with open(a.append, "a") as f:
            f.write("\n" + markdown(res, command, machine))


if __name__ == "__main__":
    main()
