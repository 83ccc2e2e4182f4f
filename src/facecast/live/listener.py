"""What the live input says, as it arrives: voice activity per frame and phones.

Live audio (``Source.MIC``) goes through silero-VAD (streaming) and the pocketsphinx recogniser
(``LivePhones``, partial hypotheses), restarted at VAD pauses so memory stays flat. Speech with
known phones (``Source.TTS``) is not analysed: its phones are added as they are (``final``).
"""

from __future__ import annotations

import math

import numpy as np

from ..options import StreamOptions
from ..timing import Timings
from ..types import ANALYSIS_RATE, PhoneSpan
from .audio_in import InputTape, Source
from .phones import LivePhones

__all__ = ["Listener"]


class Listener:
    """VAD decisions per frame (live audio) and the phones of the input on ``tape``.

    ``proc``: analysis samples processed so far. ``final``: settled phones (known speech, ended
    utterances); the recogniser's current path is added by ``phones_for``.
    """

    def __init__(self, tape: InputTape, fps: float, options: StreamOptions, timings: Timings) -> None:
        from ..analysis import VoiceActivity

        self.tape, self.fps, self.options, self.timings = tape, fps, options, timings
        self.vad = VoiceActivity()
        self.rec = LivePhones() if options.motion.drive == "phones" else None
        self.proc = 0                           # analysis samples processed by VAD/recogniser
        self.vad_origin: int | None = None      # analysis index where the VAD stream (re)started
        self.vad_windows = 0                    # VAD windows completed since then
        self.vad_flushed = False
        self.quiet_run = 0                      # samples of low speech probability in an utterance
        self.last_utt_end = 0
        self.vdec: dict[int, bool] = {}         # VAD decision per frame (mic input)
        self.vdec_next = 0                      # next frame to decide
        self.last_mic_voiced = False
        self.final: list[PhoneSpan] = []        # settled phones (TTS, ended utterances)
        self.partial_cache: tuple[int, list[PhoneSpan]] | None = None

    def process_to(self, target: int) -> None:
        """Run VAD and the recogniser over analysis samples [proc, target)."""
        tape = self.tape
        target = min(target, tape.end)
        while self.proc < target:
            kind, r_end = None, target
            for r in tape.regions:
                if r.start <= self.proc < r.end:
                    kind, r_end = r.source, min(r.end, target)
                    break
            if kind is None:  # should not happen: regions tile the input
                self.proc = target
                break
            if kind == Source.MIC:
                self._process_mic(self.proc, r_end)
            else:
                self.mic_gap(self.proc)
            self.proc = r_end
        self.decide_voiced()

    def _process_mic(self, a: int, b: int) -> None:
        tape = self.tape
        x = tape.ana.get(a, b)[0]
        if self.vad_origin is None or self.vad_flushed:
            self.vad.reset(a / ANALYSIS_RATE)
            self.vad_origin, self.vad_windows, self.vad_flushed = a, 0, False
            self.last_mic_voiced = False
            self.vdec_next = max(self.vdec_next, math.ceil(a * self.fps / ANALYSIS_RATE - 1e-9))
        with self.timings.stage("vad"):
            probs = self.vad.speech_probability(x)
        self.vad_windows += probs.size
        rec = self.rec
        if rec is None:
            return
        with self.timings.stage("align"):
            if not rec.active:
                if probs.size and probs.max() >= 0.5:
                    # Speech onset: start the utterance a little before it (pre-roll), never
                    # before the previous utterance's end or this run of live input.
                    region_start = next(r.start for r in reversed(tape.regions) if r.start <= a)
                    start = max(b - int(0.3 * ANALYSIS_RATE), self.last_utt_end, region_start, tape.ana.base)
                    rec.start(start)
                    rec.feed(tape.ana.get(start, b)[0])
                    self.quiet_run = 0
                    self.partial_cache = None
                return
            rec.feed(x)
            self.partial_cache = None
            low = (probs.size == 0 and self.quiet_run > 0) or (probs.size > 0 and probs.max() < 0.35)
            self.quiet_run = self.quiet_run + (b - a) if low else 0
            if self.quiet_run >= int(0.3 * ANALYSIS_RATE):
                self.end_utterance()
            elif rec.fed >= self.options.max_utterance_s * ANALYSIS_RATE:
                self.end_utterance()
                rec.start(b)
                self.quiet_run = 0

    def end_utterance(self) -> None:
        rec = self.rec
        if rec is None or not rec.active:
            return
        self.final.extend(rec.end())
        self.last_utt_end = rec.end_sample
        self.partial_cache = None

    def mic_gap(self, at: int) -> None:
        """Input that is not live audio starts at ``at``: close the live analysis."""
        with self.timings.stage("align"):
            self.end_utterance()
        if self.vad_origin is not None and not self.vad_flushed:
            with self.timings.stage("vad"):
                self.vad_windows += self.vad.flush().size
            self.vad_flushed = True
            self.decide_voiced(upto=at)
        self.last_utt_end = max(self.last_utt_end, at)

    def finish(self) -> None:
        """The input ended: analyse the rest and settle the last phones."""
        end = self.tape.end
        self.process_to(end)
        with self.timings.stage("align"):
            self.end_utterance()
        if self.vad_origin is not None and not self.vad_flushed:
            self.mic_gap(end)

    def decide_voiced(self, upto: int | None = None) -> None:
        """VAD decisions for the frames whose windows are complete."""
        if self.vad_origin is None:
            return
        complete = self.vad_origin + self.vad_windows * self.vad.window
        if self.vad_flushed:
            complete = max(complete, upto or 0)
        while True:
            g = self.vdec_next
            t = g * ANALYSIS_RATE / self.fps
            if t >= self.proc and not self.vad_flushed:
                break
            if t + 0.5 * ANALYSIS_RATE / self.fps > complete and not (self.vad_flushed and t < complete):
                break
            if t >= self.tape.end:
                break
            if self.tape.region_at(int(t)) == Source.MIC and t >= self.vad_origin:
                v = bool(self.vad.voiced_frames(np.zeros(0, np.float32), self.fps, 1, g)[0])
                self.vdec[g] = v
                self.last_mic_voiced = v
            self.vdec_next = g + 1

    def voiced(self, lo: int, hi: int, end: int, phones: list[PhoneSpan], times: np.ndarray) -> np.ndarray:
        """bool [hi - lo]: frames lo ... hi - 1 voiced (VAD for live audio, the phones for known
        speech, never beyond analysis sample ``end``)."""
        voiced = np.zeros(hi - lo, bool)
        mic_hold = self.last_mic_voiced
        for k, g in enumerate(range(lo, hi)):
            s = g * ANALYSIS_RATE / self.fps
            kind = self.tape.region_at(int(s)) if s < end else None
            if kind == Source.MIC:
                voiced[k] = self.vdec.get(g, mic_hold)
            elif kind == Source.TTS:
                voiced[k] = speaking_at(phones, times[k])
        return voiced

    def phones_for(self, since: float, barrier_t: float) -> list[PhoneSpan]:
        """Phones ending after ``since`` (none before ``barrier_t``: a barge-in), partial path included."""
        out = [p for p in self.final if p.end > since and p.start >= barrier_t - 1e-9]
        rec = self.rec
        if rec is not None and rec.active:
            key = rec.fed
            if self.partial_cache is None or self.partial_cache[0] != key:
                with self.timings.stage("align"):
                    self.partial_cache = (key, rec.partial())
            out += [p for p in self.partial_cache[1] if p.start >= barrier_t - 1e-9]
        out.sort(key=lambda p: p.start)
        return out

    def interrupt(self, f: int) -> None:
        """Barge-in at frame ``f`` (the tape is already cut there)."""
        if self.rec is not None:
            self.rec.abort()
        self.proc = min(self.proc, self.tape.end)
        self.vad_origin = None
        self.final = [p for p in self.final if p.start < f / self.fps]
        self.vdec = {g: v for g, v in self.vdec.items() if g < f}
        self.vdec_next = min(self.vdec_next, f)
        self.partial_cache = None
        self.last_utt_end = self.tape.end

    def keep_from(self, keep: int) -> int:
        """The analysis sample to keep from, given the frames' ``keep``: never what the
        recogniser may still read (its pre-roll) or what is not processed yet."""
        if self.rec is not None and not self.rec.active:
            keep = min(keep, self.proc - int(0.35 * ANALYSIS_RATE))
        return min(keep, self.proc)

    def trim(self, f: int, ctx: int) -> None:
        """Forget phones and VAD decisions that frame ``f`` and later no longer look at."""
        horizon = max(f - ctx, 0) / self.fps - 1.5
        if self.final and self.final[0].end < horizon:
            self.final = [p for p in self.final if p.end >= horizon]
        if self.vdec and min(self.vdec) < f - ctx - 2:
            self.vdec = {g: v for g, v in self.vdec.items() if g >= f - ctx - 2}


def speaking_at(phones: list[PhoneSpan], t: float) -> bool:
    for p in phones:
        if p.start <= t < p.end:
            return p.phone != "SIL"
    return False
