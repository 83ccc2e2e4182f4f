"""Pre-frame real portraits for the GPU machine (which has no mediapipe): img{i} uint8 [S, S, 3]
and pts{i} float32 [478, 3] face-mesh landmarks, read back by `facecast.live.loadtest.portraits_from_npz`.

    .venv/bin/python benchmarks/make_portraits_npz.py --size 1024 -o .devrun/portraits1024.npz
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from facecast import face

MEDIA = Path(os.environ.get("FACECAST_MEDIA", Path(__file__).resolve().parents[2] / "shared" / "media"))
DEFAULT = ("sam_512.jpg", "hallo_ref7.jpg", "sadtalker_people0.png", "leijun.png", "dreamtalk_face3.png",
           "bw_s12.jpg")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--portraits", nargs="+", default=list(DEFAULT), help="file names in ../shared/media/portrait")
    args = ap.parse_args()
    arrays = {}
    for i, name in enumerate(args.portraits):
        path = MEDIA / "portrait" / name
        img = face.load_image(path)
        p = face.frame_portrait(img, face.find_face(img, source=str(path)), size=args.size, source=str(path))
        arrays[f"img{i}"], arrays[f"pts{i}"] = p.image, p.face.points.astype(np.float32)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    print(f"wrote {args.output}: {len(args.portraits)} portraits at {args.size}x{args.size}")


if __name__ == "__main__":
    main()
