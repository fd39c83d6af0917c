"""A run resolved once, before its first epoch: :func:`plan_run` turns a
:class:`~accelat_train.config.TrainConfig` into a frozen :class:`RunPlan`, which the trainer
takes.

What is resolved, in this order:

1. how the run starts (:func:`~accelat_train.training.resume.open_run`): afresh, or from a
   checkpoint (with the lr_max it started from, and a new budget's ``config.json``);
2. its data, model, optimizer and method (:func:`~accelat_train.training.build.build`);
3. its lr_max: a resumed run's own; the finder's record the config carries, when it was found
   for the config's own setting (any other is said in a warning, and found again); a new
   range test's (:func:`~accelat_train.training.lr_finder.run_finder`, on the run's own
   loader); an LR-free optimizer's own lr; or as given. None with a ``policy_config``, which
   carries its own lrs;
4. its schedule: the policy for that lr_max and the budget, driving the optimizer;
5. the model it evaluates (the monitor, ``best.pt``, the test): the training model, or its
   weight average (``--ema-epochs``, :class:`~accelat_train.callbacks.averaging.Averaging`);
6. its validation monitor and test evaluation, and the listeners its config asks for (the
   overfitting rollback, early stopping).

>>> plan = plan_run(TrainConfig(dataset="digits", eps=0.1, out="runs/a"), RunDir("runs/a"),
...                 DistInfo())  # doctest: +SKIP
>>> plan.lr_max, plan.evaluated is plan.setup.model  # doctest: +SKIP
(0.0342, False)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from accelat_train.adversarial.evaluation import Monitor, TestEvaluation, as_tensors, eval_subset
from accelat_train.callbacks.averaging import Averaging
from accelat_train.callbacks.early_stopping import EarlyStopping
from accelat_train.callbacks.rollback import OverfitRollback
from accelat_train.catalogue import LR_FREE_LR
from accelat_train.config import TrainConfig, finding_differences
from accelat_train.data import Splits
from accelat_train.registry import OPTIMIZERS
from accelat_train.run_dir import RunDir
from accelat_train.training import distributed
from accelat_train.training.build import Setup, build
from accelat_train.training.lr_finder import run_finder
from accelat_train.training.resume import Opened, open_run
from accelat_train.training.run_schedule import RunSchedule, policy_for


@dataclass(frozen=True)
class Validation:
    """The validation monitor (clean and robust accuracy of the evaluated model), the
    accuracy a metric-driven policy reads (``metric``: ``EpochRecord.monitor``), and every
    how many epochs it runs (``every``; it also runs at the last; 0: at the last only)."""

    monitor: Monitor
    metric: str
    every: int


@dataclass(frozen=True)
class RunPlan:
    """A run resolved from its config, before its first epoch (the module docstring): what
    the trainer trains, measures, evaluates and writes.

    ``config`` is the config as ``config.json`` holds it; ``lr_find`` the finder's record the
    run started from (kept beside it); ``opened`` how the run starts (a resumed run's
    checkpoint and the new budget's ``config.json``). ``evaluated`` is the model the run
    evaluates: ``setup.model``, or ``averaging``'s average.
    """

    run_dir: RunDir
    config: dict[str, Any]
    opened: Opened
    setup: Setup
    epochs: int
    seed: int
    lr_max: float | None
    lr_find: dict[str, Any] | None
    schedule: RunSchedule
    evaluated: torch.nn.Module
    averaging: Averaging | None
    rollback: OverfitRollback | None
    early_stopping: EarlyStopping | None
    validation: Validation
    test: TestEvaluation
    bn_refresh: int

    def fresh_config(self) -> dict[str, Any]:
        """``config.json`` of a fresh start: the config, the finder's record it started from,
        and how it ran (its ranks, its device, its weight updates per epoch)."""
        setup = self.setup
        return {
            **self.config,
            "lr_find": self.lr_find,
            "world_size": setup.dist.world_size,
            "resolved_device": str(setup.device),
            "updates_per_epoch": setup.updates_per_epoch,
        }


def plan_run(
    cfg: TrainConfig,
    run_dir: RunDir,
    info: distributed.DistInfo,
    *,
    resume: bool = False,
    restart: bool = False,
    model: torch.nn.Module | None = None,
    data: Splits | None = None,
) -> RunPlan:
    """Resolve the run ``cfg`` asks for in ``run_dir`` (the module docstring); ``resume``,
    ``restart``, ``model`` and ``data`` as :func:`~accelat_train.training.loop.train` takes
    them. Every rank plans; rank 0 alone moves an earlier run aside and draws the finder's
    curve."""
    opened = open_run(cfg, run_dir, resume=resume, restart=restart, is_main=info.is_main)
    distributed.barrier(info)  # every rank has looked before anything is written
    setup = build(cfg, dist_info=info, model=model, data=data)
    lr_max, found = _lr_max(
        setup, run_dir.lr_find_plot, asked=cfg.lr_max, record=cfg.lr_find,
        setting=cfg.finder_setting(), saved=opened.lr_max,
        lr_free=OPTIMIZERS[cfg.optimizer_name].lr_free, fixed=cfg.policy_config is not None,
    )  # fmt: skip
    samples = _monitor_samples(cfg.monitor, setup, cfg.monitor_size, cfg.batch_size)
    policy = policy_for(
        cfg.policy, cfg.policy_config, cfg.rule, lr_max, samples=samples, epochs=cfg.epochs,
        total_steps=cfg.epochs * setup.updates_per_epoch,
    )  # fmt: skip
    schedule = RunSchedule(policy, setup.optimizer)
    averaging = None
    if cfg.ema_epochs > 0:
        horizon = max(1.0, cfg.ema_epochs * setup.updates_per_epoch)
        averaging = Averaging(setup.model, horizon_updates=horizon, warmup=cfg.ema_warmup)
    evaluated = setup.model if averaging is None else averaging.module
    monitor = Monitor(
        as_tensors(setup.splits.val, setup.device), size=cfg.monitor_size,
        steps=cfg.monitor_steps, eps=cfg.eps, seed=cfg.seed,
    )  # fmt: skip
    x, y = eval_subset(*as_tensors(setup.splits.test, setup.device), cfg.eval_size)
    rollback = None
    if cfg.co_check:
        rollback = OverfitRollback(next(setup.loader.epoch(0)), cfg.eps, cfg.seed)
    stopping = None
    if cfg.early_stop:
        stopping = EarlyStopping(cfg.early_stop, min_delta=cfg.early_stop_min_delta,
                                 monitor=cfg.early_stop_monitor)  # fmt: skip
    return RunPlan(
        run_dir, cfg.to_json(), opened, setup, cfg.epochs, cfg.seed, lr_max, found, schedule,
        evaluated, averaging, rollback, stopping,
        Validation(monitor, cfg.monitor, cfg.monitor_every),
        TestEvaluation(x, y, cfg.attacks, cfg.eps, cfg.eval_steps, cfg.eval_every),
        cfg.bn_refresh,
    )  # fmt: skip


def _lr_max(
    setup: Setup,
    plot: Path,
    *,
    asked: float | str,
    record: dict[str, Any] | None,
    setting: dict[str, Any],
    saved: float | None,
    lr_free: bool,
    fixed: bool,
) -> tuple[float | None, dict[str, Any] | None]:
    """The run's lr_max and the finder's record it starts from (the module docstring, 3):
    ``asked`` is the config's lr_max, ``record`` its finder record (found for ``setting``?),
    ``saved`` a resumed run's lr, ``lr_free`` an optimizer that needs none, ``fixed`` a
    ``policy_config`` (its own lrs)."""
    reused = None
    if saved is None and asked == "auto" and record is not None:
        differs = finding_differences(record.get("setting"), setting)
        if differs:
            warnings.warn(
                f"lr finder: the recorded lr_max {record.get('lr_max')!r} does not hold for "
                f"this run ({'; '.join(differs)}); running the range test again",
                stacklevel=4,
            )
        else:
            reused = float(record["lr_max"])
    kept = None if reused is None else record
    if fixed:
        return None, kept
    start = saved if saved is not None else reused
    if start is not None:
        return start, kept
    if asked != "auto":
        return float(asked), None
    if lr_free:
        return LR_FREE_LR, None
    lr_max, found = run_finder(setup, plot)
    return lr_max, {**found, "setting": setting}


def _monitor_samples(monitor: str, setup: Setup, monitor_size: int, batch_size: int) -> int:
    """How many examples one value of the monitored metric averages over: the monitored
    validation images, the validation split, or an epoch's distinct training images."""
    if monitor == "robust_val_acc":
        return min(monitor_size, len(setup.splits.val.y))
    if monitor == "val_acc":
        return len(setup.splits.val.y)
    return setup.batches_per_epoch * batch_size
