"""facecast.live: talking heads from speech as it arrives, one stream or many.

    messages      typed input (AudioIn, TextIn, SpeechIn, Interrupt, EndInput) and output (StreamChunk)
    session       the Session protocol; StreamSession (a portrait)
      audio_in      the input tape: resamplers, analysis + output buffers, source regions
      listener      VAD decisions and phones of the live input
      phones        LivePhones: pocketsphinx with partial hypotheses
      text          SentenceSplitter: sentences as they complete
    twin_session  TwinSession (a twin: facecast.twin's model, live)
    video_session VideoSession (a video of the person: dubbing.videoface's footage, looped, re-lip-synced)
    driver        stream(): the asyncio driver of one session; open_session(): the one factory
    engine        Engine: many sessions, batched rendering, worker and encoder processes
      hosts         where sessions run (motion worker processes or this one): WorkItems out
      scheduler     the render loop: batched launches, fetch, dispatch, the streams' outboxes
      batching      PortraitBatch (BatchRenderer, CUDA graphs), TwinBatch (Twin.render_indexed),
                    VideoBatch (a video face's streams)
      encoders      EncoderPool: fMP4 encoder processes fed through shared memory
    loadtest      run_loadtest: simulated clients against an Engine
    options       check_options (StreamOptions), EngineOptions, LoadTestOptions

Imports go one way: messages, text, phones, audio_in <- listener <- session, twin_session, video_session <-
driver, hosts <- batching, encoders <- scheduler <- engine <- loadtest; the model package
facecast.twin never imports from here.

The names below load their modules on first use.
"""

_LAZY = {
    "AudioIn": "messages", "TextIn": "messages", "SpeechIn": "messages", "Interrupt": "messages",
    "INTERRUPT": "messages", "EndInput": "messages", "StreamChunk": "messages",
    "Session": "session", "StreamSession": "session", "TwinSession": "twin_session", "VideoSession": "video_session",
    "stream": "driver", "open_session": "driver", "Engine": "engine", "run_loadtest": "loadtest",
    "EngineOptions": "options", "LoadTestOptions": "options",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'facecast.live' has no attribute {name!r}")
