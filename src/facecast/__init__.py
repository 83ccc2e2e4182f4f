"""facecast: lip-synced talking heads from a portrait and speech, offline and faster than real time."""

__version__ = "0.1.0"
