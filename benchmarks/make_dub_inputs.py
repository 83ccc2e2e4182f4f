"""Prepare the inputs of `benchmarks/gpu_dub.py` on this machine (the GPU machine has no mediapipe):
talking-head videos at 1080p and 4K, their face tracks, and real speech as a .npz.

    .venv/bin/python benchmarks/make_dub_inputs.py --out .devrun/dub [--heights 1080 2160]
                                                   [--seconds 12 6] [--speech-seconds 12] [--budget-mb 25]

Each video is joygen_zh.mp4 of the shared media (900x900 @ 25 fps, a talking head) scaled to the
height and centred on a 16:9 canvas whose sides show the same picture enlarged and blurred (as
dub_bench.py makes its 720p input), H.264 CRF 20 `veryfast`, no sound track; ``in{H}.mp4``. Its
track (``in{H}.track.npz``) is made by `dub`'s own tracker (facecast.dubbing.trackfile), keyed by
the file's SHA-256. ``speech.npz``: ``samples`` float32 16 kHz mono, --speech-seconds of
speech60s_en.wav from 3 s on (it opens with 3 s of room noise). The carried folder must stay small (the PyAV wheel takes ~35 MB of the
64 MB a device call carries): the total is printed and over --budget-mb is an error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def make_video(path: Path, seconds: float, height: int, crf: int = 20) -> Path:
    """A 16:9 talking-head video of ``seconds`` at 25 fps, ``height`` px high (see the docstring)."""
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
    x0 = (W - height) // 2
    with Mp4Writer(path, fps=25.0, width=W, height=height, crf=crf, preset="veryfast") as w:
        for a in range(0, n, 10):
            out = []
            for i in idx[a:a + 10]:
                small = cv2.resize(frames[i], (W // 4, W // 4), interpolation=cv2.INTER_AREA)
                bg = cv2.GaussianBlur(small, (0, 0), 3)
                bg = cv2.resize(bg, (W, W), interpolation=cv2.INTER_LINEAR)[(W - height) // 2:(W - height) // 2 + height]
                interp = cv2.INTER_AREA if height <= frames.shape[1] else cv2.INTER_CUBIC
                bg[:, x0:x0 + height] = cv2.resize(frames[i], (height, height), interpolation=interp)
                out.append(bg)
            w.write_video(VideoFrames(torch.from_numpy(np.stack(out)), 25.0, a))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(".devrun/dub"))
    ap.add_argument("--heights", type=int, nargs="+", default=[1080, 2160])
    ap.add_argument("--seconds", type=float, nargs="+", default=[12.0, 6.0],
                    help="video length per height (the last one repeats)")
    ap.add_argument("--speech-seconds", type=float, default=12.0)
    ap.add_argument("--budget-mb", type=float, default=25.0)
    a = ap.parse_args()
    from facecast.audio import load_audio
    from facecast.dubbing.trackfile import save_track, track_video_file

    if not a.out.parent.is_dir():
        sys.exit(f"error: {a.out.parent} does not exist")
    a.out.mkdir(exist_ok=True)
    speech = load_audio(MEDIA / "audio" / "speech60s_en.wav", sample_rate=16000, mono=True).samples[0]
    start = 3 * 16000  # the recording opens with 3 s of room noise
    np.savez_compressed(a.out / "speech.npz",
                        samples=speech[start:start + int(a.speech_seconds * 16000)].astype(np.float32))
    for k, h in enumerate(a.heights):
        secs = a.seconds[min(k, len(a.seconds) - 1)]
        t0 = time.perf_counter()
        video = make_video(a.out / f"in{h}.mp4", secs, h)
        t1 = time.perf_counter()
        track = track_video_file(video)
        save_track(track, a.out / f"in{h}.track.npz")
        t2 = time.perf_counter()
        print(f"{video.name}: {track.size[0]}x{track.size[1]}, {track.num_frames} frames, face in "
              f"{int(track.has_face.sum())}; made in {t1 - t0:.1f} s, tracked in {t2 - t1:.1f} s "
              f"({1000 * (t2 - t1) / max(track.num_frames, 1):.1f} ms a frame, decode included)")
    total = 0
    for f in sorted(a.out.iterdir()):
        total += f.stat().st_size
        print(f"  {f.name:24s} {f.stat().st_size / 2**20:6.2f} MiB")
    print(f"  {'total':24s} {total / 2**20:6.2f} MiB (budget {a.budget_mb:g} MB)")
    if total > a.budget_mb * 1e6:
        sys.exit(f"error: {a.out} holds {total / 1e6:.1f} MB, over the {a.budget_mb:g} MB budget: fewer seconds")


if __name__ == "__main__":
    main()
