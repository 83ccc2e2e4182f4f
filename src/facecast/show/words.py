"""Word times for subtitles: the script's written words placed on the voice's spoken words.

Piper says how long each phoneme took, so the words as spoken (``voice.SpokenWord``) have exact
times. The written words of a sentence are matched to them:

- exact: when the written words, each read as the voice reads it (``text.normalise_text``:
  "$3.5M" -> five words), give as many words as the voice spoke, each written word takes the
  times of its spoken words;
- otherwise (espeak joined "of the" into one word, or read "2026" as four), the written words
  share the sentence's phonemes in proportion to their letters, each boundary moved to the
  nearest word gap of the voice when one is within 1.5 phonemes. Every time still lies on a
  phoneme of the speech.

A cue (one subtitle) is a run of words of one sentence, at most ``CUE_CHARS`` characters, broken
after punctuation where possible. A recorded take's words (``takes.py``) become cues by
``take_cues``: sentence by sentence for a transcript, at pauses for recognised words.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass

from ..text import normalise_text, transcript_words
from ..voice import SpokenWord

__all__ = ["TimedWord", "Cue", "word_times", "make_cues", "take_cues", "transcript_tokens", "split_sentences",
           "CUE_CHARS", "CUE_PAUSE_S"]

CUE_CHARS = 42
"""Longest subtitle line, in characters (a common broadcast limit)."""
CUE_PAUSE_S = 0.6
"""Recognised words (no sentences known) start a new cue after a pause this long (seconds)."""


@dataclass(frozen=True)
class TimedWord:
    """A written word and when it is spoken (seconds on the show's timeline)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Cue:
    """One subtitle: its words (with times), the speaker, and its span. ``recognised``: the
    words were recognised from a recording (no transcript), so they may be wrong."""

    words: tuple[TimedWord, ...]
    speaker: str
    recognised: bool = False

    @property
    def start(self) -> float:
        return self.words[0].start

    @property
    def end(self) -> float:
        return self.words[-1].end

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after . ! ? followed by a space)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


@functools.lru_cache(maxsize=4096)
def _reading(token: str) -> tuple[int, int]:
    """(spoken words, letters) of one written word as the voice reads it."""
    spoken = normalise_text(token).split()
    words = [w for w in spoken if any(c.isalnum() for c in w)]
    return len(words), sum(c.isalpha() or c.isdigit() for c in " ".join(words))


def _tokens(text: str) -> list[str]:
    """Written words; a token without letters or digits (a dash) joins the word before it."""
    out: list[str] = []
    for tok in text.split():
        if out and not any(c.isalnum() for c in tok):
            out[-1] = f"{out[-1]} {tok}"
        else:
            out.append(tok)
    return out


def word_times(text: str, spoken: list[SpokenWord] | tuple[SpokenWord, ...]) -> list[TimedWord]:
    """The written words of ``text`` (one sentence) with times taken from the voice's ``spoken``
    words of it (see the module docstring). Empty when the voice spoke no word."""
    tokens = _tokens(text)
    if not tokens or not spoken:
        return []
    counts = [_reading(t)[0] for t in tokens]
    if sum(counts) == len(spoken) and all(counts):
        out, k = [], 0
        for tok, n in zip(tokens, counts):
            out.append(TimedWord(tok, spoken[k].start, spoken[k + n - 1].end))
            k += n
        return out
    return _proportional(tokens, spoken)


def _proportional(tokens: list[str], spoken) -> list[TimedWord]:
    phones = [t for w in spoken for t in w.times]
    edges = [0]
    for w in spoken:
        edges.append(edges[-1] + len(w.times))  # phone index where each spoken word starts, and P
    P, W = len(phones), len(tokens)
    weights = [max(_reading(t)[1], 1) for t in tokens]
    total = float(sum(weights))
    bounds = [0]
    acc = 0.0
    for i in range(1, W):
        acc += weights[i - 1]
        x = acc / total * P
        j = bisect.bisect_left(edges, x)
        near = min((e for e in edges[max(j - 1, 0):j + 1]), key=lambda e: abs(e - x))
        b = near if abs(near - x) <= 1.5 else round(x)
        bounds.append(b)
    bounds.append(P)
    # Strictly increasing where there are phones enough, so every word has a time of its own.
    for i in range(1, W):
        bounds[i] = min(max(bounds[i], bounds[i - 1] + 1), P - (W - i)) if P >= W else bounds[i]
    out = []
    for i, tok in enumerate(tokens):
        a, b = bounds[i], max(bounds[i + 1], bounds[i] + 1)
        a, b = min(a, P - 1), min(b, P)
        out.append(TimedWord(tok, phones[a][0], phones[b - 1][1]))
    return out


def make_cues(words: list[TimedWord], speaker: str, max_chars: int = CUE_CHARS) -> list[Cue]:
    """Cues of one sentence's words: each at most ``max_chars`` (a single longer word stands
    alone), broken after a comma, colon or semicolon once a cue is half full."""
    cues: list[Cue] = []
    run: list[TimedWord] = []
    length = 0
    for w in words:
        add = len(w.text) + (1 if run else 0)
        if run and length + add > max_chars:
            cues.append(Cue(tuple(run), speaker))
            run, length, add = [], 0, len(w.text)
        run.append(w)
        length += add
        if length >= max_chars // 2 and w.text[-1:] in ",;:—":
            cues.append(Cue(tuple(run), speaker))
            run, length = [], 0
    if run:
        cues.append(Cue(tuple(run), speaker))
    return cues


def transcript_tokens(text: str) -> list[tuple[str, list[str]]]:
    """A transcript's written words (as subtitles show them; a dash joins the word before it),
    each with the dictionary words it is said as (``text.transcript_words``: "$5" -> five
    dollars; none for a symbol or a word in another script)."""
    return [(tok, transcript_words(tok)) for tok in _tokens(text)]


def take_cues(words: list[TimedWord] | tuple[TimedWord, ...], speaker: str, *, recognised: bool = False,
              max_chars: int = CUE_CHARS) -> list[Cue]:
    """Cues of a recorded take's timed words: a transcript's sentence by sentence (a word ending
    in . ! ? ends one), recognised words (no punctuation) at pauses of ``CUE_PAUSE_S``; each run
    as ``make_cues``."""
    runs: list[list[TimedWord]] = []
    for w in words:
        if runs and runs[-1] and not (recognised and w.start - runs[-1][-1].end >= CUE_PAUSE_S):
            runs[-1].append(w)
        else:
            runs.append([w])
        if not recognised and _SENTENCE_END.search(w.text + " "):
            runs.append([])
    cues = [c for run in runs if run for c in make_cues(run, speaker, max_chars)]
    return [Cue(c.words, speaker, True) for c in cues] if recognised else cues
