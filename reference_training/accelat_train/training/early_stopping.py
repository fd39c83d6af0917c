"""Moved: early stopping is :mod:`accelat_train.callbacks.early_stopping`
(``accelat_train.EarlyStopping``); importing it from here warns until 0.4."""

from accelat_train.deprecations import moved

__getattr__ = moved(__name__, {
    "EarlyStopping": ("accelat_train.callbacks.early_stopping:EarlyStopping",
                      "accelat_train.EarlyStopping"),
    "METRICS": ("accelat_train.callbacks.early_stopping:METRICS",
                "accelat_train.callbacks.early_stopping.METRICS"),
})  # fmt: skip
