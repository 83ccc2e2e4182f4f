"""facecast twin: a person-specific photoreal model trained from minutes of their video.

Public API (loaded on first use, so ``import facecast.twin`` pulls in neither torch nor OpenCV):

- ``train_twin(videos, output, TwinTrainOptions(...))``: train and write a .twin file
  (``facecast.twin.pipeline``: track -> prepare -> mouth -> net -> package).
- ``load_twin(path)``: read and verify a .twin file (``facecast.twin.file``).
- ``Twin.load(path)``: a twin ready to render (``facecast.twin.generate``).

Modules, in the order data flows through them:

- ``options``   TwinTrainOptions, PrepOptions, RenderTrainOptions
- ``points``    the 53-point mouth layout every model shares
- ``prepare``   footage -> tracked, stabilised mouth crops, audio, speech map
- ``features``  audio -> per-frame log-mel windows
- ``mouth``     features -> mouth landmarks (MouthConfig, MouthModel, train_mouth)
- ``net``       the lower-face U-Net (RenderConfig, RenderNet), its sketch, frame <-> crop geometry
- ``train``     the U-Net's training (train_renderer)
- ``pipeline``  train_twin: the passes above end to end
- ``file``      the .twin file (weights, configs, background loop, content hash)
- ``generate``  a loaded Twin speaking (say_twin); ``live`` streams it
"""

from __future__ import annotations

__all__ = ["Twin", "TwinTrainOptions", "load_twin", "train_twin"]


def __getattr__(name: str):
    if name == "train_twin":
        from facecast.twin.pipeline import train_twin

        return train_twin
    if name == "TwinTrainOptions":
        from facecast.twin.options import TwinTrainOptions

        return TwinTrainOptions
    if name == "load_twin":
        from facecast.twin.file import load_twin

        return load_twin
    if name == "Twin":
        from facecast.twin.generate import Twin

        return Twin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
