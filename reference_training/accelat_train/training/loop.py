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

The run is resolved once, before its first epoch (:func:`~accelat_train.training.plan.plan_run`:
how it starts, its data and model, its lr_max, its schedule, what it evaluates), then trained
(:func:`run_plan`). Everything that is not the algorithm listens to the loop's events
(:mod:`accelat_train.callbacks`; the listeners and their order:
:mod:`accelat_train.training.listeners`): the checkpoints and ``best.pt``, progress, the
overfitting rollback, weight averaging, early stopping, the report, and the caller's
``callbacks``. The run folder's layout is :class:`~accelat_train.run_dir.RunDir`'s.

>>> from accelat_train import TrainConfig, train
>>> train(TrainConfig(dataset="digits", eps=0.1, epochs=2, out="runs/a"))  # doctest: +SKIP
PosixPath('runs/a')
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import torch

from accelat_train.callbacks.callback import Callback
from accelat_train.callbacks.loggers import make_loggers
from accelat_train.config import TrainConfig
from accelat_train.data import Splits
from accelat_train.run_dir import RunDir
from accelat_train.training import distributed
from accelat_train.training.build import resolve_device
from accelat_train.training.listeners import listeners
from accelat_train.training.plan import RunPlan, plan_run
from accelat_train.training.trainer import Trainer, TrainingDiverged

__all__ = ["Trainer", "TrainingDiverged", "run_plan", "train"]


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
            plan = plan_run(cfg, run_dir, info, resume=resume, restart=restart, model=model,
                            data=data)  # fmt: skip
            run_plan(plan, callbacks, quiet=quiet or not info.is_main)
        # Every rank waits for rank 0's test evaluation and report before any leaves.
        distributed.barrier(info)
        return run_dir.path
    finally:
        distributed.shutdown(info)


def run_plan(plan: RunPlan, callbacks: Sequence[Callback] = (), *, quiet: bool = False) -> None:
    """Train the run ``plan`` resolved: train an epoch, measure, let the policy decide, until
    the budget or a stop; then the final test. The listeners (built in, and ``callbacks``)
    hear each step."""
    trainer = Trainer(plan)
    trainer.events = events = listeners(plan, callbacks, quiet=quiet)
    trainer.start()
    events.on_train_begin(trainer.view)
    for epoch in trainer.epochs():
        record = trainer.train_epoch(epoch)
        trainer.measure(record)
        trainer.decide(record)
        events.on_epoch_end(trainer.view, record)
        distributed.barrier(trainer.info)  # every rank waits for rank 0's checkpoint
    events.on_train_end(trainer.view, trainer.evaluate())
