"""Data given in Python (:func:`accelat_train.fit`): your own training, validation and test
images, as ``(x, y)`` arrays or tensors, or as a map-style ``torch.utils.data.Dataset``.

- ``(x, y)``: ``x`` uint8 N x H x W x C, or floating N x C x H x W in [0, 1] (torch's
  layout); ``y`` integer labels. Checked and stored as :class:`ArrayData`, as a
  ``module:factory`` dataset is (:mod:`accelat_train.data.factory_dataset`).
- a ``Dataset`` of ``(image, label)`` with images C x H x W (uint8, or float in [0, 1]): the
  training set streams through a ``DataLoader`` in a seeded order
  (:class:`~accelat_train.data.loader.DatasetLoader`); the validation and test images a run
  evaluates are read into memory once (``val_size`` and ``eval_size`` of them, or all).

Without ``val``, ``val_size`` images (default 10 %) are held out of ``train``, stratified for
arrays; without ``test``, the final evaluation runs on ``val`` (its report says so in the
config's ``test_is_val``). Classes default to ``"0" .. str(max label)``.

>>> import numpy as np
>>> x = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
>>> splits = given_splits((x, np.arange(40) % 2), val_size=10, seed=0)
>>> len(splits.train), len(splits.val), splits.classes
(30, 10, ('0', '1'))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from accelat_train.data.arrays import ArrayData
from accelat_train.data.factory_dataset import check_pair, classes_of
from accelat_train.data.splits import DEFAULT_VAL_FRACTION, Splits, split_validation


def given_splits(
    train: Any,
    val: Any = None,
    test: Any = None,
    *,
    classes: tuple[str, ...] | None = None,
    val_size: int | None = None,
    train_size: int | None = None,
    seed: int = 0,
) -> Splits:
    """:class:`Splits` of data given in Python (the module docstring)."""
    if isinstance(train, torch.utils.data.Dataset):
        return _dataset_splits(train, val, test, classes, val_size, train_size, seed)
    labels = _labels(train, val, test)
    names = classes_of("fit", classes or _default_classes(labels))
    data = check_pair("fit", "train", train, len(names))
    if val is None:
        size = round(DEFAULT_VAL_FRACTION * len(data)) if val_size is None else val_size
        return split_validation("given", data, _array(test, names), names,
                                val_size=size, train_size=train_size, seed=seed)  # fmt: skip
    held = check_pair("fit", "val", val, len(names))
    tested = held if test is None else check_pair("fit", "test", test, len(names))
    return split_validation("given", data, tested, names, val_size=0, train_size=train_size,
                            seed=seed, val=held)  # fmt: skip


def _array(test: Any, names: tuple[str, ...]) -> ArrayData | None:
    return None if test is None else check_pair("fit", "test", test, len(names))


def _labels(*parts: Any) -> list[int]:
    """The largest label of each given ``(x, y)`` pair."""
    return [int(np.asarray(p[1]).max()) for p in parts if p is not None and len(p[1])]


def _default_classes(labels: list[int]) -> tuple[str, ...]:
    return tuple(str(c) for c in range(max(max(labels, default=1), 1) + 1))


def _dataset_splits(
    train: torch.utils.data.Dataset, val: Any, test: Any, classes: tuple[str, ...] | None,
    val_size: int | None, train_size: int | None, seed: int,
) -> Splits:  # fmt: skip
    """Splits of a map-style dataset: the training part stays a dataset, val and test are read."""
    order = np.random.default_rng(seed).permutation(len(train))  # type: ignore[arg-type]
    if val is None:
        size = round(DEFAULT_VAL_FRACTION * len(order)) if val_size is None else val_size
        val, order = torch.utils.data.Subset(train, order[:size].tolist()), order[size:]
    if train_size is not None:
        order = order[:train_size]
    held = _read(val)
    tested = held if test is None else _read(test)
    names = classes or _default_classes([int(held.y.max()), int(tested.y.max())])
    subset = torch.utils.data.Subset(train, sorted(order.tolist()))
    first, _ = subset[0]
    channels = int(torch.as_tensor(first).shape[0])
    return Splits("given", subset, held, tested, tuple(names), (0.0,) * channels,
                  (1.0,) * channels, augment=False)  # fmt: skip


def _read(data: Any) -> ArrayData:
    """A validation or test split in memory: a dataset read item by item, or ``(x, y)``."""
    if not isinstance(data, torch.utils.data.Dataset):
        return check_pair("fit", "val/test", data, 1 + int(np.asarray(data[1]).max()))
    items = [data[i] for i in range(len(data))]  # type: ignore[arg-type]
    x = torch.stack([torch.as_tensor(image) for image, _ in items])
    y = np.asarray([int(label) for _, label in items], dtype=np.int64)
    pixels = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    return ArrayData(np.ascontiguousarray(pixels.permute(0, 2, 3, 1).numpy()), y)
