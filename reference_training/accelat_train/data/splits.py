"""The datasets a run trains on, split into train / val / test as ``ArrayData`` (uint8 images).

The datasets are the records of :data:`accelat_train.registry.DATASETS`, each read by its own
module: ``digits`` (scikit-learn's embedded 8x8 digits, with a fixed train/test split,
:mod:`accelat_train.data.digits`), ``cifar10`` / ``cifar100`` (read from disk by
:mod:`accelat_train.data.cifar`), ``folder`` (any image folder ``train/<class>/*`` +
``test/<class>/*`` or a tarball of one, read by :mod:`accelat_train.data.folder`); besides
them a user's ``"module:factory"`` (:mod:`accelat_train.data.factory_dataset`).
``load_splits`` holds a stratified validation split
out of the training set (and optionally a stratified training subset), and measures the
per-channel mean and std of the training pixels. Batching and augmentation live in
:mod:`accelat_train.data.loader`; augmentation (random crop and flip) is on for images of
16 px or more on each side (``AUGMENT_MIN_SIZE``): CIFAR, and most image folders, but not digits.

Example::

    from accelat_train.data.loader import DeviceLoader

    splits = load_splits("digits", val_size=200, seed=0)
    loader = DeviceLoader(splits.train, batch_size=128, augment=splits.augment, seed=0)
    for x, y in loader.epoch(0):  # x: float32 B x C x H x W in [0, 1], y: int64
        ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from accelat_train.data.arrays import ArrayData
from accelat_train.data.factory_dataset import read_factory_dataset
from accelat_train.factory import FACTORY_SYNTAX, is_factory_name
from accelat_train.registry import DATASETS

if TYPE_CHECKING:
    from torch.utils.data import Dataset


# Held out from the training set when val_size is None: the dataset record's ``val_size``, else
# DEFAULT_VAL_FRACTION of the training images (rounded), as for a folder or a factory's dataset.
DEFAULT_VAL_FRACTION = 0.1
# Random crop (4 px padding) and flip only for images at least this large on each side: on 8x8
# digits a 4 px shift moves half the picture out of view.
AUGMENT_MIN_SIZE = 16


@dataclass(frozen=True)
class Splits:
    """Train/val/test of one dataset; ``mean``/``std`` are per channel on [0, 1] pixels of train."""

    name: str
    train: ArrayData | Dataset[Any]  # a map-style dataset only in fit's given splits
    val: ArrayData
    test: ArrayData
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool


def load_splits(
    name: str,
    data_dir: str | Path | None = None,
    *,
    train_size: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
    download: bool = False,
    cache_dir: str | Path | None = None,
) -> Splits:
    """Load ``name`` and split it: val is held out of the training set, stratified by ``seed``.

    ``name`` is a registered dataset or a user's ``"module:factory"`` (see
    :mod:`accelat_train.data.factory_dataset`; called with ``data_dir=`` when one is given).
    ``train_size`` then takes a stratified subset of what is left (None: all of it).
    ``val_size`` None means the dataset record's ``val_size`` (200 for digits, 1000 for CIFAR),
    or where it has none (``folder``, a factory) ``DEFAULT_VAL_FRACTION`` (10 %) of the
    training images; 0 gives an empty val split.
    For CIFAR, ``data_dir`` None means ``cache_dir`` (where ``download=True`` puts the archive);
    ``folder`` needs ``data_dir``. Decoded image folders are cached in ``cache_dir``.

    >>> splits = load_splits("digits", train_size=500, val_size=100)
    >>> splits.train.x.shape, splits.classes[:3]
    ((500, 8, 8, 1), ('0', '1', '2'))
    """
    entry = DATASETS.get(name)
    if entry is None and not is_factory_name(name):
        raise ValueError(
            f"dataset must be one of {tuple(DATASETS)} or {FACTORY_SYNTAX}, got {name!r}"
        )
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if entry is None:
        train, test, classes = read_factory_dataset(name, data_dir)
    else:
        train, test, classes = entry.load()(data_dir, cache_dir=cache_dir, download=download)
    if val_size is None:
        own = None if entry is None else entry.val_size
        val_size = round(DEFAULT_VAL_FRACTION * len(train)) if own is None else own
    return split_validation(
        name, train, test, classes, val_size=val_size, train_size=train_size, seed=seed
    )


def split_validation(
    name: str,
    train: ArrayData,
    test: ArrayData | None,
    classes: tuple[str, ...],
    *,
    val_size: int,
    train_size: int | None,
    seed: int,
    val: ArrayData | None = None,
) -> Splits:
    """:class:`Splits` of a dataset as read: ``val_size`` images held out of ``train``
    (stratified, by ``seed``) unless ``val`` is given, then a stratified ``train_size`` of
    the rest; without ``test``, the test split is the validation split."""
    if not isinstance(val_size, int) or not 0 <= val_size < len(train):
        raise ValueError(f"val_size must be an int in [0, {len(train)}), got {val_size!r}")
    rng = np.random.default_rng(seed)
    val_index, rest = stratified_split(train.y, val_size, rng)
    val = train.take(val_index) if val is None else val
    if train_size is not None:
        if not isinstance(train_size, int) or not 0 < train_size <= len(rest):
            raise ValueError(
                f"train_size must be an int in [1, {len(rest)}] (training set minus "
                f"{val_size} for val), got {train_size!r}"
            )
        keep, _ = stratified_split(train.y[rest], train_size, rng)
        rest = rest[keep]
    train = train.take(rest)
    mean, std = _channel_stats(train.x)
    augment = min(train.x.shape[1:3]) >= AUGMENT_MIN_SIZE
    return Splits(name, train, val, val if test is None else test, classes, mean, std, augment)


def stratified_split(
    y: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (picked, rest): ``k`` picked at random with each class in proportion (±1)."""
    order = rng.permutation(len(y))
    classes, inverse, counts = np.unique(y[order], return_inverse=True, return_counts=True)
    # Position of each element within its class, in shuffled order, as a fraction of the class:
    # sorting by it interleaves the classes evenly, so any prefix is stratified.
    rank = np.empty(len(y), dtype=np.int64)
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        rank[members] = np.arange(len(members))
    key = (rank + 0.5) / counts[inverse]
    order = order[np.argsort(key, kind="stable")]
    return order[:k], order[k:]


def _channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (floored at 1e-6) of the pixels as values in [0, 1]."""
    moments = [_moments(x[..., c]) for c in range(x.shape[-1])]
    return tuple(m for m, _ in moments), tuple(max(s, 1e-6) for _, s in moments)


def _moments(channel: np.ndarray) -> tuple[float, float]:
    """Mean and std of one channel: exact from a 256-bin histogram for uint8 ``channel / 255``
    (no float copy); in float64 for float32 pixels."""
    if channel.dtype != np.uint8:
        values = channel.astype(np.float64)
        return float(values.mean()), float(values.std())
    levels = np.arange(256, dtype=np.float64) / 255.0
    hist = np.bincount(channel.ravel(), minlength=256).astype(np.float64)
    mean = float(hist @ levels / hist.sum())
    return mean, float(hist @ (levels - mean) ** 2 / hist.sum()) ** 0.5
