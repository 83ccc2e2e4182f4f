"""The word-recognition pass of the speech analysis (`Aligner.align_words`) under different
pocketsphinx settings: CPU seconds per second of audio and the phone agreement with the true
transcript's forced alignment, on the three English clips of tests/test_align.py.

    .venv/bin/python benchmarks/word_pass.py [--rounds 3] [--variant NAME:KEY=VALUE,...] [--json FILE]

Each variant is `Aligner(AlignOptions(...))` with its keys replaced: AlignOptions fields
(word_max_hmms, word_max_words, word_beam, ...; "none" for None) or, for any other key, a
pocketsphinx keyword passed to the word decoder only (topn, ds, pl_window, lpbeam, ...). Without
--variant: `old` (the settings before word_max_hmms / word_max_words existed: pocketsphinx's 30000
and no cap), `default` (today's AlignOptions()), the neighbours that bound it and pocketsphinx's
other speed knobs on top of the default.

Speed: time.process_time of one align_words call (both passes; this process, one thread), the
minimum over --rounds rounds, the variants interleaved within a round so that a slow spell of a
shared machine hits all of them; also pocketsphinx's own work counters of the word search
(senones evaluated and HMMs ("channels") searched per frame), which do not depend on the load.
Agreement: as test_align.py's test_recognised_words_aligned_agree_with_the_transcript_better_than
_phone_recognition computes it: the fraction of 10 ms frames, among those the transcript's
alignment calls speech, where align_words gives the same phone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pocketsphinx

from facecast.align import SAMPLE_RATE, Aligner
from facecast.options import AlignOptions
from facecast.types import AudioChunk, PhoneSpan

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media" / "audio"
CLIPS = {  # the transcripts of tests/test_align.py
    "jfk_en.flac": "And so, my fellow Americans: ask not what your country can do for you -- "
                   "ask what you can do for your country.",
    "hdtf_radio31_en.wav": "Holidays are a time of celebrating with loved ones, enjoying the festivities, "
                           "and going back to school. But for many, this year has been",
    "lecture_en.wav": "After several more years of teaching, I came to the conclusion that what we need in "
                      "education is a much better understanding of students and learning from a motivational "
                      "perspective, from a psychological perspective. In education, the one thing we know "
                      "how to measure best is IQ.",
}
VARIANTS = (
    "old:word_max_hmms=30000,word_max_words=none",
    "default:",
    "hmms_only:word_max_words=none",
    "words_only:word_max_hmms=none",
    "hmms4000:word_max_hmms=4000",
    "hmms3000:word_max_hmms=3000",
    "words5:word_max_words=5",
    "topn3:topn=3",
    "topn2:topn=2",
    "ds2:ds=2",
    "pl_window10:pl_window=10",
)
FIELDS = {f.name for f in dataclasses.fields(AlignOptions)}


def load16k(path: Path) -> AudioChunk:
    """The clip as tests/test_align.py loads it (PyAV's resampler to 16 kHz mono float)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    parts = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return AudioChunk(np.concatenate(parts).astype(np.float32)[None, :], SAMPLE_RATE)


def frames(spans: list[PhoneSpan]) -> np.ndarray:
    """The phone of each 10 ms frame (test_align.py's frame function)."""
    t = (np.arange(int(spans[-1].end * 100)) + 0.5) / 100
    starts = np.array([s.start for s in spans])
    return np.array([spans[i].phone for i in np.clip(np.searchsorted(starts, t, side="right") - 1, 0, None)])


def parse_variant(spec: str) -> tuple[str, dict, dict]:
    """"NAME:KEY=VALUE,..." -> (name, AlignOptions fields, extra pocketsphinx keywords)."""
    name, _, body = spec.partition(":")
    fields, extra = {}, {}
    for item in filter(None, body.split(",")):
        key, _, text = item.partition("=")
        value = None if text.lower() == "none" else json.loads(text)
        (fields if key in FIELDS else extra)[key] = value
    return name, fields, extra


def word_aligner(fields: dict, extra: dict) -> Aligner:
    """An Aligner whose word decoder (built by its first align_words call, made here) also gets
    ``extra``: pocketsphinx.Decoder is wrapped for that one call."""
    real = pocketsphinx.Decoder

    def decoder(*args, **kwargs):
        return real(*args, **{**kwargs, **extra})

    with stderr_to_file():  # INFO: the word search's counters; the set-up's lines are dropped
        aligner = Aligner(dataclasses.replace(AlignOptions(sphinx_loglevel="INFO"), **fields))
        pocketsphinx.Decoder = decoder
        try:
            noise = np.random.default_rng(0).standard_normal((1, SAMPLE_RATE)).astype(np.float32) * 0.1
            aligner.align_words(AudioChunk(noise, SAMPLE_RATE))  # (silence would not build the decoder)
        finally:
            pocketsphinx.Decoder = real
    return aligner


class stderr_to_file:
    """File descriptor 2 (pocketsphinx's C logging) into a temporary file; ``text`` afterwards."""

    def __enter__(self):
        self.file = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode(errors="replace")
        self.file.close()


def counters(log: str) -> tuple[int, int]:
    """(senones evaluated, HMMs searched) per frame of the last word search in a pocketsphinx log."""
    sen = re.findall(r"senones evaluated \((\d+)/fr\)", log)
    hmm = re.findall(r"channels searched \((\d+)/fr\)", log)
    return (int(sen[-1]) if sen else -1, int(hmm[-1]) if hmm else -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", help="NAME:KEY=VALUE,... (repeatable; default: a built-in list)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    specs = [parse_variant(v) for v in (args.variant or VARIANTS)]
    reference = Aligner()
    audio = {name: load16k(MEDIA / name) for name in CLIPS}
    truth = {name: frames(reference.align(a, CLIPS[name])) for name, a in audio.items()}
    aligners = {name: word_aligner(fields, extra) for name, fields, extra in specs}
    cpu: dict = {}
    rows: dict = {}
    for r in range(args.rounds):
        for name, aligner in aligners.items():
            for clip, a in audio.items():
                with stderr_to_file() as log:
                    t0 = time.process_time()
                    words = aligner.align_words(a)
                    seconds = time.process_time() - t0
                ref = truth[clip]
                got = frames(words)[:len(ref)] if words else np.array([], ref.dtype)
                spoken = ref[:len(got)] != "SIL"
                cpu[name, clip] = min(cpu.get((name, clip), np.inf), seconds)
                rows[name, clip] = dict(cpu_per_s=cpu[name, clip] / a.duration,
                                        agreement=float(np.mean(got[spoken] == ref[:len(got)][spoken])),
                                        counters=counters(log.text))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    first = specs[0][0]
    total = {name: sum(cpu[name, clip] for clip in CLIPS) / sum(a.duration for a in audio.values())
             for name, _, _ in specs}
    print(f"\naudio: {', '.join(f'{c} {a.duration:.1f} s' for c, a in audio.items())}; "
          f"cells: CPU s per audio s / agreement / senones, HMMs per frame; x: CPU against {first!r}")
    print("| variant | " + " | ".join(CLIPS) + " | all: CPU s/s | x |")
    print("|---|" + "---|" * (len(CLIPS) + 2))
    for name, fields, extra in specs:
        cells = [f"{rows[name, c]['cpu_per_s']:.3f} / {rows[name, c]['agreement']:.3f} / "
                 f"{rows[name, c]['counters'][0]}, {rows[name, c]['counters'][1]}" for c in CLIPS]
        label = ", ".join(f"{k}={v}" for k, v in {**fields, **extra}.items()) or "AlignOptions()"
        print(f"| {name} ({label}) | " + " | ".join(cells) + f" | {total[name]:.3f} | {total[first] / total[name]:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"variants": {n: {"fields": f, "extra": e} for n, f, e in specs},
                                         "rows": {f"{n} {c}": v for (n, c), v in rows.items()},
                                         "total_cpu_per_s": total}, indent=1))
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # not the decoders' INFO totals at exit


if __name__ == "__main__":
    main()
