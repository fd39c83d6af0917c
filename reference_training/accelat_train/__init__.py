"""accelat_train: a reference adversarial trainer (Free AT, FGSM-RS, PGD, Foolbox) driven by
accelat_core policies through accelat_torch, with a command line ``accelat``.

The rooms: ``config`` (TrainConfig, the one source of flags), ``methods`` (training methods
and pass counting), ``policies`` (the trainer's default policies), ``setup``, ``lr_finder``,
``evaluation``, ``resume``, ``run`` (the epoch loop), ``compare`` (the comparison engine),
``load`` (``load_run``), ``data``/``cifar``/``loader``, ``models``, ``attacks``, ``report``,
``plots``, ``cli``.

>>> from accelat_train import TrainConfig, load_run, train
>>> cfg = TrainConfig(dataset="digits", method="free", eps=0.1, epochs=2, out="runs/a")
>>> train(cfg)  # doctest: +SKIP
>>> load_run("runs/a").model  # doctest: +SKIP
"""

from accelat_train.adversarial.methods import METHODS, BatchStats, Method
from accelat_train.config import TrainConfig
from accelat_train.trained import Run, load_run
from accelat_train.training.loop import TrainingDiverged, train

__all__ = [
    "METHODS",
    "BatchStats",
    "Method",
    "Run",
    "TrainConfig",
    "TrainingDiverged",
    "load_run",
    "train",
]
