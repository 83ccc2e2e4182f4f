"""`facecast loadtest`: simulated live clients through the multi-stream engine."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..outputs import check_output_files
from .app import DEMO_TEXT, app, fail, setup_logging


@app.command("loadtest")
def loadtest_cmd(
    faces: Optional[list[Path]] = typer.Argument(None, help="Portraits (images), videos of the person or twins (.twin files), told by their content; stream s talks as face s % N. Default: the bundled sample (scikit-image's astronaut)."),
    streams: int = typer.Option(2, "--streams", help="Simulated clients talking at once."),
    seconds: float = typer.Option(10.0, "--seconds", help="How long each client talks."),
    size: int = typer.Option(512, "--size"),
    device: str = typer.Option("cpu", "--device"),
    workers: int = typer.Option(1, "--workers", help="Motion worker processes."),
    encoders: int = typer.Option(1, "--encoders", help="Encoder processes."),
    portraits: Optional[Path] = typer.Option(None, "--portraits", help="Also pre-framed portraits (.npz, for machines without mediapipe)."),
    speech: Optional[Path] = typer.Option(None, "--speech", help="Speech: an audio file or a .npz of 16 kHz samples. Default: the demo text spoken by the bundled voice."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result as JSON."),
) -> None:
    """N simulated clients feed real speech in real time; per-stream fps, late frames, latency."""
    setup_logging(False)
    import json

    import numpy as np

    from ..errors import FacecastError, InputError
    from ..live.loadtest import portraits_from_npz, run_loadtest, speech_from_text
    from ..live.options import EngineOptions, LoadTestOptions

    try:
        check_output_files(("--json", json_out, None), inputs=(("--portraits", portraits), ("--speech", speech),
                                                              *(("face", f) for f in faces or ())))
        chosen: list = list(faces or [])
        if portraits is not None:
            chosen += portraits_from_npz(portraits)
        if not chosen:
            from skimage import data

            chosen = [data.astronaut()]
        if speech is None:
            samples = speech_from_text(DEMO_TEXT)
        elif speech.suffix == ".npz":
            samples = np.load(speech)["samples"]
        else:
            from ..audio import load_audio

            if not speech.exists():
                raise InputError(f"{speech}: speech file not found. Pass --speech FILE.")
            samples = load_audio(speech).samples[0]
        engine = EngineOptions(size=size, device=device, workers=workers, encoders=encoders)
        result = run_loadtest(chosen, samples, LoadTestOptions(streams=streams, seconds=seconds, engine=engine))
    except FacecastError as exc:
        fail(exc)
    text = json.dumps(result, indent=1)
    if json_out:
        json_out.write_text(text)
    Console().print_json(text)
