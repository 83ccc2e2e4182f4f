"""The text side of speech: checking text to be spoken, making it speakable for the English
voice, and turning a transcript into the words and pronunciations the aligner needs.

Public API
----------
- ``check_text(text, *, source="--text") -> str``: the text stripped, or InputError with a fix
  (empty, too long, not valid UTF-8, no letters, mostly in a script other than Latin).
- ``speech_text(text, *, source="--text") -> str``: what the voice reads: ``check_text``, then
  SSML/XML tags removed, a minority of letters in other scripts left out (each with a warning),
  and ``normalise_text``.
- ``normalise_text(text) -> str``: currency ("$3.5M"), magnitudes ("2.5k"), dates
  ("12/05/2026", "2026-05-12"), times ("3:05 pm") and ordinals ("21st") spelt out in words;
  the one normaliser both the voice and transcripts use.
- ``MAX_TEXT_CHARS``: the longest text one job speaks.
- ``transcript_words(text) -> list[str]``: lowercase dictionary-style words; numbers, years,
  ordinals and symbols spelt out, accents and punctuation dropped.
- ``acronyms(text) -> set[str]``: the words written in capitals (spelt letter by letter).
- ``guess_pronunciation(word, lookup, spell) -> list[str]``: ARPAbet phones for a word missing
  from the dictionary (letter-to-sound rules).
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Callable

from .errors import InputError

__all__ = ["MAX_TEXT_CHARS", "acronyms", "check_text", "guess_pronunciation", "normalise_text", "speech_text",
           "transcript_words"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Text to speak

MAX_TEXT_CHARS = 50_000  # about an hour of speech; longer jobs should be split by the caller


FOREIGN_SHARE_MAX = 0.5
"""Text with more than this share of its letters in scripts other than Latin is refused; a smaller
share is left out of the speech with a warning (the voice is English: it would spell each such
letter out, "Chinese letter ...")."""


def check_text(text: str | None, *, source: str = "--text") -> str:
    """Validate text for synthesis; returns it stripped. Raises InputError with a fix."""
    if text is None or not text.strip():
        raise InputError(f"{source}: the text is empty. Give the sentence(s) to speak, e.g. --text \"Hello there.\"")
    text = text.strip()
    check_utf8(text, source=source)
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(
            f"{source}: the text is {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,} "
            "(about an hour of speech). Split it into several jobs."
        )
    if not any(ch.isalnum() for ch in text):
        raise InputError(f"{source}: the text has no letters or digits to speak. Give words, e.g. --text \"Hello there.\"")
    scripts = _letter_scripts(_strip_ssml(text)[0])
    letters = sum(scripts.values())
    foreign = letters - scripts.get("Latin", 0)
    if foreign > FOREIGN_SHARE_MAX * letters:
        main = max((n, name) for name, n in scripts.items() if name != "Latin")[1]
        raise InputError(
            f"{source}: the text is in {main} script ({foreign} of its {letters} letters are not Latin), but the "
            "voice speaks English only and would spell it out letter by letter. Give English text, or record "
            "the speech and use --audio FILE."
        )
    return text


def check_utf8(text: str, *, source: str) -> None:
    """InputError if ``text`` cannot be written as UTF-8: bytes of another encoding that Python
    kept as surrogate escapes (command-line arguments), or unpaired surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        what = (f"the byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF
                else f"an unpaired surrogate U+{code:04X}")
        raise InputError(
            f"{source}: the text is not valid UTF-8 ({what} at character {exc.start + 1}). Give it as UTF-8 "
            "text: check the encoding of the terminal, file or script it comes from."
        ) from None


def speech_text(text: str | None, *, source: str = "--text") -> str:
    """The text as the voice should read it: ``check_text``, then SSML/XML tags removed (``<break>``
    becomes a pause, ``<sub alias="...">`` its alias), letters of scripts other than Latin left out,
    and currency, magnitudes, dates, times and ordinals in words (``normalise_text``). What is
    removed is logged as a warning naming ``source``."""
    text = check_text(text, source=source)
    text, tags = _strip_ssml(text)
    if tags:
        log.warning("%s: SSML/XML tags removed (%s): the voice reads plain text", source, ", ".join(tags))
    text, dropped = _drop_foreign(text)
    if dropped:
        scripts = _letter_scripts("".join(dropped))
        sample = " ".join(dropped[:3]) + (" ..." if len(dropped) > 3 else "")
        log.warning("%s: left out %d letter(s) in %s script (%s): the voice speaks English only", source,
                    sum(scripts.values()), " and ".join(sorted(scripts)), sample)
    text = " ".join(normalise_text(text).split())
    if not any(ch.isalnum() for ch in text):
        raise InputError(f"{source}: nothing is left to speak once the markup and non-English letters are removed. "
                         "Give English words, e.g. --text \"Hello there.\"")
    return text


# ---------------------------------------------------------------------------------------------
# Scripts and markup

_KANA = ("HIRAGANA", "KATAKANA")
_SCRIPT_NAMES = {"CJK": "Chinese (Han)", "HANGUL": "Korean (Hangul)", "HIRAGANA": "Japanese (kana)",
                 "KATAKANA": "Japanese (kana)", "KATAKANA-HIRAGANA": "Japanese (kana)"}
_NOT_A_SCRIPT = {"MODIFIER", "MICRO", "FEMININE", "MASCULINE", "SMALL", "LETTERLIKE"}


def _script(ch: str) -> str | None:
    """The script of a letter ("Latin", "Cyrillic", "Chinese (Han)" ...), None for anything else
    (digits, punctuation, symbols, marks, letters of no script such as the micro sign)."""
    if not unicodedata.category(ch).startswith("L"):
        return None
    if ch.isascii():
        return "Latin"
    words = unicodedata.name(ch, "").split()
    if not words or words[0] in _NOT_A_SCRIPT:
        return None
    if "LATIN" in words:
        return "Latin"
    return _SCRIPT_NAMES.get(words[0], words[0].title())


def _letter_scripts(text: str) -> Counter:
    """Letters per script. Han characters next to kana are counted as Japanese."""
    counts = Counter(s for s in map(_script, text) if s is not None)
    if counts.get("Chinese (Han)") and counts.get("Japanese (kana)"):
        counts["Japanese (kana)"] += counts.pop("Chinese (Han)")
    return counts


def _drop_foreign(text: str) -> tuple[str, list[str]]:
    """(text with every run of non-Latin letters, and the marks on them, replaced by a space,
    the runs removed)."""
    out: list[str] = []
    dropped: list[str] = []
    run: list[str] = []
    for ch in text:
        script = _script(ch)
        if (script is not None and script != "Latin") or (run and unicodedata.category(ch).startswith("M")):
            run.append(ch)
            continue
        if run:
            dropped.append("".join(run))
            out.append(" ")
            run = []
        out.append(ch)
    if run:
        dropped.append("".join(run))
    return "".join(out), dropped


_TAG = re.compile(r"</?([A-Za-z][\w:.-]*)(?:\s[^<>]*)?/?>")
_SUB_ALIAS = re.compile(r"<sub\b[^<>]*?\balias\s*=\s*([\"'])(.*?)\1[^<>]*>.*?</sub\s*>", re.S | re.I)
_BREAK = re.compile(r"<break\b[^<>]*>", re.I)
_BLOCK_END = re.compile(r"([^.!?;:,\s])\s*</(?:p|s|paragraph|sentence)\s*>", re.I)


def _strip_ssml(text: str) -> tuple[str, list[str]]:
    """(text without SSML/XML tags, the tag names found). Only text with tags is touched: then
    entities (&amp;) are decoded too, <sub alias> reads its alias, <break> and the end of a <p> or
    <s> become pauses."""
    names = sorted({m.group(1).lower() for m in _TAG.finditer(text)})
    if not names:
        return text, []
    text = _SUB_ALIAS.sub(lambda m: m.group(2), text)
    text = _BREAK.sub(", ", text)
    text = _BLOCK_END.sub(r"\1. ", text)
    text = html.unescape(_TAG.sub(" ", text))
    return text, [f"<{n}>" for n in names]


# ---------------------------------------------------------------------------------------------
# Numbers, currency, dates and times in words (the voice and transcripts)

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


def _number_words(token: str, year: bool = True) -> list[str]:
    """'1984' -> nineteen eighty four (``year``: four digits read as a year), '3.5' -> three
    point five, '21st' -> twenty first."""
    suffix = re.search(r"(st|nd|rd|th|s)$", token)
    digits = token[: suffix.start()] if suffix else token
    whole, _, frac = digits.replace(",", "").partition(".")
    n = int(whole or "0")
    if year and len(whole) == 4 and not frac and (1100 <= n <= 1999 or 2010 <= n <= 2099) and n % 100:
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


def _say(token: str, year: bool = False) -> str:
    return " ".join(_number_words(token, year))


_MONTHS = ("January February March April May June July August September October November "
           "December").split()
# (unit, units, hundredth, hundredths) per currency symbol
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", None, None),
             "₹": ("rupee", "rupees", "paisa", "paise")}
_MAGNITUDES = {"k": "thousand", "K": "thousand", "thousand": "thousand", "m": "million", "M": "million",
               "mn": "million", "million": "million", "b": "billion", "B": "billion", "bn": "billion",
               "billion": "billion", "t": "trillion", "T": "trillion", "tn": "trillion", "trillion": "trillion"}
_AMOUNT = r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?"
_MONEY = re.compile(r"([$€£¥₹])\s?" + _AMOUNT
                    + r"(?:\s?(thousand|million|billion|trillion)\b|(k|K|m|M|mn|b|B|bn|t|T|tn)\b)?")
_MAGNITUDE = re.compile(r"\b" + _AMOUNT + r"(k|M|B|bn|mn|tn)\b")
_DATE_MDY = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b")
_DATE_ISO = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_AM_PM = r"([AaPp])\.?\s?[Mm]\b(?:\.(?=\s*[a-z,;]))?"  # a final "a.m." keeps its full stop
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s?" + _AM_PM + ")?")
_CLOCK = re.compile(r"\b(\d{1,2})\s?" + _AM_PM)
_ORDINAL_NUMBER = re.compile(r"\b(\d+)(st|nd|rd|th)\b")


def _money(m: re.Match) -> str:
    unit, units, sub, subs = _CURRENCY[m.group(1)]
    whole, frac, word, short = m.group(2), m.group(3), m.group(4), m.group(5)
    amount = whole + (f".{frac}" if frac else "")
    magnitude = _MAGNITUDES.get(word or short or "")
    if magnitude:  # "$3.5M" -> three point five million dollars
        return f"{_say(amount)} {magnitude} {units}"
    n = int(whole.replace(",", ""))
    if frac and len(frac) == 2 and sub:  # "$3.50" -> three dollars and fifty cents
        cents = int(frac)
        cents_words = f"{_say(str(cents))} {sub if cents == 1 else subs}"
        if n == 0:
            return cents_words
        return f"{_say(whole)} {unit if n == 1 else units}" + (f" and {cents_words}" if cents else "")
    return f"{_say(amount)} {unit if n == 1 and not frac else units}"


def _date(month: int, day: int, year: str) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{_MONTHS[month - 1]} {_say(f'{day}th')}, {_say(year, year=True)}"


def _date_mdy(m: re.Match) -> str:
    """US order (the voice is American English): month/day/year, unless the first number
    cannot be a month (13/05/2026 is the 13th of May)."""
    a, b = int(m.group(1)), int(m.group(2))
    month, day = (b, a) if a > 12 >= b else (a, b)
    return _date(month, day, m.group(3)) or m.group()


def _date_iso(m: re.Match) -> str:
    return _date(int(m.group(2)), int(m.group(3)), m.group(1)) or m.group()


def _time(m: re.Match) -> str:
    h, mins, secs, half = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
    if h > 23 or mins > 59 or (secs is not None and int(secs) > 59):
        return m.group()
    words = [_say(str(h))]
    if mins == 0:
        words.append("" if half else "o'clock" if h <= 12 else "hundred")
    else:
        words.append(("oh " if mins < 10 else "") + _say(str(mins)))
    if secs is not None and int(secs):
        words.append(f"and {_say(str(int(secs)))} seconds")
    if half:
        words.append(f"{half.upper()} M")
    return " ".join(w for w in words if w)


def _clock(m: re.Match) -> str:
    h = int(m.group(1))
    return f"{_say(str(h))} {m.group(2).upper()} M" if 1 <= h <= 12 else m.group()


def normalise_text(text: str) -> str:
    """Currency ("$3.5M" -> three point five million dollars, "£3.50" -> three pounds and fifty
    pence), magnitudes ("2.5k" -> two point five thousand), dates (US order: "12/05/2026" ->
    December fifth, twenty twenty six; ISO "2026-05-12"), times ("3:05 pm" -> three oh five P M,
    "9am") and ordinals ("21st") in words. Plain numbers are left to the reader (the voice reads
    them well; transcripts spell them out)."""
    text = _DATE_ISO.sub(_date_iso, text)
    text = _DATE_MDY.sub(_date_mdy, text)
    text = _TIME.sub(_time, text)
    text = _CLOCK.sub(_clock, text)
    text = _MONEY.sub(_money, text)
    text = _MAGNITUDE.sub(lambda m: f"{_say(m.group(1) + (f'.{m.group(2)}' if m.group(2) else ''))} "
                                    f"{_MAGNITUDES[m.group(3)]}", text)
    return _ORDINAL_NUMBER.sub(lambda m: _say(m.group(), year=False), text)


def transcript_words(text: str) -> list[str]:
    """A transcript -> lowercase dictionary-style words: currency, dates, times and ordinals as
    ``normalise_text`` says them, other digits spelt out, accents stripped, punctuation dropped,
    inner apostrophes kept (don't, it's)."""
    text = normalise_text(text)
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
