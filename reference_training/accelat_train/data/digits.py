"""scikit-learn's embedded 8x8 digits (the ``digits`` dataset): 1797 grey images, 10 classes,
no download, with a fixed train/test split that is part of the benchmark's definition.

>>> train, test, classes = read_digits(None)
>>> train.x.shape, test.x.shape, classes[:3]
((1438, 8, 8, 1), (359, 8, 8, 1), ('0', '1', '2'))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from accelat_train.data.arrays import ArrayData, Decoded
from accelat_train.data.splits import stratified_split
from accelat_train.extras import needs_extra

# The digits train/test split is part of the benchmark's definition, so its seed is fixed and
# independent of the run's seed.
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 20220101


def read_digits(
    data_dir: str | Path | None = None, *, cache_dir: str | Path | None = None,
    download: bool = False,
) -> Decoded:  # fmt: skip
    """(train, test, classes) of the digits; it reads no ``data_dir`` (its record refuses one)."""
    with needs_extra("the digits dataset"):
        from sklearn.datasets import load_digits

    bunch = load_digits()
    # Values are 0..16; round(v * 255 / 16) keeps all 17 levels distinct in uint8.
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    data = ArrayData(x, bunch.target.astype(np.int64))
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    test, train = stratified_split(data.y, round(DIGITS_TEST_FRACTION * len(data)), rng)
    return data.take(np.sort(train)), data.take(np.sort(test)), tuple(str(c) for c in range(10))
