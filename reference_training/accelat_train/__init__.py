"""accelat_train: a reference adversarial trainer (Free AT, FGSM-RS, PGD, Foolbox) driven by
accelat_core policies through accelat_torch, with a command line ``accelat``.

>>> from accelat_train import TrainConfig, train
>>> cfg = TrainConfig(dataset="digits", method="free", eps=0.1, epochs=2, out="runs/a")
>>> train(cfg)  # doctest: +SKIP
"""

from accelat_train.loop import METHODS, BatchStats, Method, TrainConfig, TrainingDiverged, train

__all__ = ["METHODS", "BatchStats", "Method", "TrainConfig", "TrainingDiverged", "train"]
