"""Media stage: decoding input video and writing H.264 + AAC MP4, whole files or live fragments.

Public API (everything below is importable from ``facecast.media``)
-------------------------------------------------------------------
- ``video``: ``open_video(path, *, chunk_frames, max_side) -> VideoSource``, streaming decode to
  RGB frames on a constant frame grid.
- ``mp4``: ``Mp4Writer`` (an .mp4/.m4v/.mov that appears only when finished), ``check_output_path``,
  ``prepare_output`` (check + sweep a killed job's partial file), ``partial_path``, ``sweep_partial``,
  ``SUPPORTED_EXTENSIONS``, the ``Encoder`` protocol.
- ``fmp4``: ``Fmp4SegmentWriter`` (fragmented MP4 in memory for live streams), ``fmp4_boxes``.
- ``convert``: ``to_i420`` (RGB -> yuv420p, BT.601, on the frames' device), ``encode_jpeg``.
- ``probe``: ``probe_mp4`` (what a written file holds).
- ``aac``: ``AAC_SAMPLE_RATES``; with ``h264`` the track settings both writers share.
"""

__all__ = [
    "AAC_SAMPLE_RATES",
    "SUPPORTED_EXTENSIONS",
    "Encoder",
    "Fmp4SegmentWriter",
    "Mp4Writer",
    "VideoSource",
    "check_output_path",
    "encode_jpeg",
    "fmp4_boxes",
    "open_video",
    "partial_path",
    "prepare_output",
    "probe_mp4",
    "sweep_partial",
    "to_i420",
]

_LAZY = {
    "AAC_SAMPLE_RATES": "aac", "encode_jpeg": "convert", "to_i420": "convert", "Fmp4SegmentWriter": "fmp4",
    "fmp4_boxes": "fmp4", "SUPPORTED_EXTENSIONS": "mp4", "Encoder": "mp4", "Mp4Writer": "mp4",
    "check_output_path": "mp4", "partial_path": "mp4", "prepare_output": "mp4", "sweep_partial": "mp4",
    "probe_mp4": "probe", "VideoSource": "video", "open_video": "video",
}
"""Each name loads its module on first use: a process that only decodes (a span worker) does not
load torch (convert, fmp4) or the writers."""


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'facecast.media' has no attribute {name!r}")
