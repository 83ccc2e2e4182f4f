"""Word times of a recorded take (``[audio: FILE]``), for its subtitles.

    with a transcript  ``[audio: take.wav | Welcome back.]``: the transcript's words are
                       force-aligned to the take with pocketsphinx (the same acoustic model and
                       dictionary as ``align.py``; unknown words get a guessed pronunciation).
                       Takes up to ``WHOLE_S`` are aligned in one pass; longer ones are
                       recognised piece by piece and the transcript's words placed on the
                       recognised words they match (the rest in between, by letters). A
                       transcript that does not fit the take (another text, another language)
                       is spread over it by letters, with a warning.
    without one        the words are recognised with pocketsphinx's English word model (bundled
                       in its wheel) piece by piece and marked ``recognised``. A take where few
                       words are recognised with confidence (another language, music, noise) or
                       none at all (silence) gets no subtitles, with a warning: never guessed words.

Times are seconds from the take's start. Pieces are the take's own (``segments.audio_segments``:
at most ``segment_max_s``, cut at pauses), so memory stays flat whatever the take's length.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..options import AlignOptions
from ..types import ANALYSIS_RATE
from .words import TimedWord, transcript_tokens

log = logging.getLogger(__name__)

__all__ = ["TakeWords", "Transcriber", "WHOLE_S", "CONFIDENT_P", "MIN_CONFIDENT"]

WHOLE_S = 60.0
"""Takes up to this long are force-aligned in one pass (pocketsphinx handles a minute well)."""
CONFIDENT_P = 0.8
"""A recognised word is confident when its posterior probability is at least this."""
MIN_CONFIDENT = 0.2
"""Recognised words are used only when at least this fraction of them is confident. Measured on
the tests' speech clips (whole files): English 0.25 (JFK, an old noisy recording), 0.33, 0.40,
0.68; German, French, Japanese and Chinese speech 0.12, 0.09, 0.15, 0.03."""
_FRAME_S = 0.01  # pocketsphinx frames


@dataclass(frozen=True)
class TakeWords:
    """A take's words with times (seconds from its start). ``how``: "aligned" (the transcript,
    force-aligned), "matched" (the transcript placed on recognised words: long takes), "spread"
    (the transcript spread by letters: it did not fit), "recognised" (no transcript: the words
    heard), or "none" (nothing usable; ``note`` says why)."""

    words: tuple[TimedWord, ...]
    how: str
    note: str = ""

    @property
    def recognised(self) -> bool:
        return self.how == "recognised"


class Transcriber:
    """pocketsphinx decoders for take subtitles, loaded on first use (~0.5 s, ~60 MB). One per
    thread. ``words(path, transcript)`` -> TakeWords."""

    def __init__(self, fps: float, segment_max_s: float, options: AlignOptions = AlignOptions()) -> None:
        self.fps, self.segment_max_s, self.options = fps, segment_max_s, options
        self._aligner = None
        self._recogniser = None

    # -- decoders --------------------------------------------------------------------------

    def _models(self) -> tuple[str, str, str]:
        import pocketsphinx

        from ..errors import ModelError

        base = os.path.join(self.options.model_dir or pocketsphinx.get_model_path(), "en-us")
        paths = (os.path.join(base, "en-us"), os.path.join(base, "cmudict-en-us.dict"),
                 os.path.join(base, "en-us.lm.bin"))
        for p in paths:
            if not os.path.exists(p):
                raise ModelError(f"{p}: pocketsphinx model file missing; reinstall the pocketsphinx wheel "
                                 "(pip install --force-reinstall pocketsphinx)")
        return paths

    def _decoder(self, kind: str):
        import pocketsphinx

        from ..errors import ModelError

        hmm, dictionary, lm = self._models()
        o = self.options
        try:
            if kind == "align":
                if self._aligner is None:
                    self._aligner = pocketsphinx.Decoder(hmm=hmm, lm=None, dict=dictionary,
                                                         loglevel=o.sphinx_loglevel)
                return self._aligner
            if self._recogniser is None:
                from ..align import word_search

                # Uncapped search (caps=False): with AlignOptions' word caps (5000 HMMs, 10 words
                # per frame) the posteriors rise on foreign speech and MIN_CONFIDENT no longer
                # separates it (German 0.12 -> 0.20, French 0.04 -> 0.22; English 0.26-0.65).
                self._recogniser = pocketsphinx.Decoder(hmm=hmm, lm=lm, dict=dictionary,
                                                        loglevel=o.sphinx_loglevel, **word_search(o, caps=False))
            return self._recogniser
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{hmm}: cannot load the pocketsphinx models ({exc})") from exc

    # -- the take --------------------------------------------------------------------------

    def words(self, path: str | Path, transcript: str | None) -> TakeWords:
        """The take's words (see the module docstring)."""
        from ..audio import open_audio

        duration = open_audio(path).duration or 0.0
        tokens = transcript_tokens(transcript) if transcript else []
        if tokens and duration <= WHOLE_S:
            samples = np.concatenate([s.analysis for s in self._pieces(path)] or [np.zeros(0, np.float32)])
            times = self._align(samples, [t[1] for t in tokens])
            if times is not None:
                return TakeWords(_place(tokens, times), "aligned")
            return _spread(tokens, duration, "the transcript does not fit the recording (another text or language?)")
        heard, confident = self._recognise(path)
        if tokens:
            placed = _match(tokens, heard, duration)
            if placed is not None:
                return TakeWords(placed, "matched")
            return _spread(tokens, duration, "too few of the transcript's words were recognised in the recording")
        if not heard:
            return TakeWords((), "none", "no speech recognised in it")
        share = confident / len(heard)
        if share < MIN_CONFIDENT:
            return TakeWords((), "none", f"it does not sound like English speech (only {100 * share:.0f}% of the "
                             "recognised words are confident)")
        return TakeWords(tuple(TimedWord(w, a, b) for w, a, b in heard), "recognised")

    def _pieces(self, path):
        from ..segments import audio_segments

        return audio_segments(path, self.fps, self.segment_max_s)

    def _align(self, samples: np.ndarray, words: list[list[str]]) -> list[tuple[float, float] | None] | None:
        """Forced alignment of ``words`` (per written token, its dictionary words) to the samples
        (16 kHz): per token its (start, end), None for a token without words; None when the
        transcript does not fit."""
        from ..text import guess_pronunciation

        dec = self._decoder("align")
        flat: list[tuple[int, str]] = []
        for i, ws in enumerate(words):
            for w in ws:
                if dec.lookup_word(w) is None:
                    phones = guess_pronunciation(w, dec.lookup_word, len(w) <= 4 and w.isalpha())
                    if not phones:
                        continue
                    try:
                        dec.add_word(w, " ".join(phones), True)
                    except RuntimeError:
                        continue
                flat.append((i, w))
        if not flat or samples.size < ANALYSIS_RATE // 10:
            return None
        try:
            dec.set_align_text(" ".join(w for _, w in flat))
            _decode(dec, samples)
            if dec.hyp() is None:
                return None
            segs = [(s.word, s.start_frame, s.end_frame + 1) for s in dec.seg()]
        except RuntimeError as exc:
            log.debug("take alignment failed (%s)", exc)
            return None
        said = [(a, b) for w, a, b in segs if _is_word(w)]
        if len(said) != len(flat) or _unaligned(samples, said) > self.options.max_unaligned_speech:
            return None
        out: list[tuple[float, float] | None] = [None] * len(words)
        for (i, _), (a, b) in zip(flat, said):
            t = (a * _FRAME_S, b * _FRAME_S)
            out[i] = t if out[i] is None else (out[i][0], t[1])
        return out

    def _recognise(self, path) -> tuple[list[tuple[str, float, float]], int]:
        """Words heard in the take, piece by piece: [(word, start, end)] and how many of them are
        confident."""
        from ..align import frame_db, quiet_frames

        dec = self._decoder("recognise")
        heard: list[tuple[str, float, float]] = []
        confident = 0
        o = self.options
        for piece in self._pieces(path):
            if piece.analysis.size < ANALYSIS_RATE // 10:
                continue
            quiet = quiet_frames(frame_db(piece.analysis), o.silence_dbfs, max(1, round(o.min_silence_s / _FRAME_S)))
            if quiet.mean() > 0.95:
                continue  # (digital) silence: the word model would hear words in it
            try:
                _decode(dec, piece.analysis)
                if dec.hyp() is None:
                    continue
                segs = list(dec.seg())
            except RuntimeError as exc:
                log.debug("take recognition failed (%s)", exc)
                continue
            for s in segs:
                if _is_word(s.word) and quiet[s.start_frame:s.end_frame + 1].mean() < 0.5:
                    heard.append((s.word.split("(")[0], piece.start + s.start_frame * _FRAME_S,
                                  piece.start + (s.end_frame + 1) * _FRAME_S))
                    confident += s.prob >= CONFIDENT_P
        return heard, confident


def _decode(dec, samples: np.ndarray) -> None:
    """One utterance of float samples through ``dec`` (align.decode_utterance)."""
    from ..align import decode_utterance, to_pcm16

    decode_utterance(dec, to_pcm16(samples))


def _is_word(w: str) -> bool:
    return not (w.startswith(("<", "[", "+")) or w in ("<sil>", "<s>", "</s>"))


def _unaligned(samples: np.ndarray, said: list[tuple[int, int]]) -> float:
    """Fraction of the take's clearly loud 10 ms frames that fall outside every aligned word (a
    transcript that fits leaves few): align.unaligned_speech on the take's levels."""
    from ..align import frame_db, unaligned_speech

    level = frame_db(samples)
    judged = level > -100  # digital silence says nothing
    if judged.sum() < 10:
        return 0.0
    return unaligned_speech([("WORD", a, b) for a, b in said], level[judged], judged)


def _place(tokens: list[tuple[str, list[str]]], times: list[tuple[float, float] | None]) -> tuple[TimedWord, ...]:
    """Written tokens with their aligned times; a token without its own time (no dictionary
    word: a symbol, another script) shares the next timed token's start (or the last's end)."""
    out: list[TimedWord] = []
    for i, (text, _) in enumerate(tokens):
        t = times[i]
        if t is None:
            nxt = next((times[j] for j in range(i + 1, len(times)) if times[j] is not None), None)
            prev = out[-1].end if out else 0.0
            t = (nxt[0], nxt[0]) if nxt is not None else (prev, prev)
        out.append(TimedWord(text, t[0], t[1]))
    return tuple(out)


def _spread(tokens: list[tuple[str, list[str]]], duration: float, why: str) -> TakeWords:
    """The transcript over the whole take by letters (no word times known)."""
    weights = [max(sum(c.isalnum() for c in t), 1) for t, _ in tokens]
    total, acc, words = float(sum(weights)), 0.0, []
    for (tok, _), w in zip(tokens, weights):
        a = duration * acc / total
        acc += w
        words.append(TimedWord(tok, a, duration * acc / total))
    return TakeWords(tuple(words), "spread", why)


def _match(tokens: list[tuple[str, list[str]]], heard: list[tuple[str, float, float]],
           duration: float) -> tuple[TimedWord, ...] | None:
    """The transcript placed on the recognised words it matches (difflib over dictionary words);
    the tokens between two matches share the time between them by letters. None when under a
    third of the transcript's words were matched."""
    flat = [(i, w) for i, (_, ws) in enumerate(tokens) for w in ws]
    if not flat:
        return None
    sm = difflib.SequenceMatcher(None, [w for _, w in flat], [w for w, _, _ in heard], autojunk=False)
    anchor: dict[int, tuple[float, float]] = {}
    matched = 0
    for a, b, n in sm.get_matching_blocks():
        for k in range(n):
            i = flat[a + k][0]
            _, s, e = heard[b + k]
            anchor[i] = (min(anchor[i][0], s), max(anchor[i][1], e)) if i in anchor else (s, e)
            matched += 1
    if matched < len(flat) / 3:
        return None
    out: list[TimedWord] = []
    i = 0
    while i < len(tokens):
        if i in anchor:
            out.append(TimedWord(tokens[i][0], *anchor[i]))
            i += 1
            continue
        j = i
        while j < len(tokens) and j not in anchor:
            j += 1
        lo = out[-1].end if out else 0.0
        hi = anchor[j][0] if j < len(tokens) else duration
        hi = max(hi, lo)
        weights = [max(sum(c.isalnum() for c in tokens[k][0]), 1) for k in range(i, j)]
        total, acc = float(sum(weights)), 0.0
        for k, w in zip(range(i, j), weights):
            a = lo + (hi - lo) * acc / total
            acc += w
            out.append(TimedWord(tokens[k][0], a, lo + (hi - lo) * acc / total))
        i = j
    return tuple(out)
