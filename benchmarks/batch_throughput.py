"""Batch throughput: the same J jobs run one after another (``--jobs 1``) and N at once
(``--jobs N``, threads sharing the warm models and the device), in one process, as ratios.

CPU (this machine, portraits framed here with mediapipe, speech from ../shared/media):
    .venv/bin/python benchmarks/batch_throughput.py --count 4 --at-once 2 --seconds 8 --size 256

GPU machine (no mediapipe there: carry portraits framed here and the speech as 16 kHz samples):
    .venv/bin/python benchmarks/make_portraits_npz.py --size 512 -o .devrun/portraits512.npz
    .venv/bin/python -c "import numpy as np; from facecast.audio import load_audio; \\
        np.savez('.devrun/speech60s.npz', samples=load_audio('../shared/media/audio/speech60s_en.wav').samples[0])"
    (on the box) python benchmarks/batch_throughput.py --portraits .devrun/portraits512.npz \\
        --speech .devrun/speech60s.npz --device cuda --count 16 --at-once 1 2 4 8 --seconds 30 --workers 2

``--kind dub --video V`` dubs V instead (each job its own slice of the speech). Dub tracks the
video's face with mediapipe, which the GPU machine lacks: ``--track T`` gives every job the
video's precomputed face track (the jobs file's "track" field; `facecast dub-track`, or
make_dub_inputs.py, which writes in{H}.mp4, its in{H}.track.npz and speech.npz), so no job tracks.

N dubs at once on the GPU machine (inputs made here with ``make_dub_inputs.py --heights 1080``):
    (on the box) python benchmarks/batch_throughput.py --kind dub --video .devrun/dub/in1080.mp4 \
        --track .devrun/dub/in1080.track.npz --speech .devrun/dub/speech.npz --device cuda \
        --count 8 --at-once 1 2 4 8 --seconds 12 --workers 2 --no-words --mouth footage
CPU proof of the same path, small (this machine):
    .venv/bin/python benchmarks/make_dub_inputs.py --out .devrun/dub360 --heights 360 --seconds 4 \
        --speech-seconds 16
    .venv/bin/python benchmarks/batch_throughput.py --kind dub --video .devrun/dub360/in360.mp4 \
        --track .devrun/dub360/in360.track.npz --speech .devrun/dub360/speech.npz \
        --count 4 --at-once 2 --seconds 4 --no-words --mouth footage
Every job has its own speech (consecutive slices of the speech, looped) and its own portrait
(round robin). A warm-up job first loads what the process keeps (voice, CUDA context, phone
workers); each mode then starts fresh workers, as a new batch would. Prints one JSON object
(and writes it to ``--json``): per mode wall seconds, jobs per hour, audio seconds per wall
second, the ratio to one-at-a-time, and whether the N-at-once outputs are byte-identical to the
one-at-a-time ones (they must be: audio jobs are deterministic); the machine, load average
before/after, revision.
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

import numpy as np

from facecast.audio import write_wav

MEDIA = Path(os.environ.get("FACECAST_MEDIA", Path(__file__).resolve().parents[2] / "shared" / "media"))


class NpzPortraits:
    """Portraits framed on another machine (make_portraits_npz.py), by the placeholder file each
    job names: the batch's ``warm.Portraits`` seam, without mediapipe."""

    def __init__(self, portraits: dict) -> None:
        self.by_name = portraits

    def get(self, path, options):
        return self.by_name[Path(path).name]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=4, help="jobs in the batch (J)")
    ap.add_argument("--at-once", type=int, nargs="+", default=[2], help="N values to compare with one at a time")
    ap.add_argument("--seconds", type=float, default=8.0, help="speech per job")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--kind", choices=("say", "dub"), default="say")
    ap.add_argument("--video", help="dub: the video to re-lip-sync")
    ap.add_argument("--track", help="dub: the video's face track (no mediapipe needed: the GPU machine)")
    ap.add_argument("--mouth", choices=("auto", "footage", "mesh"), default="auto", help="dub: the mouth")
    ap.add_argument("--portraits", help="npz of pre-framed portraits (machines without mediapipe)")
    ap.add_argument("--speech", help="npz with 'samples': 16 kHz speech (default: speech60s_en.wav)")
    ap.add_argument("--workers", type=int, default=0, help="each job's phone-recognition processes")
    ap.add_argument("--encoders", type=int, default=1)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--no-words", action="store_true")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of all modes, alternating which goes first")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.kind == "dub" and not args.video:
        ap.error("--kind dub needs --video")
    if args.track and args.kind != "dub":
        ap.error("--track goes with --kind dub")

    from facecast.batch.local import run_batch
    from facecast.batch.options import BatchOptions
    from facecast.batch.read import parse_jobs
    from facecast.sysinfo import machine_info

    work = Path(tempfile.mkdtemp(prefix="batchbench"))
    if args.speech:
        speech = np.load(args.speech)["samples"].astype(np.float32)
    else:
        from facecast.audio import load_audio

        speech = load_audio(MEDIA / "audio" / "speech60s_en.wav").samples[0]
    speech = speech[int(np.argmax(np.abs(speech) > 0.05)):]  # from the first word: no job of silence alone
    n = int(args.seconds * 16000)
    speech = np.tile(speech, int(np.ceil((args.count + 1) * n / len(speech))))
    wavs = [write_wav(work / f"speech{i}.wav", speech[i * n:(i + 1) * n]) for i in range(args.count + 1)]

    portraits = None
    if args.kind == "say":
        if args.portraits:
            from PIL import Image

            from facecast.live.loadtest import portraits_from_npz

            framed = portraits_from_npz(args.portraits)
            names = [f"portrait{i}.png" for i in range(len(framed))]
            for name, p in zip(names, framed):
                Image.fromarray(p.image).save(work / name)  # a file for the job line; the pixels come from the npz
            portraits = NpzPortraits(dict(zip(names, framed)))
            faces = [str(work / name) for name in names]
        else:
            faces = [str(MEDIA / "portrait" / f) for f in ("sam_512.jpg", "hallo_ref7.jpg", "leijun.png")]

    def line(i: int, out: Path) -> str:
        common = {"output": str(out / f"job{i}.mp4"), "audio": str(wavs[i]), "preset": args.preset,
                  "workers": args.workers, "words": not args.no_words, "device": args.device}
        if args.kind == "say":
            return json.dumps({"kind": "say", "portrait": faces[i % len(faces)], "size": args.size,
                               "encoders": args.encoders, **common})
        track = {"track": str(Path(args.track).absolute())} if args.track else {}
        return json.dumps({"kind": "dub", "video": str(Path(args.video).absolute()), "mouth": args.mouth,
                           **track, **common})

    def batch(at_once: int, count: int, first: int = 1, tag: int = -1) -> dict:
        out = work / f"out{at_once}_{first}_{tag}"
        out.mkdir()
        jobs = parse_jobs([line(i, out) for i in range(first, first + count)], "bench", work)
        t0 = time.perf_counter()
        results = run_batch(jobs, BatchOptions(jobs=at_once, device=args.device), portraits=portraits)
        wall = time.perf_counter() - t0
        bad = [r.reason for r in results if r.status != "done"]
        if bad:
            raise SystemExit(f"jobs failed: {bad}")
        audio = sum(r.duration or 0.0 for r in results)
        return {"at_once": at_once, "wall_s": round(wall, 2), "jobs_per_hour": round(3600 * count / wall, 1),
                "audio_s_per_wall_s": round(audio / wall, 3), "outputs": [str(r.job.output) for r in results]}

    load_before = os.getloadavg()
    batch(1, 1, first=0)  # warm-up: the voice, the CUDA context, the phone-worker pool
    modes = [1] + [n for n in args.at_once if n != 1]
    rows, ratios = [], {n: [] for n in modes[1:]}
    for rep in range(args.repeats):  # alternate which mode goes first: load drifts on a shared machine
        order = modes if rep % 2 == 0 else modes[::-1]
        got = {}
        for at_once in order:
            got[at_once] = batch(at_once, args.count, tag=rep)
            got[at_once]["repeat"] = rep
            got[at_once]["load_1min"] = round(os.getloadavg()[0], 2)
            rows.append(got[at_once])
        for n in modes[1:]:
            got[n]["throughput_vs_one_at_a_time"] = round(got[1]["wall_s"] / got[n]["wall_s"], 3)
            ratios[n].append(got[n]["throughput_vs_one_at_a_time"])
            # N jobs at once must write what one at a time writes (audio input: deterministic)
            got[n]["identical_to_one_at_a_time"] = all(
                Path(a).read_bytes() == Path(b).read_bytes() for a, b in zip(got[1]["outputs"], got[n]["outputs"]))
        for row in got.values():
            row.pop("outputs")
    report = {"command": "python benchmarks/batch_throughput.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "revision": machine_info()["git"],
              "machine": machine_info(), "kind": args.kind, "jobs": args.count, "seconds_per_job": args.seconds,
              "size": args.size if args.kind == "say" else "video's", "device": args.device,
              "track": args.track, "mouth": args.mouth if args.kind == "dub" else None,
              "load_before": [round(x, 2) for x in load_before],
              "load_after": [round(x, 2) for x in os.getloadavg()], "rows": rows,
              "median_throughput_vs_one_at_a_time": {n: float(np.median(v)) for n, v in ratios.items()}}
    shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
