"""The trainer's default policies: what each ``--policy`` name means, and when it steps.

Default policies, all built from ``lr_max`` (the lr finder's suggestion when
``lr_max="auto"``) with the same rules for every dataset:

====================  =========================================================
constant              ``Constant(lr_max)``
step                  ``StepDecay.free_at(lr_max, T)``: /10 at 50 % and 75 % of T
linear                ``LinearDecay(lr_max, lr_max / 1000, T)``
exponential           ``ExponentialDecay(lr_max, rate=1e-3, decay_steps=T)`` (to lr_max/1000)
onecycle              ``OneCycle.paper(lr_max, T)``
cyclical              ``Cyclical(lr_max / 10, lr_max, step_size_up=T // 4)``: two cycles
restarts              ``WarmRestarts(lr_max, T / 7, lr_max / 1000, period_mult=2)``: 3 cycles
accelat               ``AccelAT(lr_max, lr_max / 1000, min_gain=0.005, factor=0.5, window=w,
                      samples=n, z=accelat_z, stop_patience=stop_patience or None)``
plateau               torch ``ReduceLROnPlateau(mode="max", factor=0.5, patience=w,
                      threshold=0.005, threshold_mode="abs", min_lr=lr_max / 1000)``
schedulefree          ``schedulefree.SGDScheduleFree`` at lr 1 (:mod:`accelat_train.peers`)
prodigy               ``prodigyopt.Prodigy`` at lr 1 (:mod:`accelat_train.peers`)
====================  =========================================================

``n`` is the monitor's sample count (the monitored validation images, or the distinct
training images of an epoch for ``train_adv_acc``): with ``accelat_z != 0`` AccelAT counts a
window as a plateau unless its gain beats ``min_gain + z`` binomial standard errors of the
gain; ``accelat_z = 0`` is the paper's rule exactly.

with ``w = clamp(epochs // 10, 1, 5)``. The released AccelAT code uses ``min_gain=0.005``,
``window=cooldown=5`` epochs, ``lr_min = lr_max / 1000`` and ``factor=0.8`` for runs of
50-500 epochs; our runs are 5-50 epochs, so the window scales with the budget (5 from 50
epochs on) and the factor is 0.5 so that a cut is felt within a short run.

The trainer's AccelAT defaults were chosen on development seeds 0-2 of digits at 20 epochs
(``python -m benchmarks.ablation``, docs/benchmarks.md), every pass counted: the paper's rule
on the robust-validation monitor needed 1.54x step's passes to the target (its monitor costs
0.7x the training passes); reading ``train_adv_acc`` (free: training measures it), adding one
binomial standard error of the gain to ``min_gain`` (``accelat_z=1``, ``n`` = the epoch's
distinct training images) and a window of a tenth of the budget brought it to 0.72x.
``stop_patience=2`` stops a run whose lr sat at ``lr_min`` through two more no-gain
decisions. ``--monitor robust_val_acc --accelat-z 0 --stop-patience 0`` (with ``--window``
as wanted) gives the paper's rule.

A fixed-shape policy steps once per weight update (a Free AT replay is an update), with
``total_steps = epochs x updates per epoch``; a metric-driven policy (AccelAT) and
``plateau`` step once per epoch with the monitored value (:class:`TrainerSchedule`).

>>> build_policy("step", 0.1, total_steps=100, epochs=10).at(60).lr
0.01
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import torch

from accelat_core import (
    AccelAT,
    Constant,
    Cyclical,
    ExponentialDecay,
    LinearDecay,
    OneCycle,
    Policy,
    StepDecay,
    WarmRestarts,
    from_config,
)
from accelat_torch import PolicyScheduler
from accelat_train.config import POLICY_NAMES, lr_min_value
from accelat_train.peers import PEER_LR, PEERS

if TYPE_CHECKING:
    from accelat_train.config import TrainConfig

#: AccelAT defaults (see the module docstring for the reasoning).
ACCELAT_MIN_GAIN = 0.005
ACCELAT_FACTOR = 0.5
LR_MIN_RATIO = 1e-3


def default_window(epochs: int) -> int:
    """AccelAT window (and plateau patience) for a budget: ``clamp(epochs // 10, 1, 5)``."""
    return max(1, min(5, epochs // 10))


def build_policy(
    name: str,
    lr_max: float,
    *,
    total_steps: int,
    epochs: int,
    window: int | None = None,
    samples: int | None = None,
    z: float = 0.0,
    stop_patience: int | None = None,
    factor: float = ACCELAT_FACTOR,
    min_gain: float = ACCELAT_MIN_GAIN,
    lr_min: float | None = None,
) -> Policy:
    """The named default policy (not ``plateau``); ``total_steps`` counts weight updates.

    ``samples``, ``z``, ``stop_patience`` and ``factor`` apply to ``accelat`` only (see the
    table)."""
    floor = lr_max * LR_MIN_RATIO  # where the fixed shapes end
    if name == "prodigy-cosine":  # Prodigy's README: cosine annealing over the run
        return WarmRestarts(PEER_LR, period=max(1, total_steps), lr_min=0.0)
    if name in PEERS:
        return Constant(PEER_LR)
    if name == "constant":
        return Constant(lr_max)
    if name == "step":
        return StepDecay.free_at(lr_max, max(4, total_steps))
    if name == "linear":
        return LinearDecay(lr_max, floor, total_steps)
    if name == "exponential":
        return ExponentialDecay(lr_max, rate=LR_MIN_RATIO, decay_steps=total_steps)
    if name == "onecycle":
        return OneCycle.paper(lr_max, total_steps)
    if name == "cyclical":
        return Cyclical(lr_max / 10, lr_max, step_size_up=max(1, total_steps // 4))
    if name == "restarts":
        period = max(1.0, total_steps / 7)  # a restart lasts at least one step
        return WarmRestarts(lr_max, period=period, lr_min=floor, period_mult=2.0)
    if name == "accelat":
        return AccelAT(
            lr_max,
            floor if lr_min is None else lr_min,
            min_gain=min_gain,
            factor=factor,
            window=window or default_window(epochs),
            stop_patience=stop_patience or None,
            **({"samples": samples, "z": z} if z and samples else {}),
        )
    raise ValueError(f"policy must be one of {POLICY_NAMES}, got {name!r}")


def build_policy_from_config(config: dict[str, Any]) -> Policy:
    """``accelat_core.from_config`` with the error naming the config."""
    if not isinstance(config, dict):
        raise ValueError(f"policy config must be a JSON object, got {config!r:.100}")
    try:
        return from_config(config)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"invalid policy config {json.dumps(config)[:200]}: {exc}") from None


class TrainerSchedule:
    """The scheduler in use and when it steps: per update (fixed-shape) or per epoch."""

    def __init__(
        self,
        cfg: TrainConfig,
        optimizer: torch.optim.Optimizer,
        lr_max: float | None,
        total: int,
        *,
        samples: int | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.plateau = cfg.policy_config is None and cfg.policy == "plateau"
        window = cfg.window or default_window(cfg.epochs)
        if self.plateau:
            assert lr_max is not None
            self.policy = None
            self.scheduler: Any = _plateau(
                optimizer, lr_max, window, cfg.min_gain, lr_min_value(cfg.lr_min, lr_max)
            )
            self.per_epoch = True
            return
        if cfg.policy_config is not None:
            policy = build_policy_from_config(cfg.policy_config)
        else:
            assert lr_max is not None
            policy = build_policy(
                cfg.policy, lr_max, total_steps=total, epochs=cfg.epochs, window=window,
                samples=samples, z=cfg.accelat_z, stop_patience=cfg.stop_patience,
                factor=cfg.accelat_factor, min_gain=cfg.min_gain,
                lr_min=lr_min_value(cfg.lr_min, lr_max),
            )  # fmt: skip
        self.policy = policy
        self.scheduler = PolicyScheduler(optimizer, policy, momentum="auto")
        self.per_epoch = policy.needs_metric

    def after_update(self) -> None:
        if not self.per_epoch:
            self.scheduler.step()

    def after_epoch(self, epoch: int, metric: float) -> dict[str, Any] | None:
        """Step a per-epoch scheduler with ``metric``; the decision it took, if any."""
        if not self.per_epoch:
            return None
        old = self.optimizer.param_groups[0]["lr"]
        if self.plateau:
            best = self.scheduler.best
            self.scheduler.step(metric)
            new = self.optimizer.param_groups[0]["lr"]
            if new != old:
                return {"index": epoch - 1, "gain": metric - best, "old_lr": old, "new_lr": new}
            return None
        before = len(getattr(self.policy, "decisions", []))
        self.scheduler.step(metric)
        decisions = getattr(self.policy, "decisions", [])
        if len(decisions) > before:
            d = decisions[-1]
            return {"index": d.evaluation, "gain": d.gain, "old_lr": d.old_lr, "new_lr": d.new_lr}
        return None

    @property
    def should_stop(self) -> bool:
        return bool(getattr(self.scheduler, "should_stop", False))

    def state_json(self) -> str:
        return json.dumps(self.scheduler.state_dict())

    def load_state_json(self, text: str) -> None:
        self.scheduler.load_state_dict(json.loads(text))


def _plateau(
    optimizer: torch.optim.Optimizer, lr_max: float, window: int, min_gain: float, lr_min: float
) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
    """torch's ReduceLROnPlateau with AccelAT's factor, threshold and lr floor."""
    for group in optimizer.param_groups:
        group["lr"] = lr_max
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=ACCELAT_FACTOR,
        patience=window,
        threshold=min_gain,
        threshold_mode="abs",
        min_lr=lr_min,
    )
