"""The text side of speech: checking text to be spoken, and turning a transcript into the words
and pronunciations the aligner needs.

Public API
----------
- ``check_text(text, *, source="--text") -> str``: the text stripped, or InputError with a fix.
- ``MAX_TEXT_CHARS``: the longest text one job speaks.
- ``transcript_words(text) -> list[str]``: lowercase dictionary-style words; numbers, years,
  ordinals and symbols spelt out, accents and punctuation dropped.
- ``acronyms(text) -> set[str]``: the words written in capitals (spelt letter by letter).
- ``guess_pronunciation(word, lookup, spell) -> list[str]``: ARPAbet phones for a word missing
  from the dictionary (letter-to-sound rules).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from .errors import InputError

__all__ = ["MAX_TEXT_CHARS", "acronyms", "check_text", "guess_pronunciation", "transcript_words"]


# ---------------------------------------------------------------------------------------------
# Text to speak

MAX_TEXT_CHARS = 50_000  # about an hour of speech; longer jobs should be split by the caller


def check_text(text: str | None, *, source: str = "--text") -> str:
    """Validate text for synthesis; returns it stripped. Raises InputError with a fix."""
    if text is None or not text.strip():
        raise InputError(f"{source}: the text is empty. Give the sentence(s) to speak, e.g. --text \"Hello there.\"")
    text = text.strip()
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(
            f"{source}: the text is {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,} "
            "(about an hour of speech). Split it into several jobs."
        )
    if not any(ch.isalnum() for ch in text):
        raise InputError(f"{source}: the text has no letters or digits to speak. Give words, e.g. --text \"Hello there.\"")
    return text


# ---------------------------------------------------------------------------------------------
# Transcript normalisation

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth",
            "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals "}
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:st|nd|rd|th|s)?")


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def _cardinal(n: int) -> list[str]:
    if n >= 10**15:  # longer than any spoken number: read the digits
        return [_ONES[int(d)] for d in str(n)]
    words: list[str] = []
    for value, name in _SCALES:
        if n >= value:
            words += _below_thousand(n // value) + [name]
            n %= value
    if n or not words:
        words += _below_thousand(n)
    return words


def _number_words(token: str) -> list[str]:
    """'1984' -> nineteen eighty four, '3.5' -> three point five, '21st' -> twenty first."""
    suffix = re.search(r"(st|nd|rd|th|s)$", token)
    digits = token[: suffix.start()] if suffix else token
    whole, _, frac = digits.replace(",", "").partition(".")
    n = int(whole)
    if len(whole) == 4 and not frac and (1100 <= n <= 1999 or 2010 <= n <= 2099) and n % 100:
        words = _below_thousand(n // 100) + _below_thousand(n % 100)  # a year: "nineteen eighty"
        if n % 100 < 10:
            words[-1:] = ["oh", words[-1]]
    else:
        words = _cardinal(n)
    if frac:
        words += ["point"] + [_ONES[int(d)] for d in frac]
    elif suffix and suffix.group() == "s":  # 1990s
        last = words[-1]
        words[-1] = last[:-1] + "ies" if last.endswith("y") else last + "s"
    elif suffix:
        last = words[-1]
        words[-1] = _ORDINAL.get(last) or (last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return words


def acronyms(text: str) -> set[str]:
    """Lowercased words written in capitals ("NSA", "GPT"), 2-5 letters."""
    return {w.lower() for w in re.findall(r"\b[A-Z]{2,5}\b", text)}


def transcript_words(text: str) -> list[str]:
    """A transcript -> lowercase dictionary-style words: digits spelt out, accents stripped,
    punctuation dropped, inner apostrophes kept (don't, it's)."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    text = _NUMBER.sub(lambda m: " " + " ".join(_number_words(m.group())) + " ", text)
    # Everything that is not a Latin letter or apostrophe separates words; letters of other
    # scripts (CJK, Cyrillic ...) are dropped since we cannot pronounce them.
    tokens = re.split(r"[^a-z']+", text)
    return [t.strip("'") for t in tokens if t.strip("'")]


# ---------------------------------------------------------------------------------------------
# Letter-to-sound fallback for words missing from the dictionary.  Crude, but it only has to get
# the mouth shapes roughly right (vowel openness, lip closures, f/v) so the alignment holds.

_LETTER_NAMES = {
    "a": "EY", "b": "B IY", "c": "S IY", "d": "D IY", "e": "IY", "f": "EH F", "g": "JH IY",
    "h": "EY CH", "i": "AY", "j": "JH EY", "k": "K EY", "l": "EH L", "m": "EH M", "n": "EH N",
    "o": "OW", "p": "P IY", "q": "K Y UW", "r": "AA R", "s": "EH S", "t": "T IY", "u": "Y UW",
    "v": "V IY", "w": "D AH B AH L Y UW", "x": "EH K S", "y": "W AY", "z": "Z IY",
}
# Longest match first; a rule is (letters, phones).
_RULES = sorted({
    "tch": "CH", "sch": "S K", "igh": "AY", "ough": "OW", "augh": "AO", "eigh": "EY",
    "tion": "SH AH N", "sion": "ZH AH N", "th": "TH", "sh": "SH", "ch": "CH", "ph": "F",
    "wh": "W", "ck": "K", "ng": "NG", "qu": "K W", "gh": "", "ee": "IY", "ea": "IY", "oo": "UW",
    "ou": "AW", "ow": "OW", "oi": "OY", "oy": "OY", "ai": "EY", "ay": "EY", "au": "AO",
    "aw": "AO", "ei": "EY", "ey": "EY", "ie": "IY", "ue": "UW", "ew": "UW", "oa": "OW",
    "ar": "AA R", "er": "ER", "ir": "ER", "ur": "ER", "or": "AO R", "x": "K S",
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH",
    "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R",
    "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "y": "IH", "z": "Z",
}.items(), key=lambda rule: -len(rule[0]))


def guess_pronunciation(word: str, lookup: Callable[[str], str | None], spell: bool) -> list[str]:
    """ARPAbet phones for an out-of-vocabulary ``word`` (lowercase a-z and apostrophes).

    lookup: dictionary lookup (word -> "PH ON ES" or None), used for possessives/plurals of
    known words ("obama's").  spell: read it letter by letter (an acronym).
    """
    letters = word.replace("'", "")
    if not letters:
        return []
    if spell:
        return [p for ch in letters for p in _LETTER_NAMES[ch].split()]
    for ending, extra in (("'s", "Z"), ("s'", "Z"), ("s", "Z")):
        stem = word[: -len(ending)]
        if word.endswith(ending) and len(stem) > 1 and not stem.endswith("s") and lookup(stem):
            return lookup(stem).split() + [extra]
    if not re.search(r"[aeiouy]", letters) or len(letters) == 1:  # an acronym: spell it
        return [p for ch in letters for p in _LETTER_NAMES[ch].split()]
    phones: list[str] = []
    i = 0
    while i < len(letters):
        rest = letters[i:]
        if rest == "e" and i > 1:  # silent final e
            break
        if i == 0 and rest[:2] in ("kn", "wr"):  # silent first letter
            i += 1
            continue
        if rest[0] == "c" and rest[1:2] in ("e", "i", "y"):  # soft c
            phones.append("S")
            i += 1
            continue
        if rest == "y" and i > 0:  # final y is a vowel
            phones.append("IY")
            break
        for pattern, arpabet in _RULES:
            if rest.startswith(pattern):
                new = arpabet.split()
                # doubled consonants ("ll", "ss") are one sound
                if not (new and phones and new == phones[-1:] and pattern not in ("ee", "oo")):
                    phones += new
                i += len(pattern)
                break
        else:  # unreachable for a-z, kept so a stray character can never loop forever
            i += 1
    return phones
