"""A live video face: the ``Session`` of a real video of the person, beside StreamSession (a
portrait) and TwinSession (a twin).

The speech side is the portrait session's, unchanged (input tape, VAD, live phones, look-ahead,
motion per frame, barge-in with its fade, idle frames on the clock); only the render differs: each
frame is the video's frame for that time, played back and forth from low-motion points, with the
lower face redrawn for the frame's mouth (``dubbing.videoface``: the person's own mouths from the
video, or the mesh warp). The video is opened, tracked and decoded once (``VideoFace``); any
number of sessions share it.
"""

from __future__ import annotations

from ..options import StreamOptions
from .session import Render, StreamSession

__all__ = ["VideoSession"]


class VideoSession(StreamSession):
    """One live stream over a video face.

    face: a prepared ``dubbing.videoface.VideoFace`` (share one across sessions), or a video path
        (opened at ``options.size``, its face ``options.face_index``; tracked once per process).
    render: ``MotionFrames -> VideoFrames`` (default: the face's own renderer for this stream);
        voice: as StreamSession. Frames are the video's size scaled to ``options.size`` on the
        longer side (aspect kept), not square. Everything else is StreamSession's.
    """

    def __init__(self, face, options: StreamOptions = StreamOptions(), *, render: Render | None = None,
                 voice=None) -> None:
        from ..dubbing.videoface import VideoFace, open_video_face

        self._owns_face = not isinstance(face, VideoFace)
        if self._owns_face:
            face = open_video_face(face, size=options.size, face_index=options.face_index)
        self.face = face
        try:
            if render is None:
                render = face.renderer(options.fps, options.render).render
            super().__init__(face.portrait, options, render=render, voice=voice)
        except BaseException:
            self._release()
            raise

    def close(self):
        """StreamSession.close; a face this session opened itself (from a path) is closed too
        (its temporary file goes)."""
        try:
            return super().close()
        finally:
            self._release()

    def _release(self) -> None:
        if self._owns_face:
            self.face.close()
