"""The run's lr schedule, :class:`RunSchedule`: the catalogue's policy (or a
``--policy-config``) in a ``PolicyScheduler``, stepped once per weight update (a fixed shape,
``T = epochs x updates per epoch`` steps) or once per epoch with the monitored metric (a
metric-driven policy).

>>> import torch
>>> from accelat_core import Constant
>>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
>>> schedule = RunSchedule(Constant(0.1), opt)
>>> schedule.per_epoch, opt.param_groups[0]["lr"]
(False, 0.1)
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import torch

from accelat_core import Policy, from_config
from accelat_torch import scheduler_for
from accelat_torch.scheduler import LRMismatchWarning
from accelat_train.catalogue import CATALOGUE, Rule
from accelat_train.config import TrainConfig
from accelat_train.parsers import lr_min_value


class RunSchedule:
    """``policy`` driving ``optimizer``: per update, or per epoch on a metric."""

    def __init__(self, policy: Policy, optimizer: torch.optim.Optimizer) -> None:
        self.policy = policy
        self.optimizer = optimizer
        with warnings.catch_warnings():  # the optimizer was built at a placeholder lr
            warnings.simplefilter("ignore", LRMismatchWarning)
            self.scheduler: Any = scheduler_for(optimizer, policy, momentum="auto")
        self.per_epoch = policy.needs_metric

    def after_update(self) -> None:
        """One weight update: a fixed shape steps; a metric-driven policy's value within the
        epoch is written (AccelAT's anneal moves per update)."""
        if self.per_epoch:
            self.scheduler.step_update()
        else:
            self.scheduler.step()

    def after_epoch(self, metric: float) -> dict[str, Any] | None:
        """Step a per-epoch policy with ``metric``; the cut it decided, if any."""
        if not self.per_epoch:
            return None
        decisions = getattr(self.policy, "decisions", None)
        before = 0 if decisions is None else len(decisions)
        self.scheduler.step(metric)
        decisions = getattr(self.policy, "decisions", None)
        if not decisions or len(decisions) == before:
            return None
        d = decisions[-1]
        return {"index": d.evaluation, "gain": d.gain, "old_lr": d.old_lr, "new_lr": d.new_lr}

    @property
    def should_stop(self) -> bool:
        return bool(self.policy.should_stop)

    def state_json(self) -> str:
        return json.dumps(self.scheduler.state_dict())

    def load_state_json(self, text: str) -> None:
        self.scheduler.load_state_dict(json.loads(text))


def build_schedule(
    cfg: TrainConfig,
    optimizer: torch.optim.Optimizer,
    lr_max: float | None,
    *,
    total_steps: int,
    samples: int | None = None,
) -> RunSchedule:
    """The run's schedule: :func:`policy_for` the run, driving ``optimizer``."""
    return RunSchedule(policy_for(cfg, lr_max, total_steps=total_steps, samples=samples), optimizer)


def policy_for(
    cfg: TrainConfig, lr_max: float | None, *, total_steps: int, samples: int | None = None
) -> Policy:
    """The run's policy: ``cfg.policy_config`` when given (it carries its own lrs), else the
    catalogue's entry built from ``lr_max`` for ``total_steps`` weight updates."""
    if cfg.policy_config is not None:
        return from_config(cfg.policy_config)
    if lr_max is None:
        raise ValueError("a catalogue policy needs lr_max resolved to a number")
    rule = Rule(
        window=cfg.window,
        min_gain=cfg.min_gain,
        factor=cfg.accelat_factor,
        lr_min=lr_min_value(cfg.lr_min, lr_max),
        z=cfg.accelat_z,
        samples=samples,
        stop_patience=cfg.stop_patience,
        anneal=cfg.anneal,
        anneal_shape=cfg.anneal_shape,
    )
    entry = CATALOGUE[cfg.policy]
    return entry.build(lr_max, total_steps=total_steps, epochs=cfg.epochs, rule=rule)
