"""`facecast eval`'s pictures: mouth opening over time for every row, and a contact sheet of face
crops of each row at the same moments (matplotlib and PIL, imported when drawing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import face
from .clips import Clip
from .report import ClipReport

__all__ = ["sheet_indices", "crop_box", "thumb", "write_plots"]

_SHEET_COLS = 6
_THUMB = 128


def sheet_indices(clip: Clip) -> list[int]:
    """Frames for the contact sheet: in each of 6 equal stretches, the frame where the real mouth
    is widest open (shows the mouth at work)."""
    ap = face.mouth_metrics(clip.points)["mouth_open"]
    ap = np.where(np.isfinite(ap), ap, -1)
    edges = np.linspace(0, clip.num_frames, _SHEET_COLS + 1).round().astype(int)
    return [int(a + np.argmax(ap[a:b])) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def crop_box(points: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Square (x0, y0, x1, y1) around a face's landmarks (1.3 x their extent, inside the frame of
    ``shape`` (H, W)); the whole frame when the face was not found."""
    H, W = shape
    if not np.isfinite(points).all():
        return 0, 0, W, H
    x0, y0 = points[:, :2].min(axis=0)
    x1, y1 = points[:, :2].max(axis=0)
    cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 1.3
    s = min(s, W, H)
    bx = int(round(min(max(cx - s / 2, 0), W - s)))
    by = int(round(min(max(cy - s / 2, 0), H - s)))
    return bx, by, bx + int(s), by + int(s)


def thumb(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The ``box`` of ``frame`` resized to a 128 x 128 contact-sheet crop."""
    from PIL import Image

    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
    return np.asarray(Image.fromarray(crop).resize((_THUMB, _THUMB), Image.Resampling.BILINEAR))


def write_plots(report: ClipReport, clip: Clip, plot_dir: Path) -> list[str]:
    """<clip>_aperture.png (mouth opening over time, every row, with the loudness envelope) and
    <clip>_sheet.png (face crops of each row at the same 6 moments). Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image, ImageDraw

    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    t = np.arange(clip.num_frames) / clip.fps
    fig, ax = plt.subplots(figsize=(max(8, min(24, clip.seconds * 0.8)), 4.0), dpi=100)
    ax.fill_between(t, 0, clip.energy * 0.35, color="0.85", label="speech loudness (scaled)", step="mid")
    styles = {"real": ("k", 2.0, "-"), "still": ("0.5", 1.0, ":"), "loudness": ("tab:blue", 1.2, "--"),
              "facecast": ("tab:red", 1.5, "-")}
    for name, row in report.rows.items():
        if row.mouth_open is None:
            continue
        c, lw, ls = styles.get(name, ("tab:green", 1.0, "-"))
        ap = row.mouth_open[: clip.num_frames]
        r = row.metrics.get("aperture_corr", float("nan"))
        ax.plot(t[: len(ap)], ap, color=c, lw=lw, ls=ls, label=f"{name} (r={r:.2f})" if np.isfinite(r) else name)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mouth opening (IOD)")
    ax.set_title(f"{report.clip}: mouth opening, real vs generated")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, ncol=5, frameon=False)
    ax.set_xlim(0, max(t[-1], 1e-3))
    fig.tight_layout()
    p = plot_dir / f"{report.clip}_aperture.png"
    fig.savefig(p)
    plt.close(fig)
    paths.append(str(p))

    names = [n for n in report.rows if report.rows[n].thumbs]
    if names:
        label_w, pad = 80, 2
        cols = max(len(report.rows[n].thumbs) for n in names)
        sheet = Image.new("RGB", (label_w + cols * (_THUMB + pad), len(names) * (_THUMB + pad)), (255, 255, 255))
        draw = ImageDraw.Draw(sheet)
        for r_i, n in enumerate(names):
            y = r_i * (_THUMB + pad)
            draw.text((4, y + _THUMB // 2 - 6), n, fill=(0, 0, 0))
            for c_i, th in enumerate(report.rows[n].thumbs):
                sheet.paste(Image.fromarray(th), (label_w + c_i * (_THUMB + pad), y))
        p = plot_dir / f"{report.clip}_sheet.png"
        sheet.save(p)
        paths.append(str(p))
    return paths
