"""Audio analysis for the motion passes: per-frame loudness and voice activity (silero-vad).

Public API
----------
- ``loudness_envelope(samples16k, sample_rate, fps, num_frames, start_frame=0) -> float32 [F]``.
- ``VoiceActivity``: streaming silero-vad with per-window probabilities, a per-frame map, and
  ``first_speech`` (where a stream's speech starts, if anywhere).

Their options are ``facecast.options.LoudnessOptions`` and ``VadOptions``. Input is mono audio
at the analysis rate (``facecast.types.ANALYSIS_RATE``, 16 kHz), as ``facecast.audio`` decodes
and resamples it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import numpy as np
import torch

from facecast.options import LoudnessOptions, VadOptions

__all__ = ["VoiceActivity", "loudness_envelope"]


# --------------------------------------------------------------------------------------------
# Loudness
# --------------------------------------------------------------------------------------------


def loudness_envelope(
    samples16k: np.ndarray,
    sample_rate: int,
    fps: float,
    num_frames: int,
    start_frame: int = 0,
    *,
    samples_start: float = 0.0,
    options: LoudnessOptions = LoudnessOptions(),
) -> np.ndarray:
    """Per-frame loudness in [0, 1]: float32 [num_frames].

    samples16k: float32 [n] mono audio at ``sample_rate`` whose first sample is at
    ``samples_start`` seconds. Frame ``start_frame + k`` is at (start_frame + k) / fps; its value
    is the RMS of a ``window_seconds`` window centred there, in dBFS, mapped linearly from
    [floor_db, ceiling_db] to [0, 1] and clipped. A window reaching past the given audio uses
    the part inside it (a frame with no audio at all reads 0), so chunks cut without margins
    differ from the whole-file answer only slightly at their edges, and a chunked caller gets
    exactly the whole-file answer when each call's audio covers [first frame time - window/2,
    last frame time + window/2].
    """
    x = np.asarray(samples16k, dtype=np.float32).reshape(-1)
    if num_frames <= 0:
        return np.zeros(0, np.float32)
    win = max(1, round(options.window_seconds * sample_rate))
    # Integer sample positions on the global timeline keep whole-file and chunked rounding equal.
    centres = np.round((start_frame + np.arange(num_frames)) / fps * sample_rate).astype(np.int64)
    lo = centres - win // 2 - round(samples_start * sample_rate)
    hi = lo + win
    csum = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    lo_c = np.clip(lo, 0, x.shape[0])
    hi_c = np.clip(hi, 0, x.shape[0])
    # Mean over the part of the window that lies inside the given audio: a segment edge then
    # reads as the audio next to it rather than as a dip towards silence.
    count = hi_c - lo_c
    energy = np.where(count > 0, np.maximum(csum[hi_c] - csum[lo_c], 0.0) / np.maximum(count, 1), 0.0)
    db = 10.0 * np.log10(energy + 1e-12)
    level = (db - options.floor_db) / (options.ceiling_db - options.floor_db)
    return np.clip(level, 0.0, 1.0).astype(np.float32)


def pitch_track(
    samples16k: np.ndarray,
    sample_rate: int,
    fps: float,
    num_frames: int,
    start_frame: int = 0,
    *,
    samples_start: float = 0.0,
    window_seconds: float = 0.04,
    fmin: float = 70.0,
    fmax: float = 400.0,
) -> np.ndarray:
    """Per-frame voice pitch: float32 [num_frames], semitones above 100 Hz, NaN where no clear
    pitch (unvoiced, silence). Frames as in `loudness_envelope`.

    The normalised autocorrelation of a ``window_seconds`` window centred on each frame (one
    batched FFT for all frames), its highest peak between 1/fmax and 1/fmin seconds of lag
    (refined by a parabola); a peak under 0.45 of the window's energy is no pitch. Cheap (about
    2 ms per audio second): it drives the brows and nods, not the mouth."""
    x = np.asarray(samples16k, dtype=np.float32).reshape(-1)
    out = np.full(num_frames, np.nan, np.float32)
    if num_frames <= 0 or x.size == 0:
        return out
    win = int(round(window_seconds * sample_rate))
    centres = np.round((start_frame + np.arange(num_frames)) / fps * sample_rate).astype(np.int64)
    lo = centres - win // 2 - round(samples_start * sample_rate)
    idx = lo[:, None] + np.arange(win)[None]
    inside = (idx >= 0) & (idx < x.size)
    frames = np.where(inside, x[np.clip(idx, 0, x.size - 1)], 0.0)
    frames = frames - frames.mean(1, keepdims=True)
    n_fft = 1 << int(np.ceil(np.log2(2 * win)))
    spec = np.fft.rfft(frames * np.hanning(win)[None], n_fft)
    ac = np.fft.irfft(np.abs(spec) ** 2, n_fft)[:, :win]
    lag0 = ac[:, :1]
    a, b = int(sample_rate / fmax), min(int(sample_rate / fmin), win - 2)
    seg = ac[:, a:b + 1]
    k = np.argmax(seg, axis=1)
    peak = seg[np.arange(num_frames), k]
    ok = (lag0[:, 0] > 1e-7) & (peak > 0.45 * lag0[:, 0]) & (k > 0) & (k < seg.shape[1] - 1)
    left = seg[np.arange(num_frames), np.clip(k - 1, 0, None)]
    right = seg[np.arange(num_frames), np.clip(k + 1, None, seg.shape[1] - 1)]
    shift = 0.5 * (left - right) / np.where(np.abs(left - 2 * peak + right) > 1e-12, left - 2 * peak + right, 1.0)
    lag = a + k + np.clip(shift, -0.5, 0.5)
    f0 = sample_rate / np.maximum(lag, 1.0)
    out[ok] = (12.0 * np.log2(f0[ok] / 100.0)).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------
# Voice activity
# --------------------------------------------------------------------------------------------


def _load_silero() -> tuple[str, object]:
    """(backend name, model) from the silero_vad package's shipped files; never downloads."""
    # Importing silero_vad calls torch.set_num_threads(1) as a side effect (silero_vad/model.py);
    # restore the caller's setting so the renderer keeps its threads.
    threads = torch.get_num_threads()
    try:
        import silero_vad
    finally:
        torch.set_num_threads(threads)
    try:
        import onnxruntime  # noqa: F401  (only probing that it imports)
    except ImportError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return "jit", silero_vad.load_silero_vad(onnx=False)
    # The "sequence" export runs many 512-sample windows per ONNX call with the LSTM state as
    # explicit inputs/outputs: bit-identical to the per-window model, ~2.5x faster, and the
    # explicit state is exactly what streaming needs.
    with warnings.catch_warnings():
        # silero_vad 6 locates its model with the deprecated importlib.resources.path().
        warnings.simplefilter("ignore", DeprecationWarning)
        return "onnx", silero_vad.load_silero_vad(sequence=True)


class VoiceActivity:
    """Streaming silero-vad at 16 kHz.

    The object holds the stream state (LSTM state, 64-sample context, a < 512-sample remainder),
    so feeding consecutive pieces of one stream gives the same probabilities as feeding it whole.
    Call ``reset()`` before a new stream.

    - ``speech_probability(samples16k)`` -> float32 [k]: probabilities of the 512-sample windows
      completed by these samples (window j covers stream samples [512 j, 512 j + 512)).
    - ``flush()`` -> float32 [0 or 1]: the zero-padded last partial window.
    - ``voiced_frames(samples16k, fps, num_frames, start_frame)`` -> bool [num_frames]: feeds
      the samples, then decides frames on the video grid; consecutive calls (start_frame
      continuing where the last call ended) carry the hysteresis state.
    """

    sample_rate = 16000
    window = 512
    _context = 64

    def __init__(self, options: VadOptions = VadOptions(), *, start: float = 0.0) -> None:
        self.options = options
        self.backend, self._model = _load_silero()
        self.reset(start)

    def reset(self, start: float = 0.0) -> None:
        """Start a new stream whose first sample is at ``start`` seconds."""
        self._start = float(start)
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._ctx = np.zeros(self._context, np.float32)
        self._rest = np.zeros(0, np.float32)
        if self.backend == "jit":
            self._model.reset_states()
        # Probability history for voiced_frames: _hist[i] is window _hist_first + i.
        self._hist = np.zeros(0, np.float32)
        self._hist_first = 0
        self._next_frame: int | None = None
        self._on = False
        self._low_run = 0

    def speech_probability(self, samples16k: np.ndarray) -> np.ndarray:
        x = np.asarray(samples16k, dtype=np.float32).reshape(-1)
        data = np.concatenate([self._rest, x]) if self._rest.size else x
        n_win = data.shape[0] // self.window
        self._rest = data[n_win * self.window :].copy()
        probs = self._run(data[: n_win * self.window].reshape(n_win, self.window))
        self._remember(probs)
        return probs

    def flush(self) -> np.ndarray:
        if self._rest.size == 0:
            return np.zeros(0, np.float32)
        last = np.zeros((1, self.window), np.float32)
        last[0, : self._rest.size] = self._rest
        self._rest = np.zeros(0, np.float32)
        probs = self._run(last)
        self._remember(probs)
        return probs

    def first_speech(self, chunks: Iterable[np.ndarray], threshold: float = 0.5) -> float | None:
        """Seconds from the start of a stream (16 kHz mono pieces, in order) to the first
        512-sample window whose speech probability reaches ``threshold``, or None when there is
        none: whether ``voiced_frames`` over the same stream would find any speech, decided
        without keeping the probabilities (memory stays flat) and stopping at the first speech.
        The last partial window is not scored, as in ``voiced_frames``. The stream is reset
        (to its start time) before and after."""
        start = self._start
        self.reset(start)
        try:
            done = 0  # windows scored
            for piece in chunks:
                x = np.asarray(piece, dtype=np.float32).reshape(-1)
                data = np.concatenate([self._rest, x]) if self._rest.size else x
                n_win = data.shape[0] // self.window
                self._rest = data[n_win * self.window :].copy()
                probs = self._run(data[: n_win * self.window].reshape(n_win, self.window))
                hit = np.flatnonzero(probs >= threshold)
                if hit.size:
                    return (done + int(hit[0])) * self.window / self.sample_rate
                done += n_win
            return None
        finally:
            self.reset(start)

    def _run(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities of full windows [k, 512], advancing the stream state."""
        out = []
        for i in range(0, windows.shape[0], self.options.max_block_windows):
            block = windows[i : i + self.options.max_block_windows]
            if self.backend == "onnx":
                # Each window is prefixed with the last 64 samples of the previous one (silero's
                # context); the first uses the context carried over from the previous call.
                ctx = np.empty((block.shape[0], self._context), np.float32)
                ctx[0] = self._ctx
                ctx[1:] = block[:-1, -self._context :]
                probs, self._h, self._c = self._model.session.run(
                    ["speech_probs", "hn", "cn"],
                    {"input": np.concatenate([ctx, block], axis=1), "h": self._h, "c": self._c},
                )
                out.append(np.asarray(probs, np.float32).reshape(-1))
            else:
                # The JIT model keeps its state and context inside; one call per window.
                with torch.inference_mode():
                    probs = [float(self._model(torch.from_numpy(w.copy())[None], self.sample_rate)) for w in block]
                out.append(np.array(probs, np.float32))
            self._ctx = block[-1, -self._context :].copy()
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _remember(self, probs: np.ndarray) -> None:
        self._hist = np.concatenate([self._hist, probs]) if self._hist.size else probs

    def voiced_frames(
        self,
        samples16k: np.ndarray,
        fps: float,
        num_frames: int,
        start_frame: int = 0,
        threshold: float = 0.5,
    ) -> np.ndarray:
        """bool [num_frames]: is frame start_frame + k (at its time / fps) speech?

        ``samples16k`` continues the stream (after ``reset()`` for a new one). A frame's score
        is the max probability of the windows overlapping its [t - 0.5/fps, t + 0.5/fps)
        interval; frames beyond the audio fed so far reuse the last known probability. Then
        hysteresis (enter at ``threshold``, leave below ``threshold - release``) and a causal
        hangover fill short dips.
        """
        self.speech_probability(samples16k)
        if num_frames <= 0:
            return np.zeros(0, bool)
        if self._next_frame != start_frame:
            self._on, self._low_run = False, 0  # not a continuation: start the smoother afresh
        scores = self._frame_scores(fps, num_frames, start_frame)
        hangover = max(1, round(self.options.hangover_seconds * fps))
        low = threshold - self.options.release
        out = np.zeros(num_frames, bool)
        on, low_run = self._on, self._low_run
        for k, p in enumerate(scores):
            if p >= threshold:
                on, low_run = True, 0
            elif on:
                low_run = low_run + 1 if p < low else 0
                if low_run > hangover:
                    on, low_run = False, 0
            out[k] = on
        self._on, self._low_run = on, low_run
        self._next_frame = start_frame + num_frames
        self._trim(fps)
        return out

    def _frame_scores(self, fps: float, num_frames: int, start_frame: int) -> np.ndarray:
        t = (start_frame + np.arange(num_frames)) / fps - self._start
        per_window = self.window / self.sample_rate
        j0 = np.floor((t - 0.5 / fps) / per_window).astype(np.int64)
        j1 = np.ceil((t + 0.5 / fps) / per_window).astype(np.int64)  # exclusive
        avail_lo, avail_hi = self._hist_first, self._hist_first + self._hist.size
        if avail_hi == avail_lo:
            return np.zeros(num_frames, np.float32)
        # Frames past the audio fed so far hold the last probability (the streaming lag).
        j0 = np.clip(j0, avail_lo, avail_hi - 1)
        j1 = np.clip(j1, j0 + 1, avail_hi)
        scores = np.zeros(num_frames, np.float32)
        span = int((j1 - j0).max())
        for d in range(span):
            idx = np.minimum(j0 + d, j1 - 1) - self._hist_first
            scores = np.maximum(scores, self._hist[idx])
        return scores

    def _trim(self, fps: float) -> None:
        """Forget windows that end before the next frame's interval (keeps memory flat)."""
        t = self._next_frame / fps - 0.5 / fps - self._start
        keep_from = int(math.floor(t * self.sample_rate / self.window)) - 1
        drop = min(max(0, keep_from - self._hist_first), max(0, self._hist.size - 1))
        if drop:
            self._hist = self._hist[drop:].copy()
            self._hist_first += drop
