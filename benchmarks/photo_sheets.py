"""Before/after contact sheets of photo mode up close (issue #17): for each portrait, the states of
`facecast sheet` (rest, closed, near-closed, half-open, open, rounded, blink, smile) drawn by an
older revision of the renderer (row "before") and by the working tree (row "after").

    .venv/bin/python benchmarks/photo_sheets.py --before 8d27f83 --out out/sheets
    .venv/bin/python benchmarks/photo_sheets.py --astronaut-only --out docs/img

The older revision's `src/` is exported with `git archive` into a temporary folder and renders
in a subprocess (its own facecast on the path) the same motion parameters, without the columns
it does not know (the expression ones: its smile column shows the rest pose). Sheets of the
shared third-party portraits go to --out for looking at, not into the repository; the
astronaut (scikit-image's test picture) may be committed (docs/img/).
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"

_RENDER_OLD = """
import pickle, sys, numpy as np
from facecast.options import RenderOptions
from facecast.render import MeshRenderer
from facecast.types import MotionFrames
portrait, params = pickle.load(open(sys.argv[1], "rb"))
frames = MeshRenderer(portrait, RenderOptions()).render(MotionFrames(params, 25.0, 0)).frames.numpy()
np.save(sys.argv[2], frames)
"""


def portraits(astronaut_only: bool, size: int):
    from skimage import data

    from facecast import face

    out = []
    img = data.astronaut()
    out.append(("astronaut", face.frame_portrait(img, face.find_face(img, source="astronaut"), size=size,
                                                 source="astronaut")))
    if not astronaut_only:
        for path in sorted((MEDIA / "portrait").iterdir()):
            img = face.load_image(path)
            out.append((path.stem, face.frame_portrait(img, face.find_face(img, source=path.name), size=size,
                                                       source=path.name)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="8d27f83", help="git revision drawn in the 'before' row")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "sheets")
    ap.add_argument("--astronaut-only", action="store_true")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--zoom", type=int, default=2)
    args = ap.parse_args()
    from facecast.quality.sheet import render_states, state_params, write_sheet

    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "before"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "src"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        env = dict(os.environ, PYTHONPATH=str(tree / "src"))
        for name, p in portraits(args.astronaut_only, args.size):
            job, frames_path = Path(tmp) / f"{name}.pkl", Path(tmp) / f"{name}.npy"
            with open(job, "wb") as f:
                pickle.dump((p, np.ascontiguousarray(state_params(10))), f)  # 10: the parameters before #17
            subprocess.run([sys.executable, "-c", _RENDER_OLD, str(job), str(frames_path)], env=env, check=True,
                           cwd=tmp)
            rows = {"before": np.load(frames_path), "after": render_states(p)}
            print(write_sheet(args.out / f"sheet_{name}.png", p, rows, args.zoom), flush=True)


if __name__ == "__main__":
    main()
