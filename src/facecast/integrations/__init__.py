"""facecast inside other frameworks: a local avatar for voice agents.

    avatar    AvatarStream: a live session (portrait or twin, echo mode) as one RGB frame with
              its PCM per video frame on a wall clock; AvatarOptions; prepare_face
    pipecat   FacecastVideoService: a pipecat FrameProcessor that turns the bot's TTS audio into
              OutputImageRawFrames with the audio passed on in step (needs the ``pipecat`` extra)

Imports go one way: avatar <- pipecat; nothing in facecast imports from here. The names below
load their modules on first use (so ``import facecast.integrations`` needs no pipecat).
"""

_LAZY = {
    "AvatarFrame": "avatar", "AvatarOptions": "avatar", "AvatarStream": "avatar", "prepare_face": "avatar",
    "FacecastVideoService": "pipecat",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'facecast.integrations' has no attribute {name!r}")
