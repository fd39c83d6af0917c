"""accelat_train: a reference adversarial trainer (Free AT, FGSM-RS, PGD, Foolbox) driven by
accelat_core policies through accelat_torch, with a command line ``accelat``.

The layout, top down: ``cli`` and ``flags`` (the command line), ``compare`` (several runs
side by side), ``training/`` (the run resolved once, then the loop), ``callbacks/`` (what
listens to the loop: checkpoints, averaging, early stopping, progress, loggers, ...),
``trained`` (``load_run``), ``reporting/`` (reports, comparisons, tables, figures),
``config`` (``TrainConfig``, the one source of flags), ``adversarial/`` (attacks, training
methods, robust evaluation), ``data/``, ``models/``, ``run_dir`` (a run's folder),
``registry`` (one record per method, attack, dataset, network, logger and optimizer),
``catalogue`` (what each ``--policy`` means), ``checkpoint`` (weights-only checkpoint files),
``atomic_writes`` (files written whole or not at all), ``deprecations`` (moved names).

>>> from accelat_train import TrainConfig, load_run, train
>>> cfg = TrainConfig(dataset="digits", method="free", eps=0.1, epochs=2, out="runs/a")
>>> train(cfg)  # doctest: +SKIP
>>> load_run("runs/a").model  # doctest: +SKIP
"""

from typing import TYPE_CHECKING, Any

from accelat_core import __version__

if TYPE_CHECKING:
    from accelat_train.adversarial.methods import METHODS, BatchStats, Method
    from accelat_train.callbacks.callback import Callback
    from accelat_train.callbacks.early_stopping import EarlyStopping
    from accelat_train.config import TrainConfig
    from accelat_train.trained import Run, load_run
    from accelat_train.training.fit import fit
    from accelat_train.training.loop import TrainingDiverged, train

#: Where each public name lives; imported on first use (PEP 562), so that ``import
#: accelat_train`` (and ``accelat --help``) does not import torch.
_LAZY = {
    "METHODS": "accelat_train.adversarial.methods",
    "BatchStats": "accelat_train.adversarial.methods",
    "Method": "accelat_train.adversarial.methods",
    "TrainConfig": "accelat_train.config",
    "Run": "accelat_train.trained",
    "load_run": "accelat_train.trained",
    "Callback": "accelat_train.callbacks.callback",
    "EarlyStopping": "accelat_train.callbacks.early_stopping",
    "fit": "accelat_train.training.fit",
    "TrainingDiverged": "accelat_train.training.loop",
    "train": "accelat_train.training.loop",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'accelat_train' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "METHODS",
    "BatchStats",
    "Callback",
    "EarlyStopping",
    "Method",
    "Run",
    "TrainConfig",
    "TrainingDiverged",
    "__version__",
    "fit",
    "load_run",
    "train",
]
