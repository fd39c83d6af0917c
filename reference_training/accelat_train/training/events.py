"""Moved: the listeners' base class and what they see are in :mod:`accelat_train.callbacks`
(``Callback``, ``Callbacks``, ``RunView``); importing them from here warns until 0.4."""

from accelat_train.deprecations import moved

__getattr__ = moved(__name__, {
    "Callback": ("accelat_train.callbacks.callback:Callback", "accelat_train.Callback"),
    "Callbacks": ("accelat_train.callbacks.callback:Callbacks",
                  "accelat_train.callbacks.callback.Callbacks"),
    "Trainer": ("accelat_train.callbacks.callback:RunView",
                "accelat_train.callbacks.callback.RunView"),
})  # fmt: skip
