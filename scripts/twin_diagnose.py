"""Where does a twin's lip sync get lost? Render the held-out frames of a clip three ways and
measure each with the face mesh against the real mouth.

    .venv/bin/python scripts/twin_diagnose.py --twin out/twin/obama.twin \
        --tracks out/twin/obama_tracks.npz --media ../shared/media/video \
        --holdout styletalk_obama_clip2_en.mp4:0.2

1. real landmarks, pasted into the real held-out frames  -> how faithful the renderer is
2. landmarks predicted from the held-out audio, same frames -> the audio->mouth model's share
(3. the twin's own background loop is what `facecast eval --mode twin` measures.)
The tracks are stage-1 tracks of all training clips (``facecast.twin.prepare.save_tracks``).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--twin", required=True)
    ap.add_argument("--tracks", required=True)
    ap.add_argument("--media", required=True)
    ap.add_argument("--holdout", default="styletalk_obama_clip2_en.mp4:0.2")
    args = ap.parse_args()

    from facecast.face import mouth_metrics, track_video
    from facecast.twin.generate import Twin
    from facecast.twin.mouth import aperture
    from facecast.twin.net import crop_frames, paste_crops
    from facecast.twin.options import PrepOptions
    from facecast.twin.pipeline import holdout_mask
    from facecast.twin.prepare import decode_all, load_tracks, prepare
    from facecast.twin.train import regenerate

    name, frac = args.holdout.rsplit(":", 1)
    twin = Twin.load(args.twin, size=None)
    f = prepare(load_tracks(args.tracks, media_dir=args.media), PrepOptions(crop_px=twin.render_config.size))
    hi = np.flatnonzero(holdout_mask(f, (name, float(frac))))
    clip = f.clips[int(f.clip[hi[0]])]
    fps = float(clip["fps"])
    frames = decode_all(clip["path"], tuple(clip["size"]))[f.frame[hi]]
    real = mouth_metrics(track_video(frames, fps=fps, smooth=False)[0])["mouth_open"]
    audio = clip["audio"][int(round(f.frame[hi[0]] / fps * 16000)):]
    src = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    aff = torch.from_numpy(f.affine[hi]).double()
    r_px = twin.render_config.size

    def r(x: np.ndarray, y: np.ndarray) -> float:
        ok = np.isfinite(x) & np.isfinite(y)
        return round(float(np.corrcoef(x[ok], y[ok])[0, 1]), 3)

    for label, mouth in (("real landmarks", f.mouth[hi]), ("predicted from audio", twin.mouth(audio, fps, len(hi)))):
        crops = crop_frames(src, aff, r_px).add(1).mul(127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1)
        gen = regenerate(twin.net.float(), crops, torch.from_numpy(mouth), twin.reference, batch=16)
        out = paste_crops(src, gen, aff).add(1).mul(127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        measured = mouth_metrics(track_video(out, fps=fps, smooth=False)[0])["mouth_open"]
        print(json.dumps({"rows": label, "mesh_r_vs_real": r(measured, real),
                          "landmark_r_vs_real": r(aperture(mouth), real),
                          "mesh_of_render_vs_its_landmarks": r(measured, aperture(mouth))}), flush=True)


if __name__ == "__main__":
    main()
