"""MotionFrames + Portrait -> frames: a landmark-driven dense warp of the portrait.

How a frame is drawn (all batched over frames, torch, same code on CPU and CUDA):

1. Landmark displacements [B, L, 2] (`rig`): each motion parameter moves groups of face-mesh
   landmarks in a face-aligned frame measured in inter-ocular distances (jaw drop moves lower lip,
   chin and jaw line; spread/round move the mouth corners; blink brings each upper lid to its lower
   lid; head pose rotates the landmarks in 3D about a neck pivot). Two rings of control points
   around the head follow the head partly, and points on the image border never move: the
   background and the picture's edges stay put.
2. Dense forward displacement on a half-resolution grid (`warp`): a fixed sparse matrix of
   barycentric weights (Delaunay triangulation of the rest landmarks, once per face: frames
   drawn over per-frame base pictures keep its triangles, `MeshRig.rebase`) times the landmark
   displacements.
3. Inversion: the warp needs, for each output pixel, where to read in the portrait. Newton steps
   on  s + d(s) = x  on the coarse grid invert the (small, smooth) forward field.
4. One bilinear `grid_sample` of the portrait at full resolution (`mesh.MeshRenderer`; OpenCV's
   remap on the CPU).
5. Painting: the lips redrawn per pixel from the portrait's own lips between the moved lip
   contours, and the mouth interior where they part (`mouth`); in a blink the upper lid drawn
   over the squeezed eye with the lash line along its margin (`lids`).

The work per frame is two small sparse/coarse ops and one full-resolution sample, so a 2-core
CPU renders 512x512 frames faster than real time and a GPU renders thousands per second.

Modules, lower to higher: `warp` (geometry on tensors) <- `rig` (one face's motion maps),
`mouth` and `lids` (blinks) <- `mesh` (one portrait, `MeshRenderer`) <- `batched` (many faces per
launch, CUDA graphs: `BatchRenderer`, `GraphedRenderer`).
"""

from .batched import BatchRenderer, GraphedBatchRenderer, GraphedRenderer, PinnedFetcher, image_dtype
from .mesh import MeshRenderer, Renderer, batch_frames
from .rig import MeshRig, RigTensors, displace

__all__ = ["Renderer", "MeshRenderer", "BatchRenderer", "GraphedBatchRenderer", "GraphedRenderer", "PinnedFetcher",
           "image_dtype", "batch_frames", "MeshRig", "RigTensors", "displace"]
