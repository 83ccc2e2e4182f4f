"""speak: the script's lines as one stream of Beats on the show's timeline, line by line.

Each line becomes speech in its speaker's voice (sentence by sentence, exact phones and word
times from Piper), silence (``[pause S]``), or a recorded take (``[audio: FILE]``, streamed in
pieces of at most ``segment_max_s``); lines are ``gap_s`` apart. Every part starts on a frame
boundary, so the Beats' segments tile the frame grid exactly (a part's last frame may hold up to
one frame of silence after it). Audio is resampled to the show's rate; the mouth side gets it at
ANALYSIS_RATE as for `say`. Only one sentence (or one recording piece) is held at a time.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np

from .. import audio as audio_mod
from ..segments import Segment, audio_segments, frames_between
from ..types import ANALYSIS_RATE, AudioChunk, PhoneSpan
from .script import Pause, Recording, Script, ScriptLine, SpeakText
from .words import Cue, make_cues, split_sentences, take_cues, word_times

log = logging.getLogger(__name__)

__all__ = ["Beat", "Timeline", "silent_segment"]


@dataclass(frozen=True)
class Beat:
    """A stretch of the show: its segment (frames, analysis audio, output audio at the show's
    rate, phones when known), who is speaking (None between lines), the script line (None
    between lines), the index of that line, and the subtitles that start in it."""

    segment: Segment
    speaker: str | None
    line: ScriptLine | None
    index: int
    cues: tuple[Cue, ...] = ()


def silent_segment(start: float, end: float, fps: float) -> Segment:
    """A segment of silence [start, end): no output audio (the writer fills silence), known to
    have no phones."""
    f0, n = frames_between(start, end, fps)
    analysis = np.zeros(max(int(round((end - start) * ANALYSIS_RATE)), 0), np.float32)
    return Segment(start, end, f0, n, analysis, (), ())


def _snap(t: float, fps: float) -> float:
    """The first frame boundary at or after t."""
    return math.ceil(t * fps - 1e-9) / fps


class Timeline:
    """The Beats of ``script`` (see the module docstring). ``voices``: speaker -> (Voice, rate).
    ``transcriber``: a ``takes.Transcriber`` for the subtitles of recorded takes (None: takes
    have no cues; nothing is recognised)."""

    def __init__(self, script: Script, voices: dict, fps: float, audio_rate: int, gap_s: float,
                 segment_max_s: float, transcriber=None) -> None:
        self.script, self.voices, self.fps = script, voices, fps
        self.transcriber = transcriber
        self.audio_rate, self.gap_s, self.segment_max_s = audio_rate, gap_s, segment_max_s
        self.end = 0.0  # where the show ends so far (seconds, a frame boundary)

    def beats(self) -> Iterator[Beat]:
        t = 0.0
        for i, line in enumerate(self.script.lines):
            if i and self.gap_s > 0:
                end = _snap(t + self.gap_s, self.fps)
                yield Beat(silent_segment(t, end, self.fps), None, None, i)
                t = end
            for part in line.parts:
                if isinstance(part, SpeakText):
                    for sentence in split_sentences(part.text):
                        if not any(ch.isalnum() for ch in sentence):
                            continue  # "..." on its own: nothing to say
                        for beat in self._speak(line, i, sentence, t):
                            t = _snap(beat.segment.end, self.fps)
                            yield beat
                elif isinstance(part, Pause):
                    end = _snap(t + part.seconds, self.fps)
                    yield Beat(silent_segment(t, end, self.fps), line.speaker, line, i)
                    t = end
                elif isinstance(part, Recording):
                    for beat in self._play(line, i, part, t):
                        yield beat
                        t = _snap(beat.segment.end, self.fps)
            self.end = t

    def _speak(self, line: ScriptLine, index: int, sentence: str, t0: float) -> Iterator[Beat]:
        """One written sentence in the speaker's voice: a Beat per sentence the voice made of it
        (usually one), the sentence's cues on the first."""
        voice, rate = self.voices[line.speaker]
        said = list(voice.synthesize(sentence, rate=rate))  # one sentence: a few seconds of audio
        words = [w for s in said for w in s.words]
        shift = t0
        timed = word_times(sentence, words)
        cues = tuple(make_cues([replace(w, start=w.start + shift, end=w.end + shift) for w in timed], line.speaker))
        for k, s in enumerate(said):
            a = s.audio
            start, end = a.start + shift, a.end + shift
            f0, n = frames_between(start, end, self.fps)
            analysis = _resample(a, ANALYSIS_RATE).samples[0]
            out = _resample(a, self.audio_rate)
            out = AudioChunk(out.samples, out.sample_rate, start)
            phones = tuple(PhoneSpan(p.phone, p.start + shift, p.end + shift) for p in s.phones)
            seg = Segment(start, end, f0, n, analysis, (out,), phones)
            yield Beat(seg, line.speaker, line, index, cues if k == 0 else ())

    def _play(self, line: ScriptLine, index: int, part: Recording, t0: float) -> Iterator[Beat]:
        """A recording, streamed in pieces, shifted to start at ``t0`` (a frame boundary)."""
        shift_frames = int(round(t0 * self.fps))
        cues = self._take_cues(line, part, t0)
        resampler = audio_mod.Resampler(self.audio_rate, mono=True)
        first = True
        pending = None
        for seg in audio_segments(part.path, self.fps, self.segment_max_s):
            out = [resampler.feed(c) for c in seg.output_audio]
            moved = tuple(AudioChunk(c.samples, c.sample_rate, c.start + t0) for c in out if c.num_samples)
            shifted = Segment(seg.start + t0, seg.end + t0, seg.first_frame + shift_frames, seg.num_frames,
                              seg.analysis, moved, None)
            if pending is not None:
                yield pending
            pending = Beat(shifted, line.speaker, line, index, cues if first else ())
            first = False
        if pending is not None:
            tail = resampler.flush()
            if tail.num_samples:
                tail = AudioChunk(tail.samples, tail.sample_rate, tail.start + t0)
                pending = replace(pending, segment=replace(pending.segment,
                                                           output_audio=pending.segment.output_audio + (tail,)))
            yield pending


    def _take_cues(self, line: ScriptLine, part: Recording, t0: float) -> tuple[Cue, ...]:
        """The subtitles of a recorded take starting at ``t0`` (a warning where they are spread or
        missing)."""
        if self.transcriber is None:
            return ()
        took = self.transcriber.words(part.path, part.transcript)
        where = f"{self.script.path}:{line.line}: [audio: {part.path.name}]"
        if took.how == "none":
            log.warning("%s: no subtitles for this recording: %s. Write [audio: %s | what is said] for them.", where,
                        took.note, part.path.name)
        elif took.how == "spread":
            log.warning("%s: %s; its subtitles are spread evenly over the recording, without word times.", where,
                        took.note)
        elif took.recognised:
            log.warning("%s: subtitles from recognised words (they may be wrong; marked as recognised). Write "
                        "[audio: %s | what is said] for exact ones.", where, part.path.name)
        words = [replace(w, start=w.start + t0, end=w.end + t0) for w in took.words]
        return tuple(take_cues(words, line.speaker, recognised=took.recognised))


def _resample(chunk: AudioChunk, rate: int) -> AudioChunk:
    """One whole chunk at ``rate`` (mono), starting where it started."""
    if chunk.sample_rate == rate:
        return AudioChunk(chunk.mono()[None, :], rate, chunk.start)
    r = audio_mod.Resampler(rate, mono=True)
    a, b = r.feed(chunk), r.flush()
    return AudioChunk(np.concatenate([a.samples, b.samples], axis=1), rate, chunk.start)
