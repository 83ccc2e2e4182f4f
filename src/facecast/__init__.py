"""facecast: lip-synced talking heads from a portrait and speech, offline and faster than real time.

    facecast.say(portrait, output, text=... | audio=..., options=SayOptions())   -> Path
    facecast.say_chunks(portrait, text=... | audio=...)                           -> Iterator[SayChunk]
    facecast.stream(portrait, source, options=StreamOptions())                    -> AsyncIterator[StreamChunk]
    facecast.dub(video, output, audio=... | text=..., options=DubOptions())       -> Path
    facecast.dub_chunks(video, audio=... | text=...)                               -> Iterator[SayChunk]

The names load their modules on first use, so `import facecast` stays cheap.
"""

__version__ = "0.1.0"

_LAZY = {"say": "pipeline", "say_chunks": "pipeline", "stream": "stream", "StreamSession": "stream",
         "SayOptions": "options", "StreamOptions": "options", "dub": "dubbing.pipeline", "dub_chunks": "dubbing.pipeline",
         "DubOptions": "options"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'facecast' has no attribute {name!r}")
