"""Reused chunk arrays for the drawn frames.

A fresh array for every chunk of frames costs a page fault per 4 KiB on first touch (measured on
the 2-core machine: ~1.5-20 ms per 1080p frame to fill a fresh array, ~0.5 ms to fill one in
use before), more than the rest of the frame copy. ``ChunkArrays`` hands out arrays that are
used again once nothing refers to them any more (the encoder is done with their frames).
"""

from __future__ import annotations

import sys

import numpy as np


class ChunkArrays:
    """uint8 [n, H, W, 3] arrays for chunks of at most ``frames`` frames, reused: an array is
    handed out again only when no view of it, no tensor made from it, nothing at all refers to it
    (every numpy view holds its owner, so the owner's reference count says so exactly). At most
    ``keep`` arrays are held for reuse; beyond that a chunk gets a plain new array. Used from
    one thread (the one that draws)."""

    def __init__(self, size: tuple[int, int], frames: int, keep: int):
        W, H = size
        self.shape = (max(1, frames), H, W, 3)
        self.keep = max(0, keep)
        self._owners: list[np.ndarray] = []

    def get(self, n: int) -> np.ndarray:
        if n > self.shape[0]:
            return np.empty((n,) + self.shape[1:], np.uint8)
        for owner in self._owners:
            # References: the list, the loop variable, getrefcount's argument. Anything more is
            # a view or tensor still in use (the encoder's queue, a caller's copy of the chunk).
            if sys.getrefcount(owner) <= 3:
                return owner[:n]
        if len(self._owners) < self.keep:
            self._owners.append(np.empty(self.shape, np.uint8))
            return self._owners[-1][:n]
        return np.empty((n,) + self.shape[1:], np.uint8)

    @property
    def held(self) -> int:
        """Arrays held for reuse (in use or free)."""
        return len(self._owners)

    def clear(self) -> None:
        self._owners = []
