"""Options of twin training: frozen dataclasses built at the edge (CLI, scripts) and passed down.

``TwinTrainOptions`` (``train_twin``) holds a ``PrepOptions`` (``prepare``) and a
``RenderTrainOptions`` (``train_renderer``). The network shapes saved in a .twin file
(``RenderConfig``, ``MouthConfig``) live with their models in ``net`` and ``mouth``.

Every numeric field has a range (``RANGES``, see ``facecast.options.Range``), checked on
construction: OptionError naming ``Class.field`` and the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from facecast.errors import OptionError
from facecast.options import MAX_SEED, Range, check_ranges
from facecast.twin.net import RenderConfig

__all__ = ["PrepOptions", "RenderTrainOptions", "TwinTrainOptions"]


@dataclass(frozen=True)
class PrepOptions:
    """How training footage is checked and cut into mouth crops (``prepare``).

    crop_px: mouth-crop side in pixels, a multiple of 16 in 16 ... 1024 (the renderer halves it
        4 times; the same as ``RenderConfig.size``).
    crop_iod: the crop's side in inter-ocular distances (IOD), > 0 ... 10 (1.6 IOD at 336 px =
        210 px per IOD, the pixel density of a 512-px face crop spanning 2.4 IOD).
    min_iod_px: a face whose eyes are closer than this many source pixels is too small
        (> 0 ... 10000).
    min_speech_s: seconds of voiced material needed over all clips (0 ... 36000).
    max_missing: fraction of a clip's frames allowed without a face (0 ... 1).
    cut_jump_iod: a jump of the stable landmarks (eye corners, nose bridge) between consecutive
        frames larger than this (median, in IOD, > 0 ... 10) is a cut between shots; the clip is
        split there.
    min_segment_s: pieces between cuts/face losses shorter than this many seconds (and than 2
        frames) are dropped (0 ... 600).
    """

    crop_px: int = 336
    crop_iod: float = 1.6
    min_iod_px: float = 40.0
    min_speech_s: float = 30.0
    max_missing: float = 0.2
    cut_jump_iod: float = 0.25
    min_segment_s: float = 1.0

    RANGES: ClassVar[dict] = {
        "crop_px": Range(16, 1024, "pixels", integer=True, step=16),
        "crop_iod": Range(0, 10, "IOD", lo_open=True),
        "min_iod_px": Range(0, 10000, "pixels", lo_open=True),
        "min_speech_s": Range(0, 36000, "s"),
        "max_missing": Range(0, 1),
        "cut_jump_iod": Range(0, 10, "IOD", lo_open=True),
        "min_segment_s": Range(0, 600, "s"),
    }

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class RenderTrainOptions:
    """How the lower-face network is trained (``train_renderer``).

    config: the network's shape (``RenderConfig``; its ``size`` must equal the crops' side).
    steps: optimiser steps (1 ... 10_000_000); seconds: wall-time budget in seconds (> 0 ...
        604800, a week), None = steps only. The learning-rate schedule follows whichever of the
        two ends first.
    batch: crops per step (1 ... 4096; 16 on a GPU, 2-4 for CPU smoke tests).
    lr: AdamW peak learning rate (> 0 ... 1; cosine decay to 5 % of it).
    shift: jitter amplitude of the translation, in crop sides (0 ... 0.5; 0.02 = up to +-2 % of
        the crop). scale: jitter amplitude of the scale, relative (0 ... <1; 0.03 = +-3 %).
    seed: seeds initialisation, batches and jitter (0 ... 2**32 - 1; ``train_twin`` sets it from
        its own seed).
    checkpoint: file the model, optimiser and step are saved to every ``checkpoint_every`` steps
        (1 ... 10_000_000) and resumed from; None = no checkpoint (``train_twin`` sets it in its
        work folder).
    context_swap: fraction (0 ... 1) of samples whose context (everything outside the
        regenerated region) comes from another frame of the same shot, up to ``context_frames``
        (0 ... 100000) frames away. Why: at inference the context is a background loop whose own jaw and
        cheeks do something else; a network that always saw matching context learns to read the
        jaw from it (measured: the loop's original mouth leaks into the output) instead of from
        the sketch.
    """

    config: RenderConfig = RenderConfig()
    steps: int = 6000
    seconds: float | None = None
    batch: int = 16
    lr: float = 4e-4
    shift: float = 0.02
    scale: float = 0.03
    seed: int = 0
    checkpoint: str | None = None
    checkpoint_every: int = 500
    context_swap: float = 0.25
    context_frames: int = 15

    RANGES: ClassVar[dict] = {
        "steps": Range(1, 10_000_000, "steps", integer=True),
        "seconds": Range(0, 604800, "s", lo_open=True, optional=True),
        "batch": Range(1, 4096, integer=True),
        "lr": Range(0, 1, lo_open=True),
        "shift": Range(0, 0.5),
        "scale": Range(0, 1, hi_open=True),
        "seed": Range(0, MAX_SEED, integer=True),
        "checkpoint_every": Range(1, 10_000_000, "steps", integer=True),
        "context_swap": Range(0, 1),
        "context_frames": Range(0, 100000, "frames", integer=True),
    }

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class TwinTrainOptions:
    """Everything ``train_twin`` needs besides the videos and the output path.

    device: "auto" | "cpu" | "cuda[:N]" (asking for CUDA without it is an error).
    prep: footage checks and crops (``PrepOptions``).
    render: renderer training (``RenderTrainOptions``; its ``seconds`` is the time budget, its
        ``checkpoint`` and ``seed`` are set from the work folder and ``seed`` here).
    mouth_steps: mouth-model optimiser steps (1 ... 10_000_000); None: ``MouthConfig.steps`` (800).
    holdout: (video file name or stem, fraction 0 < f < 1): the last fraction of that clip is
        kept out of training and of the background (for evaluation); None uses everything.
    background_max_s: seconds (> 0 ... 600) of looping background footage stored in the file.
    work_dir: cache folder for tracks and checkpoints (default: OUTPUT.work next to the output),
        which makes an interrupted run resume.
    seed: seeds the mouth and renderer training (0 ... 2**32 - 1).
    mouth_folds: folds (0 ... 20) of the mouth model's output-gain calibration
        (``mouth.calibrate_gain``: that many extra mouth trainings); 0 leaves the gain at 1.
    """

    device: str = "auto"
    prep: PrepOptions = PrepOptions()
    render: RenderTrainOptions = RenderTrainOptions(steps=6000, seconds=360.0)
    mouth_steps: int | None = None
    holdout: tuple[str, float] | None = None
    background_max_s: float = 16.0
    work_dir: str | None = None
    seed: int = 0
    mouth_folds: int = 3

    RANGES: ClassVar[dict] = {
        "mouth_steps": Range(1, 10_000_000, "steps", integer=True, optional=True),
        "background_max_s": Range(0, 600, "s", lo_open=True),
        "seed": Range(0, MAX_SEED, integer=True),
        "mouth_folds": Range(0, 20, integer=True),
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.holdout is not None:
            ok = (isinstance(self.holdout, tuple) and len(self.holdout) == 2 and isinstance(self.holdout[0], str)
                  and self.holdout[0] != "" and Range(0, 1, lo_open=True, hi_open=True).allows(self.holdout[1]))
            if not ok:
                raise OptionError("TwinTrainOptions.holdout", self.holdout,
                                  "(video name, fraction) with 0 < fraction < 1", none_ok=True)
