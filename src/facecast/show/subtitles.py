"""Subtitles: SRT / WebVTT files written cue by cue beside the video, and text drawn into frames.

    SubtitleFiles  streams cues to hidden partial files and moves them onto OUTPUT.srt /
                   OUTPUT.vtt only when the whole show succeeded (``close``); ``abort`` removes
                   them. The VTT carries the speaker (``<v NAME>``) and every word's start time
                   (``<00:00:01.240>``), so players can highlight words as they are said. Words
                   recognised from a recording (no transcript) are marked: ``<c.recognised>``
                   in the VTT, italics (``<i>``) in the SRT.
    TextOverlay    text drawn once into an RGBA patch (Pillow's bundled font), pasted over frames
                   (name captions, burnt-in subtitles).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..outputs import check_output_file
from .words import Cue

__all__ = ["SubtitleFiles", "TextOverlay", "subtitle_paths", "srt_time", "vtt_time", "srt_cue", "vtt_cue"]


def subtitle_paths(output: str | Path, which: str) -> list[Path]:
    """The subtitle files ``which`` ("none", "srt", "vtt", "both") asks for beside ``output``."""
    out = Path(output)
    kinds = {"none": (), "srt": (".srt",), "vtt": (".vtt",), "both": (".srt", ".vtt")}[which]
    return [out.with_suffix(k) for k in kinds]


def _clock(t: float, sep: str) -> str:
    ms = max(int(round(t * 1000)), 0)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt_time(t: float) -> str:
    """Seconds -> SRT time (00:01:02,345)."""
    return _clock(t, ",")


def vtt_time(t: float) -> str:
    """Seconds -> WebVTT time (00:01:02.345)."""
    return _clock(t, ".")


def srt_cue(index: int, cue: Cue) -> str:
    text = f"<i>{cue.text}</i>" if cue.recognised else cue.text
    return f"{index}\n{srt_time(cue.start)} --> {srt_time(cue.end)}\n{text}\n\n"


def _vtt_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt_cue(cue: Cue) -> str:
    words = [_vtt_escape(cue.words[0].text)]
    words += [f"<{vtt_time(w.start)}>{_vtt_escape(w.text)}" for w in cue.words[1:]]
    text = " ".join(words)
    if cue.recognised:
        text = f"<c.recognised>{text}</c>"
    return f"{vtt_time(cue.start)} --> {vtt_time(cue.end)}\n<v {_vtt_escape(cue.speaker)}>{text}\n\n"


class SubtitleFiles:
    """Cue-by-cue writers for the subtitle ``paths`` (.srt / .vtt); nothing appears at a path
    unless ``close()`` runs. ``inputs``: the job's inputs, which an output may never be."""

    def __init__(self, paths: list[Path], inputs=()) -> None:
        self.paths = [check_output_file(p, suffixes=(p.suffix,), inputs=inputs, what="subtitle file") for p in paths]
        self._files = []
        self._count = 0
        self.last_end = 0.0
        try:
            for p in self.paths:
                f = open(self._partial(p), "w", encoding="utf-8", newline="\n")
                self._files.append((p, f))
                if p.suffix == ".vtt":
                    f.write("WEBVTT\n\n")
        except OSError as exc:
            self.abort()
            from ..errors import OutputError

            raise OutputError(f"{exc.filename}: cannot write the subtitle file ({exc.strerror}).") from None

    @staticmethod
    def _partial(p: Path) -> Path:
        return p.with_name(f".{p.stem}.partial{p.suffix}")

    def write(self, cue: Cue) -> None:
        """Append one cue (cues come in time order)."""
        self._count += 1
        self.last_end = max(self.last_end, cue.end)
        for p, f in self._files:
            f.write(srt_cue(self._count, cue) if p.suffix == ".srt" else vtt_cue(cue))

    @property
    def count(self) -> int:
        return self._count

    def close(self) -> list[Path]:
        """Finish every file and move it onto its path; returns the paths."""
        for p, f in self._files:
            f.close()
            os.replace(self._partial(p), p)
        self._files = []
        return self.paths

    def abort(self) -> None:
        for p, f in self._files:
            f.close()
            self._partial(p).unlink(missing_ok=True)
        self._files = []


class TextOverlay:
    """``text`` drawn white on a translucent dark box, as a float RGB patch and its alpha,
    ready to paste at (x, y) over frames of height ``frame_h`` (the font scales with it)."""

    def __init__(self, text: str, frame_w: int, frame_h: int, *, scale: float = 0.045, max_w: float = 0.9,
                 device: torch.device | str = "cpu") -> None:
        from PIL import Image, ImageDraw, ImageFont

        size = max(int(frame_h * scale), 9)
        try:
            font = ImageFont.load_default(size=size)
        except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
            font = ImageFont.load_default()
        lines = _wrap(text, font, int(frame_w * max_w) - 2 * size // 2)
        pad = max(size // 3, 2)
        line_h = size + size // 4
        widths = [int(font.getlength(s)) for s in lines]
        w = min(max(widths) + 2 * pad, frame_w)
        h = min(line_h * len(lines) + 2 * pad, frame_h)
        img = Image.new("RGBA", (w, h), (0, 0, 0, 150))
        draw = ImageDraw.Draw(img)
        for i, s in enumerate(lines):
            draw.text(((w - widths[i]) // 2, pad + i * line_h), s, font=font, fill=(255, 255, 255, 255))
        rgba = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).to(device)
        self.alpha = rgba[..., 3:4]
        self.rgb = rgba[..., :3] * 255.0
        self.size = (w, h)

    def paste(self, frames: torch.Tensor, x: int, y: int) -> None:
        """Blend into ``frames`` (uint8 [n, H, W, 3]) in place, top-left at (x, y), clipped."""
        H, W = frames.shape[1:3]
        w, h = self.size
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, W), min(y + h, H)
        if x1 <= x0 or y1 <= y0:
            return
        a = self.alpha[y0 - y:y1 - y, x0 - x:x1 - x]
        rgb = self.rgb[y0 - y:y1 - y, x0 - x:x1 - x]
        region = frames[:, y0:y1, x0:x1].float()
        frames[:, y0:y1, x0:x1] = (region * (1 - a) + rgb * a).round().clamp(0, 255).to(torch.uint8)


def _wrap(text: str, font, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]
