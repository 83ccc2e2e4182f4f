"""parse: a show script (YAML front matter, then one `NAME: text` line per line of speech) ->
a typed Script, every part carrying the script line it came from.

    ---
    title: Weekly update
    size: 1280x720
    layout: split            # split | solo | grid
    background: "#1d2733"    # a colour (quoted: # starts a YAML comment) or an image file
    captions: on
    speakers:
      ANA: {face: ana.jpg}
      BEN: {face: ben.twin, voice: voices/en_US-x.onnx, rate: 1.1}
      CAT: {face: cat.mp4, track: cat.track.npz}
    ---
    ANA: Welcome back. Today we look at the numbers.
    BEN: Thanks, Ana. [pause 0.5] They are better than expected.
    ANA: [audio: intro_take2.wav | Here is what I said on Monday.]

Paths are relative to the script's folder. Lines starting with ``#`` are comments (Markdown
headings read as such), indented lines continue the line above, blank lines are skipped.
Every mistake is a ``ScriptError`` naming ``FILE:LINE`` (docs/scripts.md lists them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import yaml

from ..errors import InputError
from ..options import Range

__all__ = ["Script", "ScriptError", "ScriptLine", "Speaker", "SpeakText", "Pause", "Recording", "Part",
           "parse_script", "parse_script_text", "LAYOUTS", "COLOURS", "MAX_SCRIPT_BYTES"]

LAYOUTS = ("split", "solo", "grid")
COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128), "grey": (128, 128, 128),
    "navy": (16, 24, 64), "slate": (29, 39, 51), "teal": (0, 96, 100), "green": (24, 96, 48),
    "blue": (24, 64, 160), "red": (150, 30, 30), "beige": (225, 214, 190),
}
DEFAULT_BACKGROUND = (29, 39, 51)
MAX_SCRIPT_BYTES = 8 * 2**20
"""A script larger than this is refused (about 100 hours of speech)."""

SIZE_RANGE = Range(64, 4096, "pixels", integer=True, step=2)
RATE_RANGE = Range(0.5, 2.0, "(1 = the voice's own speed)")
PAUSE_RANGE = Range(0, 60, "s", lo_open=True)
FRONT_KEYS = ("title", "size", "layout", "background", "captions", "speakers")
SPEAKER_KEYS = ("face", "voice", "rate", "track")
_NAME = re.compile(r"^([A-Za-z][\w.'-]*(?: [\w.'-]+)*)\s*:(.*)$")
_DIRECTIVE = re.compile(r"\[([^\[\]]*)\]")


class ScriptError(InputError):
    """A mistake in a script, at ``path``:``line`` (1-based; 0 = the file as a whole)."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        self.path, self.line = str(path), line
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


@dataclass(frozen=True)
class Speaker:
    """A speaker of the front matter: face file (a portrait image, a twin or a video), Piper
    voice file (None: the bundled voice), speaking rate (0.5 ... 2, 1 = the voice's own), the
    script line that defines them, and a video face's track file (None: beside it or tracked)."""

    name: str
    face: Path
    voice: Path | None
    rate: float
    line: int
    track: Path | None = None


@dataclass(frozen=True)
class SpeakText:
    """Words to speak with the speaker's voice."""

    text: str


@dataclass(frozen=True)
class Pause:
    """``[pause S]``: silence of S seconds (0 < S <= 60) inside a line."""

    seconds: float


@dataclass(frozen=True)
class Recording:
    """``[audio: FILE]`` or ``[audio: FILE | what is said]``: a recorded take played as the
    speaker's speech; ``transcript`` (optional) is what the subtitles show for it."""

    path: Path
    transcript: str | None = None


Part = Union[SpeakText, Pause, Recording]


@dataclass(frozen=True)
class ScriptLine:
    """One line of the show: who speaks, what (parts in order), and where it is written."""

    speaker: str
    parts: tuple[Part, ...]
    line: int


@dataclass(frozen=True)
class Script:
    """A parsed script. ``size``: (width, height) or None (the options decide); ``background``: an
    RGB colour or an image Path."""

    path: Path
    title: str
    size: tuple[int, int] | None
    layout: str
    background: tuple[int, int, int] | Path
    captions: bool
    speakers: dict[str, Speaker]
    lines: tuple[ScriptLine, ...]


def parse_script(path: str | Path) -> Script:
    """Read and parse the script file ``path`` (ScriptError / InputError naming file and line)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: script not found. Check the path.")
    if p.is_dir():
        raise InputError(f"{p}: is a folder. Give the script file (e.g. {p / 'show.md'}).")
    if p.stat().st_size > MAX_SCRIPT_BYTES:
        raise ScriptError(p, 0, f"the script is {p.stat().st_size:,} bytes; the limit is {MAX_SCRIPT_BYTES:,}. "
                          "Split it into several shows.")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScriptError(p, 0, f"is not UTF-8 text ({exc.reason} at byte {exc.start}). Save it as UTF-8.") from None
    return parse_script_text(text, p)


def parse_script_text(text: str, path: str | Path) -> Script:
    """Parse script ``text``; ``path`` names it in errors and anchors its relative paths."""
    path = Path(path)
    lines = text.splitlines()
    first = next((i for i, s in enumerate(lines) if s.strip()), None)
    if first is None:
        raise ScriptError(path, 0, "the script is empty. Start it with a front matter block "
                          "(---, speakers: ..., ---) and then lines of NAME: text (docs/scripts.md).")
    if lines[first].strip() != "---":
        raise ScriptError(path, first + 1, "bad front matter: a script starts with a line '---', then the "
                          "settings (speakers: ...), then '---' (docs/scripts.md).")
    end = next((i for i in range(first + 1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise ScriptError(path, first + 1, "bad front matter: the block opened here is never closed with a "
                          "line '---'.")
    front = _FrontMatter(path, lines, first, end)
    speakers = front.speakers()
    body = _parse_body(path, lines, end + 1, speakers)
    return Script(path, front.title(), front.size(), front.layout(), front.background(), front.captions(), speakers,
                  body)


class _FrontMatter:
    """The YAML block between the two '---' lines, with the script line of every key."""

    def __init__(self, path: Path, lines: list[str], first: int, end: int) -> None:
        self.path, self.offset = path, first + 1  # YAML line 0 = script line first + 2
        self.base = path.parent
        source = "\n".join(lines[first + 1:end])
        try:
            node = yaml.compose(source, Loader=yaml.SafeLoader)
            data = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = self.offset + mark.line + 1 if mark is not None else first + 1
            raise ScriptError(path, line, f"bad front matter: {getattr(exc, 'problem', None) or exc}. "
                              "Check the YAML (key: value, nested entries indented).") from None
        if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
            raise ScriptError(path, first + 2, "bad front matter: expected settings as 'key: value' lines "
                              "(at least speakers:).")
        self.data = data
        self.node = node
        self.lines = {str(k.value): self.offset + k.start_mark.line + 1 for k, _ in node.value}
        self.raw = lines
        for key in data:
            if key not in FRONT_KEYS:
                raise ScriptError(path, self.lines.get(str(key), first + 1),
                                  f"bad front matter: unknown setting '{key}'. Known: {', '.join(FRONT_KEYS)}.")

    def _err(self, key: str, message: str) -> ScriptError:
        return ScriptError(self.path, self.lines.get(key, self.offset), f"bad front matter: {message}")

    def title(self) -> str:
        value = self.data.get("title", "")
        return "" if value is None else str(value)

    def size(self) -> tuple[int, int] | None:
        value = self.data.get("size")
        if value is None:
            return None
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(value))
        if not m:
            raise self._err("size", f"size: {value!r} is not WIDTHxHEIGHT in pixels (e.g. 1280x720).")
        w, h = int(m.group(1)), int(m.group(2))
        for side, v in (("width", w), ("height", h)):
            if not SIZE_RANGE.allows(v):
                raise self._err("size", f"size: the {side} {v} must be {SIZE_RANGE.describe()}.")
        return w, h

    def layout(self) -> str:
        value = self.data.get("layout", "split")
        if value not in LAYOUTS:
            raise self._err("layout", f"layout: {value!r} is not one of {', '.join(LAYOUTS)}.")
        return value

    def captions(self) -> bool:
        value = self.data.get("captions", False)
        if not isinstance(value, bool):
            raise self._err("captions", f"captions: {value!r} must be on or off.")
        return value

    def background(self) -> tuple[int, int, int] | Path:
        if "background" not in self.data:
            return DEFAULT_BACKGROUND
        value = self.data["background"]
        line = self.lines["background"]
        if value is None:
            hint = (" A colour starting with # must be quoted (background: \"#1d2733\"): unquoted, YAML reads # "
                    "as a comment." if "#" in self.raw[line - 1] else "")
            raise self._err("background", "background: no value." + hint)
        text = str(value).strip()
        if text.lower() in COLOURS:
            return COLOURS[text.lower()]
        m = re.fullmatch(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", text)
        if m:
            h = m.group(1)
            h = "".join(c * 2 for c in h) if len(h) == 3 else h
            return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
        if text.startswith("#"):
            raise self._err("background", f"background: {text!r} is not a colour (#rgb or #rrggbb hex digits).")
        image = self.base / text
        if not image.is_file():
            raise self._err("background", f"background: {text!r} is neither a colour ({', '.join(COLOURS)}, "
                            f"#rrggbb) nor an image file ({image} not found).")
        return image

    def speakers(self) -> dict[str, Speaker]:
        value = self.data.get("speakers")
        if not isinstance(value, dict) or not value:
            raise self._err("speakers", "speakers: expected at least one speaker, as NAME: {face: FILE} "
                            "(face: a portrait image, a .twin file or a video; voice: a Piper .onnx file; "
                            "rate: 0.5 ... 2).")
        entries = {str(k.value): v for k, v in self.node.value}["speakers"].value
        out: dict[str, Speaker] = {}
        seen: dict[str, int] = {}
        for key_node, _ in entries:
            name, line = str(key_node.value), self.offset + key_node.start_mark.line + 1
            if name in seen:
                raise ScriptError(self.path, line, f"speaker {name}: defined twice (also on line {seen[name]}).")
            seen[name] = line
        for (name, line), spec in zip(seen.items(), value.values()):
            out[name] = self._speaker(name, spec, line)
        return out

    def _speaker(self, name: str, spec, line: int) -> Speaker:
        err = lambda msg: ScriptError(self.path, line, f"speaker {name}: {msg}")  # noqa: E731
        if not _NAME.match(f"{name}:"):
            raise err("a name is letters, digits, spaces, . ' - or _ and starts with a letter.")
        if isinstance(spec, str):
            spec = {"face": spec}
        if not isinstance(spec, dict):
            raise err("expected {face: FILE, voice: FILE.onnx, rate: 1.0}.")
        for key in spec:
            if key not in SPEAKER_KEYS:
                raise err(f"unknown setting '{key}'. Known: {', '.join(SPEAKER_KEYS)}.")
        if not spec.get("face"):
            raise err("no face. Give face: FILE (a portrait image, a .twin file or a video of the person).")
        face = self.base / str(spec["face"])
        if not face.exists():
            raise err(f"face file {face} not found (paths are relative to the script's folder).")
        if face.is_dir():
            raise err(f"face {face} is a folder; give an image, a .twin file or a video.")
        voice = None
        if spec.get("voice") is not None:
            voice = self.base / str(spec["voice"])
            if not voice.is_file():
                raise err(f"voice file {voice} not found (a Piper voice: FILE.onnx with FILE.onnx.json beside it).")
        rate = spec.get("rate", 1.0)
        if not RATE_RANGE.allows(rate):
            raise err(f"rate {rate!r} must be {RATE_RANGE.describe()}.")
        track = None
        if spec.get("track") is not None:
            track = self.base / str(spec["track"])
            if not track.is_file():
                raise err(f"track file {track} not found (make it with facecast dub-track VIDEO -o FILE.npz).")
        return Speaker(name, face, voice, float(rate), line, track)


def _logical_lines(lines: list[str], start: int):
    """(first line number, text) of each body line, indented continuation lines joined on."""
    current: list | None = None
    for i in range(start, len(lines)):
        raw = lines[i]
        s = raw.strip()
        if not s:
            continue
        if raw[:1] in (" ", "\t") and current is not None:
            current[1] += " " + s
            continue
        if current is not None:
            yield tuple(current)
        current = None if s.startswith("#") else [i + 1, s]
    if current is not None:
        yield tuple(current)


def _parse_body(path: Path, lines: list[str], start: int, speakers: dict[str, Speaker]) -> tuple[ScriptLine, ...]:
    out = []
    for line, text in _logical_lines(lines, start):
        m = _NAME.match(text)
        if not m:
            raise ScriptError(path, line, f"expected NAME: text (a speaker of the front matter: "
                              f"{', '.join(speakers)}), got {text[:40]!r}.")
        name, rest = m.group(1), m.group(2)
        if name not in speakers:
            close = [s for s in speakers if s.lower() == name.lower()]
            hint = f" Did you mean {close[0]}?" if close else ""
            raise ScriptError(path, line, f"unknown speaker {name!r}; the front matter defines "
                              f"{', '.join(speakers)}.{hint}")
        parts = _parse_parts(path, line, rest, speakers[name])
        if not any(isinstance(p, (SpeakText, Recording)) for p in parts):
            raise ScriptError(path, line, f"{name} has an empty line of speech. Give the words to say, or "
                              "[audio: FILE] for a recording.")
        out.append(ScriptLine(name, tuple(parts), line))
    if not out:
        raise ScriptError(path, len(lines), "the script has no lines of speech. After the front matter, write "
                          "lines as NAME: text.")
    return tuple(out)


def _parse_parts(path: Path, line: int, text: str, speaker: Speaker) -> list[Part]:
    parts: list[Part] = []
    pos = 0
    for m in _DIRECTIVE.finditer(text):
        _add_text(parts, text[pos:m.start()], path, line)
        parts.append(_directive(path, line, m.group(1).strip(), speaker))
        pos = m.end()
    _add_text(parts, text[pos:], path, line)
    return parts


def _add_text(parts: list[Part], text: str, path: Path, line: int) -> None:
    if "[" in text or "]" in text:
        raise ScriptError(path, line, "bad directive: an unmatched [ or ]. Directives are [pause S] and "
                          "[audio: FILE].")
    if not any(ch.isalnum() for ch in text):
        return  # blank, or punctuation around a directive: nothing to say
    from ..text import check_text

    try:
        check_text(text, source="text")  # too long, not UTF-8, another script than Latin ...
    except InputError as exc:
        raise ScriptError(path, line, str(exc).split(": ", 1)[-1]) from None
    parts.append(SpeakText(" ".join(text.split())))


def _directive(path: Path, line: int, body: str, speaker: Speaker) -> Part:
    m = re.fullmatch(r"pause\s*:?\s*(\S*?)\s*(?:s|sec|seconds)?", body, re.IGNORECASE)
    if m:
        try:
            seconds = float(m.group(1))
        except ValueError:
            raise ScriptError(path, line, f"bad directive [{body}]: the pause needs its length in seconds, "
                              "e.g. [pause 0.5].") from None
        if not PAUSE_RANGE.allows(seconds):
            raise ScriptError(path, line, f"bad directive [{body}]: the pause must be {PAUSE_RANGE.describe()}.")
        return Pause(seconds)
    m = re.fullmatch(r"audio\s*:\s*([^|]*?)\s*(?:\|\s*(.*))?", body, re.IGNORECASE | re.DOTALL)
    if m:
        if not m.group(1):
            raise ScriptError(path, line, f"bad directive [{body}]: give the recording, e.g. [audio: take.wav].")
        file = path.parent / m.group(1)
        if not file.is_file():
            raise ScriptError(path, line, f"[audio: {m.group(1)}]: {file} not found (paths are relative to the "
                              "script's folder).")
        transcript = (m.group(2) or "").strip() or None
        return Recording(file, transcript)
    raise ScriptError(path, line, f"bad directive [{body}]: known directives are [pause SECONDS] and "
                      "[audio: FILE] (or [audio: FILE | what is said]).")
