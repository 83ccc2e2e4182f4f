"""The pixel path's ceiling on a many-core box: K processes, each decoding a 1080p H.264 clip
and re-encoding it (libx264, CRF 18) frame by frame with no face work, in yuv420p (as decoded)
or through RGB (what dub's draw path converts to and from). Frames/s over all processes; what a
span-parallel dub could reach at best on this machine.

    python benchmarks/span_ceiling.py --video .devrun/dub/in1080.mp4 --workers 1 8 16 \
        --presets veryfast superfast --paths yuv rgb [--decoders cpu cuvid] [--reps 2] [--json out/span_ceiling.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time


def decoded(c, vs, decoder: str, threads: int):
    """Frames of stream ``vs``: FFmpeg's h264 decoder on the CPU, or NVDEC (h264_cuvid: nv12 frames
    in host memory)."""
    import av

    if decoder == "cpu":
        vs.thread_type = "AUTO"
        vs.codec_context.thread_count = threads
        yield from c.decode(vs)
        return
    dec = av.CodecContext.create("h264_cuvid", "r")
    dec.extradata = vs.codec_context.extradata
    dec.width, dec.height = vs.codec_context.width, vs.codec_context.height
    for packet in c.demux(vs):
        yield from dec.decode(packet)


def one(video: str, preset: str, path: str, reps: int, threads: int, decoder: str = "cpu") -> tuple[int, int, float]:
    """(frames, bytes, CPU seconds) of one process decoding ``video`` ``reps`` times and encoding it."""
    import av

    cpu0 = time.process_time()
    frames = size = 0
    with av.open(os.devnull, "w", format="h264") as out:
        for _ in range(reps):
            with av.open(video) as c:
                vs = c.streams.video[0]
                s = None
                for f in decoded(c, vs, decoder, threads):
                    if s is None:
                        s = out.add_stream("libx264", rate=25)
                        s.width, s.height, s.pix_fmt = f.width, f.height, f.format.name if path == "yuv" else "yuv420p"
                        s.options = {"crf": "18", "preset": preset}
                        s.codec_context.thread_count = threads
                    if path == "rgb":
                        f = av.VideoFrame.from_ndarray(f.to_ndarray(format="rgb24"), format="rgb24")
                    f.pts = None
                    for p in s.encode(f):
                        size += p.size
                    frames += 1
                for p in s.encode():
                    size += p.size
    return frames, size, time.process_time() - cpu0


def run(video: str, workers: int, preset: str, path: str, reps: int, threads: int, decoder: str = "cpu") -> dict:
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(workers) as pool:
        res = pool.starmap(one, [(video, preset, path, reps, threads, decoder)] * workers)
    wall = time.perf_counter() - t0
    frames = sum(r[0] for r in res)
    return {"workers": workers, "preset": preset, "path": path, "decoder": decoder, "threads": threads, "frames": frames,
            "wall_s": round(wall, 2), "fps": round(frames / wall, 1),
            "cpu_ms_per_frame": round(sum(r[2] for r in res) / frames * 1e3, 2),
            "kib_per_frame": round(sum(r[1] for r in res) / frames / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", required=True)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--presets", nargs="+", default=["veryfast", "superfast"])
    ap.add_argument("--paths", nargs="+", default=["yuv"], choices=["yuv", "rgb"])
    ap.add_argument("--threads", type=int, default=1, help="decoder and encoder threads per process")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--decoders", nargs="+", default=["cpu"], choices=["cpu", "cuvid"],
                    help="cuvid: NVDEC through FFmpeg's h264_cuvid (nv12 frames; the encoder takes them as they are)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    print(f"{os.cpu_count()} CPUs; {a.video}", flush=True)
    rows = []
    for decoder in a.decoders:
        for preset in a.presets:
            for path in a.paths:
                for w in a.workers:
                    r = run(a.video, w, preset, path, a.reps, a.threads, decoder)
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
