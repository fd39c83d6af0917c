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

import dataclasses
import json
import warnings
from typing import Any

import torch

from accelat_core import Policy, from_config
from accelat_torch import scheduler_for
from accelat_torch.scheduler import LRMismatchWarning
from accelat_train.catalogue import CATALOGUE, Rule


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
        """Step a per-epoch policy with ``metric``; the decision it took, if any (as the
        scheduler reports it: ``PlateauPolicyScheduler.last_decision``)."""
        if not self.per_epoch:
            return None
        self.scheduler.step(metric)
        d = self.scheduler.last_decision
        if d is None:
            return None
        return {"index": d.evaluation, "gain": d.gain, "old_lr": d.old_lr, "new_lr": d.new_lr}

    @property
    def should_stop(self) -> bool:
        return bool(self.policy.should_stop)

    def state_json(self) -> str:
        return json.dumps(self.scheduler.state_dict())

    def load_state_json(self, text: str) -> None:
        self.scheduler.load_state_dict(json.loads(text))


def policy_for(
    policy: str,
    policy_config: dict[str, Any] | None,
    rule: Rule,
    lr_max: float | None,
    *,
    total_steps: int,
    epochs: int,
    samples: int | None = None,
) -> Policy:
    """The run's policy: ``policy_config`` when given (it carries its own lrs), else the
    catalogue's entry ``policy`` built from ``lr_max`` for ``total_steps`` weight updates in
    ``epochs`` epochs, with the metric-driven rules' knobs ``rule`` and the examples one
    value of the monitored metric averages over (``samples``).

    >>> round(policy_for("step", None, Rule(), 0.1, total_steps=8, epochs=2).at(4).lr, 12)
    0.01
    """
    if policy_config is not None:
        return from_config(policy_config)
    if lr_max is None:
        raise ValueError("a catalogue policy needs lr_max resolved to a number")
    rule = dataclasses.replace(rule, samples=samples)
    return CATALOGUE[policy].build(lr_max, total_steps=total_steps, epochs=epochs, rule=rule)
