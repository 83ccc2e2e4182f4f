"""Shows: a hand-written script with several speakers -> one video (and its subtitles).

    from facecast.show import ScriptOptions, render_script
    render_script("show.md", "show.mp4", ScriptOptions(subtitles="both"))

``render_script(script, output, options=ScriptOptions(), *, progress=None, timings=None) -> Path``
renders the script file (or a parsed ``Script``) to ``output`` (MP4), the subtitle files beside
it; ``parse_script(path) -> Script`` reads a script alone (ScriptError names FILE:LINE). The
format, layouts, subtitles and errors: docs/scripts.md. The passes: ``show.render``.

Modules: script (parse), options (ScriptOptions), cast (faces and voices), video (video faces),
timeline (speech on the show's timeline), words (word times, cues), takes (word times of recorded
takes), subtitles (SRT/VTT, text overlays), listen (listener motion, gaze), layout (geometry,
composition, the solo director), render (the passes).
"""

from __future__ import annotations

from pathlib import Path

from .options import ScriptOptions
from .render import ShowStatus, render_script
from .script import Script, ScriptError, parse_script

__all__ = ["ScriptOptions", "Script", "ScriptError", "ShowStatus", "parse_script", "render_script",
           "example_script"]


def example_script() -> Path:
    """The example show that ships with facecast (``facecast script --example``)."""
    return Path(__file__).resolve().parent.parent / "examples" / "show.md"
