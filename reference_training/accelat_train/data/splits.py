"""The datasets a run trains on, split into train / val / test as uint8 arrays.

Three datasets: ``digits`` (scikit-learn's embedded 8x8 digits, with a fixed train/test split)
and ``cifar10`` / ``cifar100`` (read from disk by :mod:`accelat_train.data.cifar`). ``load_splits``
holds a stratified validation split out of the training set (and optionally a stratified
training subset), and measures the per-channel mean and std of the training pixels. Batching
and augmentation live in :mod:`accelat_train.data.loader`.

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

import numpy as np

from accelat_train.data.arrays import ArrayData, Decoded
from accelat_train.data.cifar import read_cifar

DATASET_NAMES = ("digits", "cifar10", "cifar100")

# Held out from the training set when val_size is None.
DEFAULT_VAL_SIZE = {"digits": 200, "cifar10": 1000, "cifar100": 1000}

# The digits train/test split is part of the benchmark's definition, so its seed is fixed and
# independent of the run's seed.
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 20220101


@dataclass(frozen=True)
class Splits:
    """Train/val/test of one dataset; ``mean``/``std`` are per channel on [0, 1] pixels of train."""

    name: str
    train: ArrayData
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

    ``train_size`` then takes a stratified subset of what is left (None: all of it).
    ``val_size`` None means ``DEFAULT_VAL_SIZE[name]``; 0 gives an empty val split.
    For CIFAR, ``data_dir`` None means ``cache_dir`` (where ``download=True`` puts the archive).

    >>> splits = load_splits("digits", train_size=500, val_size=100)
    >>> splits.train.x.shape, splits.classes[:3]
    ((500, 8, 8, 1), ('0', '1', '2'))
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"dataset must be one of {DATASET_NAMES}, got {name!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if name == "digits":
        train, test, classes = _digits()
    else:
        train, test, classes = read_cifar(name, data_dir, cache_dir=cache_dir, download=download)

    val_size = DEFAULT_VAL_SIZE[name] if val_size is None else val_size
    if not isinstance(val_size, int) or not 0 <= val_size < len(train):
        raise ValueError(f"val_size must be an int in [0, {len(train)}), got {val_size!r}")
    rng = np.random.default_rng(seed)
    val_index, rest = _stratified_split(train.y, val_size, rng)
    val = train.take(val_index)
    if train_size is not None:
        if not isinstance(train_size, int) or not 0 < train_size <= len(rest):
            raise ValueError(
                f"train_size must be an int in [1, {len(rest)}] (training set minus "
                f"{val_size} for val), got {train_size!r}"
            )
        keep, _ = _stratified_split(train.y[rest], train_size, rng)
        rest = rest[keep]
    train = train.take(rest)
    mean, std = _channel_stats(train.x)
    return Splits(name, train, val, test, classes, mean, std, augment=name != "digits")


def _digits() -> Decoded:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Values are 0..16; round(v * 255 / 16) keeps all 17 levels distinct in uint8.
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    data = ArrayData(x, bunch.target.astype(np.int64))
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    test, train = _stratified_split(data.y, round(DIGITS_TEST_FRACTION * len(data)), rng)
    return data.take(np.sort(train)), data.take(np.sort(test)), tuple(str(c) for c in range(10))


def _stratified_split(
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
    """Exact per-channel mean and std of ``x / 255`` from 256-bin histograms (no float copy)."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    mean, std = [], []
    for c in range(x.shape[-1]):
        hist = np.bincount(x[..., c].ravel(), minlength=256).astype(np.float64)
        m = float(hist @ levels / hist.sum())
        var = float(hist @ (levels - m) ** 2 / hist.sum())
        mean.append(m)
        std.append(max(var**0.5, 1e-6))
    return tuple(mean), tuple(std)
