"""`facecast dub`: re-lip-sync an existing video of a person to new speech.

    dub(video, output, audio=... | text=..., options=DubOptions()) -> Path
    dub_chunks(video, audio=... | text=..., options=DubOptions())   -> Iterator[SayChunk]
    FootageSource: tracked footage as a FaceSource (the seam `say` and `dub` share)
    DubReport: what a job did (frames dubbed, passed through, looped ...)

Modules, lower to higher: track (the face through the video, streaming), trackfile (a video's
track computed once and reused: a file keyed by the video's SHA-256, replayed without
mediapipe), footage (decode + track + the back-and-forth timeline), mask (feathered lower-face
mask, compositing), calibrate (this speaker's mouth), learned (this speaker's audio-to-mouth
model from the video's own speech, fused with the phones), mouths (the person's own mouths from
the video), source (FootageSource), pipeline (dub, dub_chunks), videoface (a video of the person
as a live face: facecast.live.video_session).

The names load their modules on first use, so `import facecast.dubbing` is cheap (the CLI's `dub` command is in cli/dub.py).
"""

__all__ = ["dub", "dub_chunks", "DubReport", "FootageSource"]

_LAZY = {"dub": "pipeline", "dub_chunks": "pipeline", "DubReport": "source", "FootageSource": "source"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'facecast.dubbing' has no attribute {name!r}")
