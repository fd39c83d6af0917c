"""load_splits: the digits dataset, the stratified val / train_size splits, channel stats.

The CIFAR readers are tested in test_cifar.py, the device loader in test_loader.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from accelat_train.data import load_splits
from accelat_train.data.arrays import ArrayData


def rows(x: np.ndarray) -> list[bytes]:
    """Images as sorted byte strings: compares splits as multisets, ignoring order."""
    return sorted(image.tobytes() for image in x)


# ------------------------------------------------------------------------------------ digits


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits", seed=0)


def test_digits_keep_all_seventeen_levels_and_every_image(digits):
    from sklearn.datasets import load_digits

    images = load_digits().images
    expected = np.rint(images * 255 / 16).astype(np.uint8)[..., None]
    assert digits.train.x.dtype == np.uint8 and digits.train.y.dtype == np.int64
    assert digits.train.x.shape[1:] == (8, 8, 1)
    everything = np.concatenate([digits.train.x, digits.val.x, digits.test.x])
    assert rows(everything) == rows(expected)
    assert len(np.unique(everything)) == 17
    assert not digits.augment
    assert digits.classes == tuple(str(d) for d in range(10))


def test_digits_test_split_is_fixed_and_val_comes_from_training_pool(digits):
    other = load_splits("digits", seed=1)
    np.testing.assert_array_equal(other.test.x, digits.test.x)
    np.testing.assert_array_equal(other.test.y, digits.test.y)
    assert len(digits.test) == round(0.2 * 1797)
    # train + val is the same pool for every seed; the val draw itself depends on the seed.
    pool = rows(np.concatenate([digits.train.x, digits.val.x]))
    assert pool == rows(np.concatenate([other.train.x, other.val.x]))
    assert rows(digits.val.x) != rows(other.val.x)


def test_val_and_train_subset_are_stratified(digits):
    np.testing.assert_array_equal(np.bincount(digits.val.y), np.full(10, 20))
    small = load_splits("digits", train_size=300, val_size=150, seed=3)
    pool = np.bincount(np.concatenate([digits.train.y, digits.val.y]))
    for split, size in ((small.train, 300), (small.val, 150)):
        assert len(split) == size
        share = np.bincount(split.y, minlength=10)
        assert np.all(np.abs(share - size * pool / pool.sum()) <= 1.5)


def test_mean_and_std_are_those_of_the_train_pixels(digits):
    pixels = digits.train.x.astype(np.float64) / 255
    assert digits.mean == pytest.approx(pixels.mean(axis=(0, 1, 2)), abs=1e-12)
    assert digits.std == pytest.approx(pixels.std(axis=(0, 1, 2)), abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "mnist"}, "dataset must be one of"),
        ({"name": "digits", "val_size": 5000}, "val_size must be"),
        ({"name": "digits", "train_size": 0}, "train_size must be"),
        ({"name": "digits", "train_size": 1400}, "train_size must be"),
        ({"name": "digits", "seed": -1}, "seed must be"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_splits(**kwargs)


# ------------------------------------------------------------------------------------ ArrayData


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((2, 4, 4, 1), np.float64), "x must be uint8 or float32 N x H x W x C"),
        (np.zeros((2, 4, 4), np.uint8), "x must be uint8 or float32 N x H x W x C"),
        (
            np.full((2, 4, 4, 1), 1.5, np.float32),
            r"must lie in \[0, 1\], got values in \[1.5, 1.5\]",
        ),
        (np.full((2, 4, 4, 1), np.nan, np.float32), r"must lie in \[0, 1\]"),
    ],
)
def test_array_data_takes_uint8_or_float32_pixels_in_the_unit_range_only(x, message):
    with pytest.raises(ValueError, match=message):
        ArrayData(x, np.zeros(2, np.int64))
    assert len(ArrayData(np.ones((2, 4, 4, 1), np.float32), np.zeros(2, np.int64))) == 2
