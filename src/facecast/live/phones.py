"""Live phone recognition: pocketsphinx allphone search with partial hypotheses."""

from __future__ import annotations

import os

import numpy as np

from ..errors import ModelError
from ..types import ANALYSIS_RATE, PhoneSpan

__all__ = ["CMN_INIT", "LivePhones"]

# Mean cepstrum of speech for pocketsphinx's live cepstral mean normalisation at the start of a
# stream (its built-in "40,3,-1" is far too quiet for normal recording levels, and live CMN only
# adapts after an utterance ends). Measured: speech60s_en.wav decoded whole (full_utt=True),
# Decoder.get_cmn(). With it the streamed mouth-class accuracy goes from 0.59 to 0.72 on jfk_en
# and from 0.62 to 0.75 on hdtf_radio31_en -- see docs/streaming.md.
CMN_INIT = "60.98,5.36,1.58,9.10,1.54,-2.97,-8.67,-2.45,-0.71,-4.17,-0.15,-5.22,2.77"


class LivePhones:
    """Incremental phone recognition of a live 16 kHz stream (pocketsphinx allphone search).

    pocketsphinx 5.1's ``process_raw(..., full_utt=False)`` decodes as audio arrives and
    ``seg()`` mid-utterance gives the best path so far: measured on jfk/radio/lecture, the phone
    of a 10 ms frame read 160 ms after it equals the end-of-utterance result for 94-96 % of
    frames, read 300 ms after it for > 99 %. Cepstral normalisation is "live" (starts from ``CMN_INIT``
    and adapts at every utterance end). The caller starts an utterance at speech onsets and ends
    it at pauses (``start``/``end``), which keeps the decoder's memory flat.
    Same decoder settings as :class:`facecast.align.Aligner`'s recogniser.
    """

    def __init__(self, options=None, cmn_init: str = CMN_INIT) -> None:
        import pocketsphinx

        from ..options import AlignOptions

        self.options = options or AlignOptions()
        model_dir = self.options.model_dir or pocketsphinx.get_model_path()
        hmm = os.path.join(model_dir, "en-us", "en-us")
        phone_lm = os.path.join(model_dir, "en-us", "en-us-phone.lm.bin")
        for path in (hmm, phone_lm):
            if not os.path.exists(path):
                raise ModelError(f"{path}: pocketsphinx model file missing; reinstall the pocketsphinx wheel "
                                 "(pip install --force-reinstall pocketsphinx)")
        try:
            self._dec = pocketsphinx.Decoder(
                hmm=hmm, lm=None, dict=None, allphone=phone_lm, allphone_ci=True,
                lw=self.options.lw, beam=self.options.beam, pbeam=self.options.pbeam,
                ds=self.options.downsample, bestpath=False, cmninit=cmn_init,
                loglevel=self.options.sphinx_loglevel,
            )
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{model_dir}: cannot load the pocketsphinx models ({exc})") from exc
        self.active = False
        self.start_sample = 0  # analysis-rate sample index of the utterance start
        self.fed = 0           # samples fed in this utterance
        self._levels: list[np.ndarray] = []  # dBFS per 10 ms frame
        self._rest = np.zeros(0, np.float32)  # < 160 samples not yet in _levels

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.fed

    def start(self, at_sample: int) -> None:
        self._dec.start_utt()
        self.active = True
        self.start_sample, self.fed = int(at_sample), 0
        self._levels, self._rest = [], np.zeros(0, np.float32)

    def feed(self, samples: np.ndarray) -> None:
        from ..align import frame_db, to_pcm16

        if not self.active or samples.size == 0:
            return
        self._dec.process_raw(to_pcm16(samples), no_search=False, full_utt=False)
        self.fed += samples.shape[0]
        data = np.concatenate([self._rest, samples]) if self._rest.size else samples
        n = (data.shape[0] // 160) * 160
        if n:
            self._levels.append(frame_db(data[:n]))
        self._rest = data[n:].astype(np.float32, copy=True)

    def partial(self) -> list[PhoneSpan]:
        """The best phone path so far (absolute seconds), up to the last decoded frame."""
        return self._spans(final=False) if self.active else []

    def end(self) -> list[PhoneSpan]:
        """End the utterance; its final phones (absolute seconds, covering it exactly)."""
        if not self.active:
            return []
        self._dec.end_utt()
        out = self._spans(final=True)
        self.active = False
        return out

    def abort(self) -> None:
        if self.active:
            self._dec.end_utt()
            self.active = False

    def _spans(self, final: bool) -> list[PhoneSpan]:
        from ..align import phone, quiet_frames, timeline

        if self._dec.hyp() is None:
            raw: list[tuple[str, int, int]] = []
        else:
            raw = [(phone(s.word), s.start_frame, s.end_frame + 1) for s in self._dec.seg()]
        t0 = self.start_sample / ANALYSIS_RATE
        level = np.concatenate(self._levels) if self._levels else np.zeros(0)
        if final:
            num = -(-self.fed // 160)
            end = self.end_sample / ANALYSIS_RATE
        else:  # stop where the decoder's path stops: what lies beyond is not known yet
            num = max((e for _, _, e in raw), default=0)
            end = t0 + num / 100
        if num <= 0:
            return []
        lv = np.full(num, 0.0)
        lv[:min(num, level.size)] = level[:num]
        quiet = quiet_frames(lv, self.options.silence_dbfs,
                              max(1, round(self.options.min_silence_s * 100)))
        if not final:
            quiet[level.size:] = False
        return timeline(raw, quiet, num, t0, end)
