"""``ArrayData``: one split of a dataset as images and int64 labels in host memory.

The one type every reader returns (``splits.py`` for digits, ``cifar.py`` for CIFAR, ``folder.py``
for image folders, ``factory_dataset.py`` for a user's factory) and the loader consumes
(``loader.py``). Images are uint8 (0..255 stands for [0, 1]); only a user's factory data that 8 bits
would round are float32 in [0, 1]. It lives on its own so that the split logic can import the
readers and the readers can build ``ArrayData`` without importing each other.

>>> import numpy as np
>>> part = ArrayData(np.zeros((3, 8, 8, 1), np.uint8), np.arange(3))
>>> len(part.take(np.array([0, 2])))
2
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ArrayData:
    """One split in host memory: ``x`` N x H x W x C, uint8 or float32 in [0, 1]; ``y`` int64 N."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.dtype not in (np.uint8, np.float32) or self.x.ndim != 4:
            raise ValueError(
                f"x must be uint8 or float32 N x H x W x C, got {self.x.dtype} {self.x.shape}"
            )
        if self.x.dtype == np.float32 and self.x.size:
            lo, hi = float(self.x.min()), float(self.x.max())
            if not (lo >= 0.0 and hi <= 1.0):  # NaN fails both
                raise ValueError(f"float32 x must lie in [0, 1], got values in [{lo}, {hi}]")
        if self.y.dtype != np.int64 or self.y.shape != (len(self.x),):
            raise ValueError(
                f"y must be int64 of shape ({len(self.x)},), got {self.y.dtype} {self.y.shape}"
            )

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> ArrayData:
        return ArrayData(self.x[index], self.y[index])


#: (train, test, class names) of a dataset as read, before any val / train_size split.
Decoded = tuple[ArrayData, ArrayData, tuple[str, ...]]
