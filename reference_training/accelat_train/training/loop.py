"""The training loop: train an epoch, measure, let the policy decide; then the final test.

Units and conventions (they matter for comparing policies):

- **Epoch = epoch-equivalent.** One epoch is one pass of gradient work over the training
  set. For Free AT with ``m`` replays it is ``ceil(len(loader) / m)`` minibatches, each
  replayed ``m`` times, taken from a running stream of loader epochs (the next epoch
  continues where this one stopped), so every method does about ``len(loader)`` weight
  updates per epoch.
- **Gradient passes** are counted by :mod:`accelat_train.adversarial.methods`; under DDP
  the count is summed over ranks.
- **Scheduler unit**: see :mod:`accelat_train.training.run_schedule`.

Everything that is not the algorithm listens to the loop's events
(:mod:`accelat_train.callbacks.callback`; the listeners and their order:
:mod:`accelat_train.training.listeners`): the checkpoints and ``best.pt``, progress, the
overfitting rollback, weight averaging, the report, and the caller's ``callbacks``. The run
folder's layout is :class:`~accelat_train.run_dir.RunDir`'s.

>>> from accelat_train import TrainConfig, train
>>> train(TrainConfig(dataset="digits", eps=0.1, epochs=2, out="runs/a"))  # doctest: +SKIP
PosixPath('runs/a')
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from accelat_train.callbacks.callback import Callback
from accelat_train.callbacks.loggers import make_loggers
from accelat_train.config import TrainConfig, finder_setting, found_lr_max, setting_differences
from accelat_train.data import Splits
from accelat_train.run_dir import RunDir
from accelat_train.training import distributed
from accelat_train.training.build import build, resolve_device
from accelat_train.training.listeners import listeners
from accelat_train.training.lr_finder import resolve_lr_max
from accelat_train.training.resume import Opened, open_run
from accelat_train.training.trainer import Trainer, TrainingDiverged

__all__ = ["Trainer", "TrainingDiverged", "train"]


def train(
    cfg: TrainConfig,
    *,
    callbacks: Sequence[Callback] = (),
    quiet: bool = False,
    resume: bool = False,
    restart: bool = False,
    model: torch.nn.Module | None = None,
    data: Splits | None = None,
) -> Path:
    """Train ``cfg`` into the folder ``cfg.out``; return it.

    A folder that holds any file of a run is never overwritten:
    ``resume=True`` continues the run there (only a run of the same config, from a
    checkpoint that passes its schema, reproducing the uninterrupted run's metrics on CPU;
    a new ``epochs`` extends a run that does not depend on its budget), ``restart=True``
    moves it to a new folder ``OUT.previous-N`` and starts over, and without either it is
    refused (:mod:`accelat_train.training.resume`). The loggers ``cfg.log`` names
    (:func:`~accelat_train.callbacks.loggers.make_loggers`) and ``callbacks`` listen to the
    loop's events among the built-in listeners (after averaging and the rollback, before
    progress and the checkpoints: :mod:`accelat_train.training.listeners`), so that a
    checkpoint holds what they did. The folder is locked for the run's
    duration. ``model`` and ``data`` are a user's own (see :func:`fit`). Raises
    :class:`TrainingDiverged` on a NaN/inf loss (the last checkpoint is kept) and
    :class:`~accelat_train.run_dir.RunDirError` for a folder in use, unusable or holding
    another run.
    """
    if resume and restart:
        raise ValueError(
            "resume and restart exclude each other: resume=True continues the run in out, "
            "restart=True moves it aside and starts over"
        )
    run_dir = RunDir(cfg.out)
    callbacks = [*make_loggers(cfg.log, run_dir), *callbacks]  # a missing package fails here
    info = distributed.init_from_env(resolve_device(cfg.device).type)
    try:
        with run_dir.claimed() if info.is_main else contextlib.nullcontext(run_dir):
            opened = open_run(cfg, run_dir, resume=resume, restart=restart, is_main=info.is_main)
            distributed.barrier(info)  # every rank has looked before anything is written
            _train(cfg, run_dir, info, callbacks, opened, quiet=quiet or not info.is_main,
                   given=(model, data))  # fmt: skip
        # Every rank waits for rank 0's test evaluation and report before any leaves.
        distributed.barrier(info)
        return run_dir.path
    finally:
        distributed.shutdown(info)


def _train(
    cfg: TrainConfig,
    run_dir: RunDir,
    info: distributed.DistInfo,
    callbacks: Sequence[Callback],
    opened: Opened,
    *,
    quiet: bool,
    given: tuple[torch.nn.Module | None, Splits | None],
) -> None:
    setup = build(cfg, dist_info=info, model=given[0], data=given[1])
    lr_max, found = _lr_max(cfg, setup, run_dir, opened.lr_max)
    trainer = Trainer(cfg, setup, run_dir, lr_max)
    trainer.events = listeners(trainer, callbacks, quiet=quiet)
    trainer.start(opened.checkpoint, found)
    if opened.config is not None and info.is_main:
        run_dir.write_config(opened.config)  # the run's new budget, once it is restored
    trainer.events.on_train_begin(trainer)
    for epoch in trainer.epochs():
        record = trainer.train_epoch(epoch)
        trainer.measure(record)
        trainer.decide(record)
        trainer.events.on_epoch_end(trainer, record)
        distributed.barrier(info)  # every rank waits for rank 0's checkpoint
    trainer.events.on_train_end(trainer, trainer.evaluate())


def _lr_max(
    cfg: TrainConfig, setup: Any, run_dir: RunDir, saved: float | None
) -> tuple[float | None, dict[str, Any] | None]:
    """The run's lr_max and the finder record it starts from: a resumed run's own, the
    record ``cfg`` carries when it was found for this setting, or a new range test's."""
    reused = found_lr_max(cfg) if saved is None else None
    if cfg.lr_find is not None and reused is None and saved is None and cfg.lr_max == "auto":
        differs = setting_differences(cfg.lr_find.get("setting"), cfg)
        warnings.warn(
            f"lr finder: the recorded lr_max {cfg.lr_find.get('lr_max')!r} does not hold for "
            f"this run ({'; '.join(differs)}); running the range test again",
            stacklevel=3,
        )
    lr_max, found = resolve_lr_max(cfg, setup, run_dir.lr_find_plot, saved=saved or reused)
    if found is not None:
        found = {**found, "setting": finder_setting(cfg)}
    return lr_max, found if reused is None else cfg.lr_find
