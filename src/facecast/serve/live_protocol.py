"""The `WS /v1/live` protocol: typed control messages in, events out, close codes.

Client -> server: JSON text messages (``parse_control``) and binary PCM frames (``pcm_audio``):

    {"type": "start", "face_id": "...", "fps": 25, "sample_rate": 16000, "voice": "default",
     "fragment_frames": 5, "size": 512}                       -> Start
    {"type": "text", "text": "Hello there."}                   -> Text
    {"type": "interrupt"}                                      -> Interrupt (barge-in)
    {"type": "end"}                                            -> End
    <binary> 16-bit little-endian mono PCM at Start.sample_rate (echo mode)

Server -> client: JSON events (``event``) and binary fragmented MP4 (the init segment, then
moof+mdat fragments). docs/serving-live.md is the reference; this module is its code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import ClassVar, Union

import numpy as np

from ..errors import OptionError
from ..options import Choice, Range, check_ranges

__all__ = ["CLOSE_AUTH", "CLOSE_BUSY", "CLOSE_ERROR", "CLOSE_NORMAL", "CLOSE_POLICY", "CLOSE_TOO_BIG",
           "CLOSE_TOKEN_LIMIT", "MAX_TEXT_CHARS", "VOICES", "ControlMessage", "End", "Interrupt", "ProtocolError",
           "Start", "Text", "event", "parse_control", "pcm_audio"]

# WebSocket close codes the server uses (RFC 6455 7.4.1; 4000-4999 are the application's).
CLOSE_NORMAL = 1000      # the session ended (after the "ended" event)
CLOSE_POLICY = 1008      # bad input on the socket (unknown message, bad JSON, audio before start ...)
CLOSE_TOO_BIG = 1009     # a message over the size limits
CLOSE_ERROR = 1011       # the session failed inside the server (the error event says why)
CLOSE_BUSY = 1013        # "try again later": the server runs ServeOptions.live_streams sessions
CLOSE_AUTH = 4401        # no or wrong token (the HTTP 401 of a socket)
CLOSE_TOKEN_LIMIT = 4429  # this token already runs its live sessions (the HTTP 429 of a socket)

MAX_TEXT_CHARS = 2000    # one "text" message
MAX_CONTROL_BYTES = 16_384  # one JSON message
VOICES = ("default",)    # the bundled Piper voice (en_US-joe-medium)


class ProtocolError(Exception):
    """Bad input on the socket: sent as an error event (``code``, one-line ``message``), then the
    socket is closed with ``close_code``."""

    def __init__(self, code: str, message: str, close_code: int = CLOSE_POLICY) -> None:
        super().__init__(message)
        self.code, self.message, self.close_code = code, message, close_code


@dataclass(frozen=True)
class Start:
    """Open the session. face_id: an uploaded face or twin (GET /v1/faces). fps: frames per
    second, 10 ... 60. sample_rate: Hz of the PCM the client sends, 8000 ... 48000.
    voice: who speaks "text" messages (VOICES). fragment_frames: frames per MP4 fragment
    (a keyframe each; the player gets a fragment when it is complete: 5 = 0.2 s at 25 fps),
    1 ... 50. size: optional; the frame size is the server's (ServeOptions.live_size), a
    different value is refused."""

    face_id: str
    fps: float = 25.0
    sample_rate: int = 16000
    voice: str = "default"
    fragment_frames: int = 5
    size: int | None = None

    RANGES: ClassVar[dict] = {
        "fps": Range(10, 60, "frames per second"),
        "sample_rate": Range(8000, 48000, "Hz", integer=True),
        "voice": Choice(VOICES),
        "fragment_frames": Range(1, 50, "frames", integer=True),
        "size": Range(16, 4096, "pixels", integer=True, step=2, optional=True),
    }

    def __post_init__(self) -> None:
        if not isinstance(self.face_id, str) or not self.face_id or len(self.face_id) > 200:
            raise OptionError("start.face_id", self.face_id, "the id of an uploaded face (GET /v1/faces)")
        check_ranges(self)


@dataclass(frozen=True)
class Text:
    """A sentence (or several) for the avatar to speak with the session's voice."""

    text: str


@dataclass(frozen=True)
class Interrupt:
    """Barge-in: drop the speech not yet shown; the avatar closes its mouth within ~0.1 s."""


@dataclass(frozen=True)
class End:
    """No more input: the rest is spoken, then the "ended" event and a normal close."""


ControlMessage = Union[Start, Text, Interrupt, End]


def parse_control(raw: str | bytes) -> ControlMessage:
    """One JSON control message -> its typed form; ProtocolError saying what is wrong."""
    if len(raw) > MAX_CONTROL_BYTES:
        raise ProtocolError("too_big", f"control message of {len(raw)} bytes; at most {MAX_CONTROL_BYTES}",
                            CLOSE_TOO_BIG)
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_json", f"control message is not JSON ({exc}); send e.g. "
                                        '{"type": "text", "text": "Hello."}') from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("bad_message", 'control message must be a JSON object with a "type" '
                                           "(start, text, interrupt or end)")
    kind = msg.pop("type")
    cls = {"start": Start, "text": Text, "interrupt": Interrupt, "end": End}.get(kind)
    if cls is None:
        raise ProtocolError("unknown_type", f"unknown message type {kind!r}; expected start, text, interrupt or end")
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(msg) - allowed)
    if unknown:
        raise ProtocolError("unknown_field", f"{kind}: unknown field(s) {', '.join(unknown)}; allowed: "
                                             f"{', '.join(sorted(allowed)) or 'none'}")
    if cls is Text:
        text = msg.get("text")
        if not isinstance(text, str) or not any(ch.isalnum() for ch in text):
            raise ProtocolError("bad_field", 'text: "text" must be a string with words to speak')
        if len(text) > MAX_TEXT_CHARS:
            raise ProtocolError("too_big", f"text: {len(text)} characters; at most {MAX_TEXT_CHARS} per message "
                                           "(send long text as several messages)", CLOSE_TOO_BIG)
        return Text(text)
    if cls is Start:
        if "face_id" not in msg:
            raise ProtocolError("bad_field", 'start: "face_id" is required (an id from GET /v1/faces)')
        try:
            return Start(**msg)
        except OptionError as exc:
            raise ProtocolError("bad_field", f"start: {exc}") from None
    return cls()


def pcm_audio(data: bytes, sample_rate: int, max_bytes: int):
    """A binary frame of 16-bit little-endian mono PCM -> float32 [1, n] AudioChunk."""
    from ..types import AudioChunk  # (facecast.types loads torch: not at the server's start)

    if len(data) > max_bytes:
        raise ProtocolError("too_big", f"audio frame of {len(data)} bytes; at most {max_bytes} (1 s of 16-bit "
                                       f"mono at {sample_rate} Hz): send smaller frames, e.g. 20-100 ms",
                            CLOSE_TOO_BIG)
    if len(data) % 2:
        raise ProtocolError("bad_audio", f"audio frame of {len(data)} bytes: 16-bit PCM needs an even number of "
                                         "bytes (mono, little-endian int16)")
    if not data:
        raise ProtocolError("bad_audio", "empty audio frame")
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    return AudioChunk(samples[None, :], int(sample_rate))


def event(kind: str, **fields_) -> str:
    """A server event as the JSON text sent: {"type": kind, ...}."""
    return json.dumps({"type": kind, **fields_}, separators=(",", ":"))
