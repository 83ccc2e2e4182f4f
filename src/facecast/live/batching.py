"""The Engine's renderers: the due frames of many streams in one launch.

``PortraitBatch`` renders every portrait stream of an engine: on CUDA one ``BatchRenderer``
holding all faces, replayed from CUDA graphs (one per batch-size bucket), with frames converted
to yuv420p inside the graph for the encoders; on a CPU one ``MeshRenderer`` per stream (the
OpenCV fast path: batching across streams buys nothing there). ``TwinBatch`` renders the
streams of one twin with ``Twin.render_indexed``; ``VideoBatch`` the streams of one video face
(dubbing.videoface: each stream's own mouth drawer over the shared footage, on the host). All
take WorkItems and return the frames of
all of them, in order, on the device (the caller fetches them to the host).
"""

from __future__ import annotations

import numpy as np
import torch

from ..types import MOTION_PARAMS, MotionFrames, Portrait
from .hosts import WorkItem

__all__ = ["PortraitBatch", "TwinBatch", "VideoBatch"]


class PortraitBatch:
    """Portrait streams of one size on one device. i420: frames as yuv420p (None: on CUDA when
    size % 4 == 0; off on a CPU, where swscale inside the encoder is faster)."""

    def __init__(self, size: int, device: str, dtype: str, max_batch: int, i420: bool | None) -> None:
        from ..device import resolve_device

        self.size = size
        self.device = resolve_device(device)
        self.cuda = self.device.type == "cuda"
        self.i420 = (size % 4 == 0 if i420 is None else bool(i420)) if self.cuda else bool(i420)
        self.buckets = tuple(b for b in (8, 16, 32, 64, 128, 256) if b <= max_batch) or (max_batch,)
        self._renderer = None
        self._graphed = None
        self._faces: dict[int, int] = {}               # stream -> face id in the BatchRenderer
        self._face_of: dict[int, tuple[Portrait, int]] = {}  # id(portrait) -> (portrait, face id)
        self._cpu: dict = {}                           # stream -> MeshRenderer
        if self.cuda:
            from ..render import BatchRenderer, image_dtype

            self._renderer = BatchRenderer((size, size), device=device, dtype=image_dtype(dtype))

    def add(self, stream: int, portrait: Portrait, render_options) -> None:
        H, W = portrait.image.shape[:2]
        if (W, H) != (self.size, self.size):
            raise ValueError(f"portrait is {W}x{H}, this engine renders {self.size}x{self.size} (EngineOptions.size)")
        if not self.cuda:
            from ..render import MeshRenderer

            self._cpu[stream] = MeshRenderer(portrait, render_options)
            return
        known = self._face_of.get(id(portrait))
        if known is None:  # a face per portrait: streams of the same portrait share it
            known = self._face_of[id(portrait)] = (portrait, self._renderer.add(portrait))
            self._graphed = None  # the graphs hold the old face tables: capture again
        self._faces[stream] = known[1]

    def remove(self, stream: int) -> None:
        """Forget the stream (its face stays registered: BatchRenderer cannot drop one)."""
        self._faces.pop(stream, None)
        self._cpu.pop(stream, None)

    def warm_up(self) -> None:
        """Capture every bucket's CUDA graph now (a capture takes a while: before clients arrive)."""
        if self.cuda and self._faces:
            graphed = self._graphs()
            for b in graphed.buckets:
                graphed.render(torch.zeros(b, dtype=torch.long), torch.zeros(b, len(MOTION_PARAMS)))

    def _graphs(self):
        if self._graphed is None:
            from ..render import GraphedBatchRenderer

            # Frames leave the GPU as yuv420p (converted inside the graph): half the bytes of RGB
            # through pinned and shared memory, and no swscale in the encoder processes.
            self._graphed = GraphedBatchRenderer(self._renderer, buckets=self.buckets, i420=self.i420)
        return self._graphed

    def render(self, items: list[WorkItem]) -> torch.Tensor:
        """uint8 frames of all ``items`` in order: RGB [N, H, W, 3], or yuv420p [N, H*3/2, W]."""
        if self.cuda:
            ids = torch.cat([torch.full((it.num_frames,), self._faces[it.stream], dtype=torch.long) for it in items])
            params = torch.from_numpy(np.concatenate([it.params for it in items]))
            return self._graphs().render(ids, params)
        from ..media import to_i420

        out = []
        for it in items:
            video = self._cpu[it.stream].render(MotionFrames(it.params, it.fps, it.first_frame))
            out.append(to_i420(video).data if self.i420 else video.frames)
        return out[0] if len(out) == 1 else torch.cat(out)


class TwinBatch:
    """The streams of one twin (on the twin's device; RGB frames)."""

    def __init__(self, twin) -> None:
        self.twin = twin
        self.device = twin.device
        self.cuda = twin.device.type == "cuda"
        self.i420 = False

    def warm_up(self) -> None:
        self.twin.warm_up()  # a serving process warms up once at start, before clients arrive

    def render(self, items: list[WorkItem]) -> torch.Tensor:
        mouth = np.concatenate([it.params for it in items])
        index = np.concatenate([self.twin.background_index(it.first_frame + np.arange(it.num_frames), it.fps)
                                for it in items])
        return self.twin.render_indexed(mouth, index)


class VideoBatch:
    """The streams of one video face (dubbing.videoface.VideoFace): the footage and its mouths
    are shared, each stream has its own drawer (its picks depend on its past frames). The frames
    are drawn on the host (RGB; the mesh mouth's warp on ``render_options.device``)."""

    def __init__(self, face) -> None:
        self.face = face
        self.device = torch.device("cpu")
        self.cuda = False
        self.i420 = False
        self._streams: dict = {}  # stream -> VideoFaceRenderer

    def add(self, stream: int, fps: float, render_options) -> None:
        self._streams[stream] = self.face.renderer(fps, render_options)

    def remove(self, stream: int) -> None:
        self._streams.pop(stream, None)

    def warm_up(self) -> None:
        pass  # nothing to compile: the footage is decoded and tracked when the face is prepared

    def render(self, items: list[WorkItem]) -> torch.Tensor:
        out = [self._streams[it.stream].render(MotionFrames(it.params, it.fps, it.first_frame)).frames for it in items]
        return out[0] if len(out) == 1 else torch.cat(out)
