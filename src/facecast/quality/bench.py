"""`facecast bench`: how fast, how much memory, end to end and per stage.

For each (input duration, output size) case:

1. time to first chunk: ``repeats + 1`` runs of ``say_chunks`` up to its first SayChunk (a new
   job in a warm process: portrait detection, renderer setup, model loading, the first short
   segment). The first run is the warm-up (it also pays Python imports and first-touch costs)
   and is reported on its own; p50/p95 are over the other ``repeats``.
2. the measured run: ``say`` to an MP4 in a temporary folder, with
   - wall time -> RTF = wall / audio seconds (< 1 = faster than real time) and frames/s;
   - steady-state RTF: the same without the warm-up of that run (everything up to the first
     chunk handed to the encoder: model loading and the first segment), i.e.
     (wall - first chunk) / (audio - audio of the first segment);
   - seconds per stage from ``timing.Timings`` (voice, decode, align, analyse, motion, render;
     "encode (overlapped)" runs on its own thread, concurrently with rendering, so stages do not
     add up to the wall time);
   - memory: VmHWM (peak RSS, reset before the run through /proc/self/clear_refs where the
     kernel allows it) and VmRSS sampled every 0.5 s on a thread; RSS at 10 %, 50 % and 90 % of
     the run shows whether memory stays flat as the input grows;
   - on CUDA: the render stage timed with torch.cuda.Event pairs recorded around every
     ``renderer.render`` call and read after the run (no synchronisation inside the pipeline),
     and ``torch.cuda.max_memory_allocated``.

Inputs are speech looped into a WAV of the requested length: the file given as ``speech``
(``--speech``; the documented numbers used the project's 60 s English recording
``speech60s_en.wav``), or without one ``BENCH_TEXT`` spoken once by the bundled Piper voice.
With ``source="text"`` a paragraph repeated to about that length is spoken by the Piper voice
inside the measured job (then the "voice" stage is timed too).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import InputError
from ..sysinfo import MemorySampler, peak_rss_mb, reset_peak_rss
from .options import BenchOptions

__all__ = ["CaseResult", "run_bench", "run_case", "make_speech_wav", "voice_speech_wav", "bench_text", "BENCH_TEXT",
           "rich_table", "markdown_section", "append_markdown", "write_json"]

STAGES = ("face", "setup", "voice", "decode", "align", "analyse", "motion", "render", "encode (overlapped)")
BENCH_TEXT = (
    "The quick brown fox jumps over the lazy dog, and then it rests for a moment in the warm sun. "
    "Meanwhile, a small bird sings from the top of an old oak tree, while people walk by and talk "
    "about the weather, the news, and their plans for the weekend. "
)
_WORDS_PER_SECOND = 3.5  # the bundled Piper voice on BENCH_TEXT (13 words: 3.7 s)


@dataclass
class CaseResult:
    """One measured case. Times in seconds, memory in MiB."""

    source: str
    duration_s: float          # audio seconds actually rendered
    size: int
    device: str
    frames: int
    wall_s: float
    rtf: float
    rtf_steady: float
    fps: float
    first_chunk_s: float       # warm-up of the measured run (model loading + first segment)
    first_chunk_audio_s: float
    stages: dict[str, float]
    ttfc_warmup_s: float
    ttfc_p50_s: float
    ttfc_p95_s: float
    ttfc_runs: list[float]
    rss_peak_mb: float
    rss_at: dict[str, float]   # "10%", "50%", "90%" of the run (the end is after frames are freed)
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)
    vram_peak_mb: float | None = None
    render_gpu_s: float | None = None
    load_avg: tuple[float, float] | None = None  # 1-min load average before / after the case

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        for k, v in list(d.items()):
            if isinstance(v, float):
                d[k] = None if not math.isfinite(v) else round(v, 4)
        d["stages"] = {k: round(v, 4) for k, v in self.stages.items()}
        d["rss_samples"] = [[round(t, 2), round(m, 1)] for t, m in self.rss_samples]
        return d


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def make_speech_wav(src: str | Path, seconds: float, path: str | Path, *, max_source_s: float = 600.0) -> Path:
    """Loop the speech in ``src`` (leading and trailing silence trimmed, so every stretch of the
    result is speech with its natural pauses) into a mono 16-bit WAV of exactly ``seconds`` at
    ``src``'s own sample rate, written block by block."""
    from .. import audio as audio_mod

    rate = audio_mod.open_audio(src).sample_rate
    x = audio_mod.load_audio(src, sample_rate=rate, mono=True, max_seconds=max_source_s).samples[0]
    win = max(1, rate // 50)  # 20 ms
    n = x.shape[0] // win
    if n == 0:
        raise InputError(f"{src}: holds no audio samples to loop.")
    db = 10 * np.log10((x[: n * win].reshape(n, win).astype(np.float64) ** 2).mean(axis=1) + 1e-12)
    loud = np.nonzero(db > -40.0)[0]
    if loud.size == 0:
        raise InputError(f"{src}: is silent (no 20 ms window above -40 dBFS); give a speech recording.")
    x = x[max(0, (loud[0] - 5) * win): min(x.shape[0], (loud[-1] + 6) * win)]
    return _write_looped_wav(x, rate, seconds, path)


def _write_looped_wav(x: np.ndarray, rate: int, seconds: float, path: str | Path) -> Path:
    """``x`` (float mono samples) repeated into a 16-bit WAV of exactly ``seconds``, block by block."""
    import av

    total = int(round(seconds * rate))
    path = Path(path)
    written = 0
    block = rate * 10
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        while written < total:
            pos = written % x.shape[0]
            piece = x[pos: pos + min(block, total - written)]
            frame = av.AudioFrame.from_ndarray(
                (np.clip(piece, -1, 1) * 32767).astype(np.int16)[None], format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = written
            for packet in stream.encode(frame):
                out.mux(packet)
            written += piece.shape[0]
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def voice_speech_wav(path: str | Path, text: str = BENCH_TEXT) -> Path:
    """``text`` spoken by the bundled Piper voice into a mono 16-bit WAV at the voice's rate: the
    speech of a bench run given no speech file."""
    from ..voice import PiperVoice

    voice = PiperVoice()
    x = np.concatenate([s.audio.samples[0] for s in voice.synthesize(text)])
    return _write_looped_wav(x, voice.sample_rate, x.shape[0] / voice.sample_rate, path)


def bench_text(seconds: float) -> str:
    """BENCH_TEXT repeated to about ``seconds`` of speech."""
    words = BENCH_TEXT.split()
    n = max(3, int(round(seconds * _WORDS_PER_SECOND)))
    reps = [words[i % len(words)] for i in range(n)]
    text = " ".join(reps)
    return text.rstrip(",.") + "."


def _portrait(options: BenchOptions):
    if options.portrait is not None:
        return options.portrait
    from skimage import data

    return data.astronaut()


# --------------------------------------------------------------------------------------------
# CUDA render timing
# --------------------------------------------------------------------------------------------


class _EventTimedRenderer:
    """Wraps a renderer: records a CUDA event pair around each render() call; read after the run."""

    def __init__(self, inner, events: list) -> None:
        self._inner, self._events = inner, events

    def render(self, motion):
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = self._inner.render(motion)
        end.record()
        self._events.append((start, end))
        return out

    def __getattr__(self, name):
        return getattr(self._inner, name)


@contextlib.contextmanager
def _cuda_render_events(enabled: bool) -> Iterator[list]:
    """Within the block, renderers made by the pipeline are wrapped in _EventTimedRenderer."""
    events: list = []
    if not enabled:
        yield events
        return
    from .. import sources

    original = sources.make_renderer
    sources.make_renderer = lambda portrait, options: _EventTimedRenderer(original(portrait, options), events)
    try:
        yield events
    finally:
        sources.make_renderer = original


def _is_cuda(device: str) -> bool:
    return device.startswith("cuda")


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _say_options(options: BenchOptions, size: int):
    from ..options import EncodeOptions, RenderOptions, SayOptions

    render = RenderOptions(device=options.device, batch_frames=options.batch_frames)
    return SayOptions(size=size, fps=options.fps, render=render,
                      workers=options.workers, words=options.words, encode=EncodeOptions(workers=options.encoders))


def _inputs(options: BenchOptions, seconds: float, tmp: Path) -> dict:
    if options.source == "text":
        return {"text": bench_text(seconds)}
    speech = _speech_source(options, tmp)
    wav = tmp / f"speech_{seconds:g}s.wav"
    if not wav.exists():
        make_speech_wav(speech, seconds, wav)
    return {"audio": wav}


def _speech_source(options: BenchOptions, tmp: Path) -> Path:
    """The speech looped to each duration: ``options.speech``, or BENCH_TEXT spoken by the bundled
    voice (once per run, in ``tmp``)."""
    if options.speech is not None:
        speech = Path(options.speech)
        if not speech.exists():
            raise InputError(f"{speech}: speech file for the benchmark not found. Pass --speech FILE.")
        return speech
    speech = tmp / "bench_text_speech.wav"
    if not speech.exists():
        # In a process of its own: the voice model and onnxruntime would stay resident here
        # (~400 MiB) and count in the measured runs' memory.
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            pool.submit(voice_speech_wav, speech).result()
    return speech


def time_to_first_chunk(portrait, inputs: dict, options, runs: int) -> list[float]:
    """Seconds from calling say_chunks to receiving its first chunk, ``runs`` times."""
    from ..pipeline import say_chunks

    out = []
    for _ in range(runs):
        t = time.perf_counter()
        chunks = say_chunks(portrait, options=options, **inputs)
        try:
            first = next(chunks)
            if first.video.frames.is_cuda:
                import torch

                torch.cuda.synchronize()
            out.append(time.perf_counter() - t)
        finally:
            chunks.close()
    return out


def run_case(options: BenchOptions, seconds: float, size: int, tmp: Path,
             progress: Callable[[str], None] | None = None) -> CaseResult:
    """Measure one (duration, size) case (see the module docstring)."""
    from ..pipeline import say
    from ..timing import Timings

    say_msg = progress or (lambda m: None)
    inputs = _inputs(options, seconds, tmp)
    portrait = _portrait(options)
    opts = _say_options(options, size)
    cuda = _is_cuda(options.device)

    say_msg(f"{seconds:g} s @ {size}: time to first chunk ({options.repeats + 1} runs)")
    ttfc_inputs = inputs if seconds <= 10 or options.source == "text" else _inputs(options, min(seconds, 5.0), tmp)
    runs = time_to_first_chunk(portrait, ttfc_inputs, opts, options.repeats + 1)

    say_msg(f"{seconds:g} s @ {size}: measured run")
    timings = Timings()
    first: list[tuple[float, float]] = []
    t0 = 0.0

    def on_progress(done: float, total: float | None) -> None:
        if not first:
            first.append((time.perf_counter() - t0, done))

    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    reset_peak_rss()
    out_path = tmp / f"bench_{seconds:g}s_{size}.mp4"
    with _cuda_render_events(cuda) as events, MemorySampler(options.sample_interval_s) as mem:
        t0 = time.perf_counter()
        say(portrait, out_path, options=opts, timings=timings, progress=on_progress, **inputs)
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    from ..media import probe_mp4

    info = probe_mp4(out_path)
    frames = int(info["num_frames"] or 0)
    audio_s = frames / options.fps
    if info.get("audio_duration"):
        audio_s = float(info["audio_duration"])
    out_path.unlink(missing_ok=True)
    first_s, first_audio = first[0] if first else (wall, audio_s)
    steady_audio = audio_s - first_audio
    vram = render_gpu = None
    if cuda:
        vram = torch.cuda.max_memory_allocated() / 2**20
        render_gpu = sum(s.elapsed_time(e) for s, e in events) / 1000.0
    hwm = peak_rss_mb()
    return CaseResult(
        source=options.source, duration_s=audio_s, size=size, device=options.device, frames=frames,
        wall_s=wall, rtf=wall / audio_s if audio_s > 0 else float("nan"),
        rtf_steady=(wall - first_s) / steady_audio if steady_audio > 0.5 else float("nan"),
        fps=frames / wall if wall > 0 else float("nan"),
        first_chunk_s=first_s, first_chunk_audio_s=first_audio, stages=dict(timings.seconds),
        ttfc_warmup_s=runs[0], ttfc_p50_s=float(np.percentile(runs[1:], 50)),
        ttfc_p95_s=float(np.percentile(runs[1:], 95)), ttfc_runs=runs,
        rss_peak_mb=max(hwm, mem.peak) if math.isfinite(hwm) else mem.peak,
        rss_at={f"{int(f * 100)}%": mem.at_fraction(f) for f in (0.1, 0.5, 0.9)},
        rss_samples=mem.samples, vram_peak_mb=vram, render_gpu_s=render_gpu,
    )


def run_bench(options: BenchOptions = BenchOptions(), progress: Callable[[str], None] | None = None) -> list[CaseResult]:
    """Every (duration, size) case, shortest first; inputs are made in a temporary folder."""
    if _is_cuda(options.device):
        import torch

        from ..errors import DeviceError

        if not torch.cuda.is_available():
            raise DeviceError(f"--device {options.device}: CUDA is not available in this torch build or on this "
                              "machine. Run the bench with --device cpu, or on a machine with an NVIDIA GPU.")
    results = []
    with tempfile.TemporaryDirectory(prefix="facecast-bench-") as tmp:
        for seconds in sorted(options.durations):
            for size in options.sizes:
                load = _load_avg()
                r = run_case(options, seconds, size, Path(tmp), progress)
                r.load_avg = (load, _load_avg())
                results.append(r)
    return results


def _load_avg() -> float:
    """1-minute load average (NaN where unknown): other processes on the machine skew timings."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return float("nan")


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

_TABLE_STAGES = ("voice", "decode", "align", "analyse", "motion", "render", "encode (overlapped)")


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None or not math.isfinite(v) else fmt.format(v)


def _row(r: CaseResult) -> list[str]:
    stages = [_f(r.stages.get(s, 0.0) / r.duration_s if r.duration_s else None, "{:.3f}") for s in _TABLE_STAGES]
    setup = _f((r.stages.get("face", 0.0) + r.stages.get("setup", 0.0)), "{:.2f}")
    rss = "/".join(_f(r.rss_at.get(k), "{:.0f}") for k in ("10%", "50%", "90%"))
    gpu = (f"{_f(r.vram_peak_mb, '{:.0f}')} MiB, render {_f(r.render_gpu_s / r.duration_s if r.render_gpu_s else None, '{:.4f}')}"
           if r.vram_peak_mb is not None else "-")
    return [f"{r.source} {r.duration_s:.1f} s", str(r.size), r.device, _f(r.rtf, "{:.3f}"), _f(r.rtf_steady, "{:.3f}"),
            _f(r.fps, "{:.1f}"), _f(r.first_chunk_s, "{:.2f}"), _f(r.ttfc_warmup_s, "{:.2f}"),
            f"{_f(r.ttfc_p50_s, '{:.2f}')} / {_f(r.ttfc_p95_s, '{:.2f}')}", _f(r.rss_peak_mb, "{:.0f}"), rss, setup,
            *stages, gpu, "/".join(_f(x, "{:.1f}") for x in r.load_avg) if r.load_avg else "-"]


HEADERS = ["input", "size", "device", "RTF", "RTF steady", "fps", "first chunk s", "TTFC warm-up s",
           "TTFC p50 / p95 s", "peak RSS MiB", "RSS 10/50/90% MiB", "face+setup s",
           *[f"{s} s/s" for s in _TABLE_STAGES], "GPU peak VRAM, render s/s", "load before/after"]


def rich_table(results: list[CaseResult]):
    from rich.table import Table

    t = Table(title="facecast bench (RTF = wall / audio seconds; stages in seconds per audio second)")
    for h in HEADERS:
        t.add_column(h, justify="left" if h in ("input", "device") else "right")
    for r in results:
        t.add_row(*_row(r))
    return t


def markdown_section(results: list[CaseResult], command: str, machine: dict) -> str:
    gpu = machine.get("gpu") or "none"
    lines = [
        f"## {machine['date']} - {machine['cpu']} ({machine['cores']} cores), GPU: {gpu}",
        "",
        f"- command: `{command}`",
        f"- git revision: {machine['git']}; Python {machine['python']}",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(_row(r)) + " |" for r in results]
    return "\n".join(lines) + "\n"


DOC_HEADER = """# facecast benchmarks

Appended by `facecast bench --append docs/benchmarks.md` (one section per run; newest last).
Columns: RTF = wall time / audio seconds, end to end including model loading and the MP4 encode
(< 1 is faster than real time); RTF steady = the same without the run's warm-up (everything up to
the first chunk: model loading and the first segment); fps = output frames per wall second;
first chunk = that warm-up in the measured run; TTFC = time to the first chunk of a new
`say_chunks` job in a warm process, warm-up run (pays imports) and p50/p95 of the repeated runs;
peak RSS = VmHWM of the measured run; RSS 10/50/90 % = resident memory (VmRSS, sampled every
0.5 s, alignment worker processes included) at those points of the run (flat = memory does not
grow with the input); stages in seconds per audio second (encode runs on
its own thread, overlapped with rendering, so stages do not add up to RTF); on CUDA the render
stage is also timed with CUDA events and peak VRAM is torch.cuda.max_memory_allocated.
"load" is the machine's 1-minute load average before/after each case: above the core count, other
processes were competing for the CPU and the timings are pessimistic.
"""


def append_markdown(path: Path, results: list[CaseResult], command: str, machine: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else DOC_HEADER
    if not text.endswith("\n"):
        text += "\n"
    path.write_text(text + "\n" + markdown_section(results, command, machine))


def write_json(results: list[CaseResult], path: Path, command: str, machine: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "command": command, "cases": [r.to_json() for r in results]},
                               indent=1))
