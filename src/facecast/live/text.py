"""Text input of a live session: sentences as they complete, and the checks on text pieces."""

from __future__ import annotations

import re
from typing import Any

from ..errors import InputError

__all__ = ["SentenceSplitter", "check_text_piece", "speakable"]


class SentenceSplitter:
    """Collects text pieces and hands out sentences as soon as they are complete.

    A sentence ends at . ! ? ; or : followed by white space, or at a line break. A run of more
    than ``max_chars`` without one is cut at its last comma (or space), so a long unpunctuated
    stream still starts speaking. Pieces with nothing speakable ("...", " ") are dropped.
    """

    _END = re.compile(r"[.!?;:\u3002\uff01\uff1f]+[\"')\]\u201d\u2019]*\s+|\n+")

    def __init__(self, max_chars: int = 200) -> None:
        self.max_chars = max_chars
        self._buf = ""

    def feed(self, text: str) -> list[str]:
        self._buf += text
        out = []
        while True:
            m = self._END.search(self._buf)
            if m is None:
                break
            out.append(self._buf[:m.end()])
            self._buf = self._buf[m.end():]
        while len(self._buf) > self.max_chars:
            cut = self._buf.rfind(",", 0, self.max_chars)
            cut = cut if cut > 0 else self._buf.rfind(" ", 0, self.max_chars)
            cut = cut + 1 if cut > 0 else self.max_chars
            out.append(self._buf[:cut])
            self._buf = self._buf[cut:]
        return [s.strip() for s in out if speakable(s)]

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, ""
        return [rest.strip()] if speakable(rest) else []

    def clear(self) -> None:
        self._buf = ""

    @property
    def pending(self) -> str:
        return self._buf


def speakable(text: str) -> bool:
    """Whether ``text`` has anything to say (a letter or a digit)."""
    return any(ch.isalnum() for ch in text)


def check_text_piece(text: Any) -> str:
    """``text`` if it is a usable text piece, else TypeError / InputError."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if text == "":
        raise InputError("stream text: got an empty text piece. Send the words to speak (white space between "
                         "words is fine), or send nothing.")
    return text
