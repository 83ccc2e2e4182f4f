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

from facecast.media.aac import AAC_SAMPLE_RATES
from facecast.media.convert import encode_jpeg, to_i420
from facecast.media.fmp4 import Fmp4SegmentWriter, fmp4_boxes
from facecast.media.mp4 import (SUPPORTED_EXTENSIONS, Encoder, Mp4Writer, check_output_path, partial_path,
                                prepare_output, sweep_partial)
from facecast.media.probe import probe_mp4
from facecast.media.video import VideoSource, open_video

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
