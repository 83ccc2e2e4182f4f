"""`facecast bench` on the GPU machine (no mediapipe/typer there): the same run_bench, with the
portrait pre-framed (.npz) and the speech written from a .npz of 16 kHz samples.

Usage: python benchmarks/gpu_bench.py --portraits .devrun/portraits512.npz --speech .devrun/speech60s.npz \
           --durations 5 60 --sizes 512 --device cuda --workers 8
Prints the markdown section that `facecast bench --append` would write.
"""

import argparse
import sys

import av
import numpy as np

from facecast.live.loadtest import portraits_from_npz
from facecast.quality.bench import markdown_section, run_bench
from facecast.quality.options import BenchOptions
from facecast.sysinfo import machine_info

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--portraits", required=True, nargs="+", help="pre-framed portrait .npz files "
                    "(benchmarks/make_portraits_npz.py); each size is rendered from a portrait framed at that size")
    ap.add_argument("--speech", required=True)
    ap.add_argument("--durations", type=float, nargs="+", default=[5.0, 60.0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--encoders", type=int, default=1, help="parallel H.264 encoder threads")
    ap.add_argument("--no-words", dest="words", action="store_false", help="phone recognition only")
    ap.add_argument("--batch", type=int, default=None, help="RenderOptions.batch_frames")
    args = ap.parse_args()
    samples = np.load(args.speech)["samples"]
    wav = "/tmp/speech16k.wav"
    with av.open(wav, "w") as out:
        st = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        fr = av.AudioFrame.from_ndarray((np.clip(samples, -1, 1) * 32767).astype(np.int16)[None], format="s16",
                                        layout="mono")
        fr.sample_rate = 16000
        for p in list(st.encode(fr)) + list(st.encode()):
            out.mux(p)
    portraits = {p.image.shape[0]: p for path in args.portraits for p in portraits_from_npz(path)}  # the last of a size
    results = []
    for size in args.sizes:
        portrait = portraits.get(size) or next(iter(portraits.values()))
        if portrait.image.shape[0] != size:
            print(f"note: no {size}px portrait in {args.portraits}; using {portrait.image.shape[0]}", file=sys.stderr)
        opts = BenchOptions(durations=tuple(args.durations), sizes=(portrait.image.shape[0],), device=args.device,
                            repeats=5, speech=wav, portrait=portrait, workers=args.workers,
                            encoders=args.encoders, words=args.words, batch_frames=args.batch)
        results += run_bench(opts)
    print(markdown_section(results, "python benchmarks/gpu_bench.py " + " ".join(sys.argv[1:]), machine_info()))
