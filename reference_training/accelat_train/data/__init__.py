"""The data a run trains on: datasets split into train / val / test (``splits``), the CIFAR
readers (``cifar``), image folders (``folder``), a user's ``module:factory`` dataset
(``factory_dataset``), and the device-side batch loader (``loader``)."""

from accelat_train.data.arrays import ArrayData
from accelat_train.data.loader import DeviceLoader, stream
from accelat_train.data.splits import (
    DATASET_NAMES,
    DEFAULT_VAL_FRACTION,
    DEFAULT_VAL_SIZE,
    Splits,
    load_splits,
)

__all__ = [
    "DATASET_NAMES",
    "DEFAULT_VAL_FRACTION",
    "DEFAULT_VAL_SIZE",
    "ArrayData",
    "DeviceLoader",
    "Splits",
    "load_splits",
    "stream",
]
