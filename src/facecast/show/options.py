"""ScriptOptions: everything `facecast script` needs besides the script itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..options import Choice, EncodeOptions, MotionOptions, Range, RenderOptions, check_ranges, check_type

__all__ = ["ScriptOptions", "SUBTITLES"]

SUBTITLES = ("none", "srt", "vtt", "both")


@dataclass(frozen=True)
class ScriptOptions:
    """How a script is rendered. Ranges are checked on construction (``RANGES``).

    width, height: output size in pixels, each an even whole number 64 ... 4096; None = the
        script's ``size:`` (or 1280x720 when it has none). Give both or neither.
    fps: frames per second, 1 ... 120.
    layout: "split", "solo" or "grid" to override the script's ``layout:``; None = the script's.
    captions: name captions on (True) / off (False); None = the script's ``captions:``.
    subtitles: "none", "srt", "vtt" or "both": subtitle files written beside the video
        (OUTPUT.srt / OUTPUT.vtt), with word times from the voice.
    burn_subtitles: also draw the subtitles into the picture.
    min_shot_s: seconds, 0 ... 60: the solo layout cuts to a new speaker on a line boundary only
        once the current shot has lasted this long (short interjections are then heard off screen).
    gap_s: seconds, 0 ... 5: silence between one line and the next.
    audio_rate: the output's audio sample rate, Hz (every voice and recording is resampled to it):
        one of 16000, 22050, 24000, 32000, 44100, 48000.
    segment_max_s: seconds, 1 ... 60: recordings are processed in pieces of at most this long
        (memory stays flat whatever their length).
    video_loop_s: seconds, 1 ... 600: of a video face, the first this many seconds play back and
        forth (from low-motion frames) for as long as the show lasts; kept decoded in a temporary
        file at the face's size (~0.05 MB a frame at 128 px, ~1.2 MB at 640 px).
    motion, render, encode: as for `say` (seed, head motion and expressiveness apply to every
        face; each speaker gets its own seed offset so blinks never line up).
    """

    width: int | None = None
    height: int | None = None
    fps: float = 25.0
    layout: str | None = None
    captions: bool | None = None
    subtitles: str = "none"
    burn_subtitles: bool = False
    min_shot_s: float = 2.0
    gap_s: float = 0.25
    audio_rate: int = 48000
    segment_max_s: float = 12.0
    video_loop_s: float = 30.0
    motion: MotionOptions = MotionOptions()
    render: RenderOptions = RenderOptions()
    encode: EncodeOptions = EncodeOptions()

    RANGES: ClassVar[dict] = {
        "width": Range(64, 4096, "pixels", integer=True, step=2, optional=True),
        "height": Range(64, 4096, "pixels", integer=True, step=2, optional=True),
        "fps": Range(1, 120, "frames per second"),
        "subtitles": Choice(SUBTITLES),
        "min_shot_s": Range(0, 60, "s"),
        "gap_s": Range(0, 5, "s"),
        "audio_rate": Range(8000, 96000, "Hz", integer=True),
        "segment_max_s": Range(1, 60, "s"),
        "video_loop_s": Range(1, 600, "s"),
    }

    def __post_init__(self) -> None:
        from ..errors import OptionError

        check_ranges(self)
        if (self.width is None) != (self.height is None):
            raise OptionError("ScriptOptions.width", self.width, "given together with height (or both None)")
        if self.layout is not None:
            Choice(("split", "solo", "grid")).check("ScriptOptions.layout", self.layout)
        if self.audio_rate not in (16000, 22050, 24000, 32000, 44100, 48000):
            raise OptionError("ScriptOptions.audio_rate", self.audio_rate,
                              "one of 16000, 22050, 24000, 32000, 44100, 48000")
        for name in ("captions",):
            if getattr(self, name) not in (None, True, False):
                raise OptionError(f"ScriptOptions.{name}", getattr(self, name), "True, False or None")
        check_type(self, "motion", MotionOptions)
        check_type(self, "render", RenderOptions)
        check_type(self, "encode", EncodeOptions)

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height), or None when the script decides."""
        return None if self.width is None else (self.width, self.height)
