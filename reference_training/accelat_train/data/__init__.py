"""The data a run trains on: datasets split into train / val / test (``splits``), each
dataset's reader (``digits``, ``cifar``, ``folder``; their records are
:data:`accelat_train.registry.DATASETS`), a user's ``module:factory`` dataset
(``factory_dataset``) or arrays given to ``fit`` (``given``), and the device-side batch loader
(``loader``)."""

from accelat_train.data.arrays import ArrayData
from accelat_train.data.loader import DeviceLoader, stream
from accelat_train.data.splits import DEFAULT_VAL_FRACTION, Splits, load_splits
from accelat_train.deprecations import moved
from accelat_train.registry import DATASETS

__all__ = [
    "DEFAULT_VAL_FRACTION",
    "ArrayData",
    "DeviceLoader",
    "Splits",
    "load_splits",
    "stream",
]


#: Names that became the dataset records' (deprecated since 0.2, gone in 0.4).
__getattr__ = moved(__name__, {
    "DATASET_NAMES": (lambda: tuple(DATASETS), "tuple(accelat_train.registry.DATASETS)"),
    "DEFAULT_VAL_SIZE": (
        lambda: {n: e.val_size for n, e in DATASETS.items() if e.val_size is not None},
        "accelat_train.registry.DATASETS[name].val_size",
    ),
})  # fmt: skip
