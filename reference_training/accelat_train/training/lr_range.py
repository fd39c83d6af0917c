"""Moved: the trainer's lr range test is :mod:`accelat_train.training.lr_finder`; importing
its names from here warns until 0.4."""

from accelat_train.deprecations import moved

__getattr__ = moved(__name__, {
    name: (f"accelat_train.training.lr_finder:{name}", f"accelat_train.training.lr_finder.{name}")
    for name in ("Finding", "find_lr", "finder_smooth", "finder_steps", "run_finder",
                 "MIN_STEPS", "MAX_STEPS", "START_LR", "END_LR", "FALLBACK_LR_MAX")
})  # fmt: skip
