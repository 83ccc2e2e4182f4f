"""facecast: lip-synced talking heads from a portrait and speech, offline and faster than real time.

    facecast.say(portrait, output, text=... | audio=..., options=SayOptions())   -> Path
    facecast.say_chunks(portrait, text=... | audio=...)                           -> Iterator[SayChunk]
    facecast.stream(portrait, source, options=StreamOptions())                    -> AsyncIterator[StreamChunk]
    facecast.dub(video, output, audio=... | text=..., options=DubOptions())       -> Path
    facecast.dub_chunks(video, audio=... | text=...)                               -> Iterator[SayChunk]

The names load their modules on first use, so `import facecast` stays cheap.
"""

import os as _os

__version__ = "0.1.0"

# onnxruntime (Piper's voice, silero-VAD) starts Microsoft's 1DS telemetry when it is imported,
# which writes a `.ses` session file into $TMPDIR on every run. facecast runs offline and leaves
# nothing behind: switch it off before anything imports onnxruntime (its own env switch; the
# Python call disable_telemetry_events() comes too late, after the import). Worker processes
# import facecast first, so they inherit it.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

_LAZY = {"say": "pipeline", "say_chunks": "pipeline", "stream": "live.driver", "StreamSession": "live.session",
         "Engine": "live.engine", "SayOptions": "options", "StreamOptions": "options", "dub": "dubbing.pipeline",
         "dub_chunks": "dubbing.pipeline", "DubOptions": "dubbing.options"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'facecast' has no attribute {name!r}")
