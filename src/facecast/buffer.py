"""A growable audio buffer addressed by absolute sample index: what live streams and the twin's
mouth model keep of the audio they have been fed (memory stays flat however long they run)."""

from __future__ import annotations

import numpy as np


class SampleBuffer:
    """Growable [C, n] float32 buffer addressed by absolute sample index (base ... end)."""

    def __init__(self, channels: int) -> None:
        self._data = np.zeros((channels, 4096), np.float32)
        self._lo = 0   # offset of `base` in _data
        self._n = 0    # valid samples from _lo
        self.base = 0  # absolute index of the first valid sample

    @property
    def end(self) -> int:
        return self.base + self._n

    def append(self, x: np.ndarray) -> None:
        k = x.shape[1]
        if k == 0:
            return
        if self._lo + self._n + k > self._data.shape[1]:
            need = self._n + k
            if need > self._data.shape[1] // 2:
                new = np.zeros((self._data.shape[0], max(2 * need, 4096)), np.float32)
            else:
                new = self._data
            new[:, :self._n] = self._data[:, self._lo:self._lo + self._n]
            self._data, self._lo = new, 0
        self._data[:, self._lo + self._n:self._lo + self._n + k] = x
        self._n += k

    def get(self, i0: int, i1: int) -> np.ndarray:
        """Samples [i0, i1) (absolute); zeros where the buffer has none."""
        out = np.zeros((self._data.shape[0], max(i1 - i0, 0)), np.float32)
        a, b = max(i0, self.base), min(i1, self.end)
        if b > a:
            out[:, a - i0:b - i0] = self._data[:, self._lo + a - self.base:self._lo + b - self.base]
        return out

    def trim(self, before: int) -> None:
        """Forget samples before absolute index ``before``."""
        k = min(max(before - self.base, 0), self._n)
        self._lo += k
        self._n -= k
        self.base += k

    def truncate(self, end: int) -> None:
        """Drop samples from absolute index ``end`` on (pads with zeros if end is beyond)."""
        if end >= self.end:
            self.append(np.zeros((self._data.shape[0], end - self.end), np.float32))
        else:
            self._n = max(end - self.base, 0)
