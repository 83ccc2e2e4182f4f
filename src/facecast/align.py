"""Phone timelines for speech audio, with pocketsphinx.

Two ways to get the phones of a segment, both behind :meth:`Aligner.align`:

* with a transcript: forced alignment of its words (dictionary pronunciations, a letter-to-sound
  fallback for unknown words) -- exact phones, good boundaries;
* without one (or when the transcript does not fit the audio): free phone recognition with the
  English phone n-gram ("allphone" search) -- about 55 % of frames get the right phone and about
  70 % the right mouth-shape class, which is what lip sync needs.

and a second, independent timeline without a transcript, :meth:`Aligner.align_words`: English
words recognised with the word n-gram, their phones aligned along the recognised word path (75-88 %
of frames right on English speech, but whole words wrong where recognition errs).  File jobs use
both (``Speech.alt_phones``; the mouth is their mean).

Everything runs on the models inside the pocketsphinx wheel; nothing is downloaded.  The two
paths of :meth:`Aligner.align` cost well under 0.1 s of one CPU core per second of audio (numbers
in the docstring of :class:`AlignOptions`); :meth:`Aligner.align_words` 0.15-0.23 s.

Segments are meant to be short (the caller cuts at pauses, up to ~15 s); up to a minute works
(alignment time and memory grow linearly); longer audio is not refused but should be cut first.

The transcript's words (numbers spelt out, acronyms) and the pronunciations guessed for words
missing from the dictionary come from :mod:`facecast.text`.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pocketsphinx

from .errors import ModelError
from .options import AlignOptions
from .text import acronyms, guess_pronunciation, transcript_words
from .types import AudioChunk, PhoneSpan

__all__ = ["AlignOptions", "Aligner", "SAMPLE_RATE", "decode_utterance", "frame_db", "to_pcm16", "unaligned_speech",
           "word_search"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""The only input rate: the acoustic model was trained on 16 kHz audio."""

_FRAME_RATE = 100  # pocketsphinx frames per second (frame i starts at i / 100 s)
_HOP = SAMPLE_RATE // _FRAME_RATE  # samples per frame

# The en-us model's phone set (without SIL); anything else coming out of the decoder (SIL, the
# noise phones +NSN+ / +SPN+, filler words) is silence for our purposes.
_PHONES = frozenset(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
    "UH UW V W Y Z ZH".split()
)


class Aligner:
    """Loaded pocketsphinx decoders; build once, then call :meth:`align` per segment.

    Holds two decoders (phone recogniser and forced aligner; ~0.15 s to load, ~40 MB).  Not
    thread-safe: use one Aligner per thread.  Segments are independent of each other: the
    result for a segment does not depend on what was aligned before.

    Raises ModelError when the model files are missing or unreadable.
    """

    def __init__(self, options: AlignOptions | None = None) -> None:
        self.options = options or AlignOptions()
        model_dir = self.options.model_dir or pocketsphinx.get_model_path()
        self._model_dir = model_dir
        self._words_decoder = None  # loaded by the first align_words call (27 MB, ~0.5 s)
        self._hmm = hmm = os.path.join(model_dir, "en-us", "en-us")
        self._dict = dictionary = os.path.join(model_dir, "en-us", "cmudict-en-us.dict")
        phone_lm = os.path.join(model_dir, "en-us", "en-us-phone.lm.bin")
        for path in (hmm, dictionary, phone_lm):
            if not os.path.exists(path):
                raise ModelError(
                    f"{path}: pocketsphinx model file missing; reinstall the pocketsphinx wheel "
                    "(pip install --force-reinstall pocketsphinx)"
                )
        loglevel = self.options.sphinx_loglevel
        try:
            # lm=None everywhere: the 27 MB word n-gram is never needed and would cost a second
            # to load.  The recogniser needs no dictionary either.
            self._recognizer = pocketsphinx.Decoder(
                hmm=hmm, lm=None, dict=None, allphone=phone_lm, allphone_ci=True,
                lw=self.options.lw, beam=self.options.beam, pbeam=self.options.pbeam,
                ds=self.options.downsample, bestpath=False, loglevel=loglevel,
            )
            # The aligner keeps pocketsphinx's wide default beams: its search space is one
            # sentence, so pruning saves little and risks losing the only valid path.
            self._aligner = pocketsphinx.Decoder(
                hmm=hmm, lm=None, dict=dictionary, loglevel=loglevel,
            )
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{model_dir}: cannot load the pocketsphinx models ({exc})") from exc

    # ------------------------------------------------------------------------------------------

    def align(self, audio: AudioChunk, transcript: str | None = None) -> list[PhoneSpan]:
        """The phone timeline of ``audio``.

        audio: 16 kHz speech, samples float32 [channels, n] (channels are averaged), ideally
            <= 15 s, at most about a minute.
        transcript: the words spoken, if known (any punctuation, digits, case).  Words missing
            from the dictionary are spelt with letter-to-sound rules.  If the transcript cannot
            be aligned or does not fit the audio, phone recognition is used and a warning logged.

        Returns PhoneSpans in absolute seconds (``audio.start`` + offset), sorted, contiguous,
        covering [audio.start, audio.end) exactly; consecutive silence is merged into one
        ``SIL`` span.  Frame resolution is 10 ms.  Empty audio gives [].
        Non-English speech, music and noise never raise: they give whatever English phones fit,
        or silence.
        """
        prepared = self._prepare(audio, "align")
        if prepared is None:
            return []
        samples, level, quiet = prepared
        spans: list[tuple[str, int, int]] = []
        if not quiet.all():
            pcm = to_pcm16(samples)
            words = transcript_words(transcript) if transcript else []
            if words:
                spans = self._force_align(pcm, words, acronyms(transcript), level[~quiet], ~quiet)
            elif transcript and transcript.strip():
                log.warning("transcript %r has no alignable words; using phone recognition",
                            _clip(transcript))
            if not spans:
                spans = self._recognize(pcm)
        return timeline(spans, quiet, len(quiet), audio.start, audio.end)

    def _prepare(self, audio: AudioChunk, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Checked mono samples [n], their per-frame level (dBFS) and quiet mask [frames] for
        :meth:`align` / :meth:`align_words`; None for empty audio."""
        if audio.sample_rate != SAMPLE_RATE:
            raise ValueError(
                f"Aligner.{method} needs {SAMPLE_RATE} Hz audio, got {audio.sample_rate} Hz; resample first"
            )
        samples = audio.mono() if audio.channels != 1 else audio.samples[0]
        if samples.shape[0] == 0:
            return None
        level = frame_db(samples)
        quiet = quiet_frames(level, self.options.silence_dbfs,
                             max(1, round(self.options.min_silence_s * _FRAME_RATE)))
        return samples, level, quiet

    def align_words(self, audio: AudioChunk) -> list[PhoneSpan]:
        """A second phone timeline of ``audio`` without a transcript: English words recognised
        with the word n-gram (``en-us.lm.bin``), then force-aligned like a transcript.

        Where the speech is English, its phones agree with a true transcript's alignment far more
        often than free phone recognition does (frames with the right phone on jfk / radio /
        lecture: 0.76 / 0.88 / 0.86 against 0.43 / 0.60 / 0.48), but a misrecognised word puts a
        whole wrong word there.  The pipeline therefore uses it next to :meth:`align`, not
        instead of it (``Speech.alt_phones``).  Costs 0.15-0.23 s of one core per second of
        audio (3-4x :meth:`align`; both passes included; 0.19-0.46 s before the word search's
        per-frame caps, ``AlignOptions.word_max_hmms``) plus ~0.5 s to load the word model on
        the first call, so live streams do not use it.

        Same input and output conventions as :meth:`align`; [] when no word is recognised or the
        words do not align (non-speech, very short audio).  The first call loads the word model.
        """
        prepared = self._prepare(audio, "align_words")
        if prepared is None or prepared[2].all():
            return []
        samples, _, quiet = prepared
        pcm = to_pcm16(samples)
        dec = self._word_decoder()
        try:
            # Pass 1: the word search (the last call left the decoder in alignment mode).
            dec.activate_search()
            decode_utterance(dec, pcm)
            hyp = dec.hyp()
            if hyp is None or not transcript_words(hyp.hypstr):
                return []
            # Pass 2: phone boundaries inside the recognised word path (its own word times, so
            # no second search that could fail to reach the end of the audio).
            dec.set_alignment()
            decode_utterance(dec, pcm)
            alignment = dec.get_alignment()
            if alignment is None:
                return []
            spans = [(phone(p.name), p.start, p.start + p.duration) for p in alignment.phones()]
        except RuntimeError as exc:
            log.debug("word recognition failed (%s)", exc)
            return []
        return timeline(spans, quiet, len(quiet), audio.start, audio.end)

    def _word_decoder(self):
        if self._words_decoder is None:
            lm = os.path.join(self._model_dir, "en-us", "en-us.lm.bin")
            if not os.path.exists(lm):
                raise ModelError(f"{lm}: pocketsphinx model file missing; reinstall the pocketsphinx wheel "
                                 "(pip install --force-reinstall pocketsphinx)")
            o = self.options
            try:
                self._words_decoder = pocketsphinx.Decoder(
                    hmm=self._hmm, lm=lm, dict=self._dict, loglevel=o.sphinx_loglevel, **word_search(o),
                )
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"{self._model_dir}: cannot load the pocketsphinx word model ({exc})") from exc
        return self._words_decoder

    # ------------------------------------------------------------------------------------------

    def _recognize(self, pcm: bytes) -> list[tuple[str, int, int]]:
        """Free phone recognition: [(phone or 'SIL', first frame, end frame exclusive)]."""
        dec = self._recognizer
        try:
            # Fresh feature extraction per segment (0.5 ms): pocketsphinx carries normalisation
            # state from one utterance to the next (it is built for live streams), so without
            # this a segment's phones depend on what was decoded before it.
            decode_utterance(dec, pcm)
        except RuntimeError as exc:  # e.g. audio too short to make one feature frame
            log.warning("phone recognition failed (%s); returning silence", exc)
            return []
        if dec.hyp() is None:  # nothing decoded (very short audio); seg() would fail
            return []
        return [(phone(s.word), s.start_frame, s.end_frame + 1) for s in dec.seg()]

    def _force_align(self, pcm: bytes, words: list[str], acronyms: set[str], level: np.ndarray,
                     judged: np.ndarray) -> list[tuple[str, int, int]]:
        """Forced alignment of ``words``; [] when it fails or does not fit the audio (logged as a
        warning).

        acronyms: words written in capitals, spelt letter by letter if not in the dictionary.
        level: dBFS of the ``judged`` frames (bool mask over all frames) -- the ones that are
        not digital silence -- for the sanity check.
        """
        dec = self._aligner
        words = [w for w in words if self._ensure_word(w, w in acronyms)]
        if not words:
            return []
        text = " ".join(words)
        try:
            # Pass 1 finds the word sequence (with optional silences/fillers) through the
            # transcript grammar; pass 2 re-runs the audio against that fixed sequence to get
            # phone (and state) boundaries.  pocketsphinx has no single-pass phone alignment.
            dec.set_align_text(text)
            decode_utterance(dec, pcm)
            if dec.hyp() is None:
                raise RuntimeError("no path through the transcript reaches the end of the audio")
            dec.set_alignment()
            decode_utterance(dec, pcm)
            alignment = dec.get_alignment()
            if alignment is None:
                raise RuntimeError("decoder returned no alignment")
            spans = [(phone(p.name), p.start, p.start + p.duration) for p in alignment.phones()]
        except RuntimeError as exc:
            log.warning("forced alignment of %r failed (%s); using phone recognition", _clip(text), exc)
            return []
        unaligned = unaligned_speech(spans, level, judged)
        if unaligned > self.options.max_unaligned_speech:
            log.warning("transcript %r does not fit the audio (%.0f%% of the loud frames aligned "
                        "to silence); using phone recognition", _clip(text), 100 * unaligned)
            return []
        return spans

    def _ensure_word(self, word: str, spell: bool) -> bool:
        """Make sure ``word`` is in the aligner's dictionary (adding a guessed pronunciation);
        False if it cannot be pronounced at all."""
        dec = self._aligner
        if dec.lookup_word(word) is not None:
            return True
        phones = guess_pronunciation(word, dec.lookup_word, spell)
        if not phones:
            return False
        try:
            # The guess stays in this Aligner's dictionary (a recurring name is guessed once);
            # it is deterministic, so later segments get the same result as a fresh Aligner.
            dec.add_word(word, " ".join(phones), True)
        except RuntimeError as exc:
            log.warning("cannot add %r to the dictionary (%s); dropping it", word, exc)
            return False
        return True


# ---------------------------------------------------------------------------------------------
# Frames and spans


def word_search(options: AlignOptions, caps: bool = True) -> dict:
    """The word n-gram search's pocketsphinx settings (beams, no forward-flat pass and, with
    ``caps``, the per-frame caps on HMMs and words) from ``options``; :meth:`Aligner.align_words`
    and ``show.takes`` build their word decoders with them.  ``caps=False`` keeps pocketsphinx's
    own caps (30000 HMMs, no word cap): the capped search's lattice has fewer rivals, so its word
    posteriors run higher (``show.takes`` judges English by them)."""
    o = options
    if not caps:
        return dict(beam=o.word_beam, wbeam=o.word_wbeam, pbeam=o.word_pbeam, fwdflat=False)
    return dict(beam=o.word_beam, wbeam=o.word_wbeam, pbeam=o.word_pbeam, fwdflat=False,
                maxhmmpf=-1 if o.word_max_hmms is None else o.word_max_hmms,
                maxwpf=-1 if o.word_max_words is None else o.word_max_words)


def decode_utterance(dec, pcm: bytes) -> None:
    """One whole utterance through a pocketsphinx decoder in its current search mode; features
    re-initialised first, so no state (cepstral mean) carries over from earlier segments."""
    dec.reinit_feat()
    dec.start_utt()
    dec.process_raw(pcm, full_utt=True)
    dec.end_utt()


def to_pcm16(samples: np.ndarray) -> bytes:
    """float32 [n] in [-1, 1] -> little-endian int16 bytes, what process_raw takes."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def frame_db(samples: np.ndarray) -> np.ndarray:
    """float32 [n] -> RMS level in dBFS of each 10 ms frame, float64 [ceil(n / 160)]."""
    n = samples.shape[0]
    num_frames = -(-n // _HOP)
    padded = np.zeros(num_frames * _HOP, dtype=np.float64)
    padded[:n] = samples
    power = np.mean(padded.reshape(num_frames, _HOP) ** 2, axis=1)
    return 10.0 * np.log10(power + 1e-12)


def quiet_frames(level: np.ndarray, floor_db: float, min_run: int) -> np.ndarray:
    """level: dBFS [num_frames] -> bool [num_frames]: frames in runs of >= min_run frames
    quieter than floor_db."""
    below = level < floor_db
    out = np.zeros_like(below)
    # Run-length scan via the edges of the boolean mask.
    edges = np.flatnonzero(np.diff(np.concatenate(([0], below.astype(np.int8), [0]))))
    for start, end in zip(edges[::2], edges[1::2]):
        if end - start >= min_run:
            out[start:end] = True
    return out


def unaligned_speech(spans: list[tuple[str, int, int]], level: np.ndarray,
                      judged: np.ndarray) -> float:
    """Fraction of clearly loud frames that ``spans`` label silence (0 when there are none).

    level: dBFS of the frames selected by ``judged`` (bool [num_frames]).  "Loud" is relative
    to the clip: above the midpoint (in dB) between its noise floor (10th percentile of frame
    levels) and its speech level (95th percentile).  Real pauses sit near the floor, so a
    correct alignment leaves very few loud frames in silence.  Digital silence is left out of
    ``judged``: at -120 dB it would drag the floor down and make room noise look loud.
    """
    if level.size == 0:
        return 0.0
    floor, peak = np.percentile(level, [10, 95])
    if peak - floor < 10.0:  # no usable dynamics (constant noise/music): nothing to judge
        return 0.0
    speech = np.zeros(judged.shape[0], dtype=bool)
    for phone, start, end in spans:
        if phone != "SIL":
            speech[max(0, start):max(0, end)] = True
    loud = level > (floor + peak) / 2
    return float(np.count_nonzero(loud & ~speech[judged])) / max(1, int(np.count_nonzero(loud)))


def phone(name: str) -> str:
    """Decoder unit name -> ARPAbet without stress, or 'SIL' for silence/noise/fillers."""
    base = name.strip().upper().rstrip("012")
    return base if base in _PHONES else "SIL"


def timeline(spans: list[tuple[str, int, int]], quiet: np.ndarray, num_frames: int,
              start: float, end: float) -> list[PhoneSpan]:
    """Decoder spans [(phone, first frame, end frame)] -> contiguous PhoneSpans in seconds.

    Gaps, frames past the decoder's last frame and ``quiet`` frames become SIL; consecutive SIL
    is merged.  Boundaries between two identical phones are kept (span ids, not labels, are
    run-length encoded).
    """
    owner = np.full(num_frames, -1, dtype=np.int64)  # span index of each frame, -1 = silence
    names: list[str] = []
    for phone, first, stop in spans:
        first, stop = max(0, first), min(num_frames, stop)
        if phone == "SIL" or stop <= first:
            continue
        owner[first:stop] = len(names)
        names.append(phone)
    owner[quiet] = -1
    change = np.flatnonzero(np.diff(owner)) + 1
    bounds = np.concatenate(([0], change, [num_frames]))
    out: list[PhoneSpan] = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        phone = names[owner[a]] if owner[a] >= 0 else "SIL"
        t0 = start + a / _FRAME_RATE
        t1 = end if b == num_frames else start + b / _FRAME_RATE
        if out and phone == "SIL" and out[-1].phone == "SIL":
            out[-1] = PhoneSpan("SIL", out[-1].start, t1)
        else:
            out.append(PhoneSpan(phone, t0, t1))
    return out


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
