"""The data a run trains on: datasets split into train / val / test (``splits``), each
dataset's reader (``digits``, ``cifar``, ``folder``; their records are
:data:`accelat_train.registry.DATASETS`), a user's ``module:factory`` dataset
(``factory_dataset``) or arrays given to ``fit`` (``given``), and the device-side batch loader
(``loader``)."""

from accelat_train.data.arrays import ArrayData
from accelat_train.data.loader import DeviceLoader, stream
from accelat_train.data.splits import DEFAULT_VAL_FRACTION, Splits, load_splits

__all__ = [
    "DEFAULT_VAL_FRACTION",
    "ArrayData",
    "DeviceLoader",
    "Splits",
    "load_splits",
    "stream",
]
