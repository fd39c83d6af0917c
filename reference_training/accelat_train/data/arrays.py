"""``ArrayData``: one split of a dataset as uint8 images and int64 labels in host memory.

The one type every reader returns (``data.py`` for digits, ``cifar.py`` for CIFAR) and the
loader consumes (``loader.py``). It lives on its own so that the split logic can import the
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
    """One split in host memory: ``x`` uint8 N x H x W x C, ``y`` int64 N."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.dtype != np.uint8 or self.x.ndim != 4:
            raise ValueError(f"x must be uint8 N x H x W x C, got {self.x.dtype} {self.x.shape}")
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
