"""What a live session's fragmented MP4 holds, read from its boxes (ISO/IEC 14496-12).

``Fmp4Info.feed(data)`` takes the bytes the engine hands out (the init segment, then whole
moof+mdat fragments) and returns how many video frames they carry; after the init segment
``mime`` is the Media Source Extensions type of the stream (``video/mp4; codecs="avc1.64001f,
mp4a.40.2"``), read from the avcC and esds boxes rather than assumed.
"""

from __future__ import annotations

import struct

__all__ = ["Fmp4Info", "boxes"]

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf"}


def boxes(data: bytes, start: int = 0, end: int | None = None):
    """(type, payload start, payload end) of the boxes in data[start:end], in order."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            size, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            raise ValueError(f"fMP4: box {kind!r} at {pos} of {size} bytes runs past the data ({end})")
        yield kind, pos + head, pos + size
        pos += size


def _find(data: bytes, start: int, end: int, path: tuple[bytes, ...]):
    """Payload spans of the boxes at ``path`` below data[start:end]."""
    for kind, a, b in boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                yield a, b
            else:
                yield from _find(data, a, b, path[1:])


def _descriptor(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, payload start, payload end) of an MPEG-4 descriptor (esds) at pos."""
    tag, size, pos = data[pos], 0, pos + 1
    for _ in range(4):
        byte = data[pos]
        pos += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, pos, pos + size


def _audio_object_type(data: bytes, a: int, b: int) -> int:
    """AAC audio object type from an esds payload (2 = AAC LC); 2 when it cannot be read."""
    try:
        tag, p, _ = _descriptor(data, a + 4)  # after version/flags
        if tag != 3:
            return 2
        flags = data[p + 2]
        p += 3 + (2 if flags & 0x80 else 0) + (1 + data[p + 3] if flags & 0x40 else 0) + (2 if flags & 0x20 else 0)
        tag, p, _ = _descriptor(data, p)
        if tag != 4:
            return 2
        tag, p, _ = _descriptor(data, p + 13)
        return data[p] >> 3 if tag == 5 else 2
    except IndexError:
        return 2


class Fmp4Info:
    """Reads a live fMP4 as it passes: the codecs of its init segment, frames per fragment."""

    def __init__(self) -> None:
        self.mime: str | None = None
        self.video_track: int | None = None
        self.frames = 0  # video frames in the fragments seen so far

    def feed(self, data: bytes) -> int:
        """Video frames in ``data`` (whole boxes: the init segment and/or fragments)."""
        n = 0
        for kind, a, b in boxes(data):
            if kind == b"moov":
                self._init(data, a, b)
            elif kind == b"moof":
                for ta, tb in _find(data, a, b, (b"traf",)):
                    track = next((struct.unpack_from(">I", data, x + 4)[0]
                                  for x, _ in _find(data, ta, tb, (b"tfhd",))), None)
                    if track == self.video_track:
                        n += sum(struct.unpack_from(">I", data, x + 4)[0] for x, _ in _find(data, ta, tb, (b"trun",)))
        self.frames += n
        return n

    def _init(self, data: bytes, a: int, b: int) -> None:
        codecs = []
        for ta, tb in _find(data, a, b, (b"trak",)):
            handler = next((data[x + 8:x + 12] for x, _ in _find(data, ta, tb, (b"mdia", b"hdlr"))), b"")
            tkhd = next(_find(data, ta, tb, (b"tkhd",)))[0]
            track = struct.unpack_from(">I", data, tkhd + (20 if data[tkhd] == 1 else 12))[0]
            for sa, sb in _find(data, ta, tb, (b"mdia", b"minf", b"stbl", b"stsd")):
                for kind, ea, eb in boxes(data, sa + 8, sb):  # after version/flags and entry count
                    if handler == b"vide" and kind in (b"avc1", b"avc3"):
                        self.video_track = track
                        for ca, _ in _find(data, ea + 78, eb, (b"avcC",)):
                            codecs.insert(0, f"{kind.decode()}.{data[ca + 1]:02x}{data[ca + 2]:02x}{data[ca + 3]:02x}")
                    elif handler == b"soun" and kind == b"mp4a":
                        aot = next((_audio_object_type(data, x, y) for x, y in _find(data, ea + 28, eb, (b"esds",))), 2)
                        codecs.append(f"mp4a.40.{aot}")
        if self.video_track is None:
            raise ValueError("fMP4 init segment without an H.264 video track")
        self.mime = f'video/mp4; codecs="{", ".join(codecs)}"'
