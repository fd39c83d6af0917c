"""Plateau against torch's own ReduceLROnPlateau, value for value.

The conformance test steps torch's scheduler on a one-parameter SGD beside the policy
and compares the lrs with ``==``: both compute ``max(lr * factor, min_lr)`` the same way.
The rest of Plateau's tests, framework-free, are tests/core/test_plateau.py.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import torch
from hypothesis import given, settings

from accelat_core import Plateau

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from strategies_metric import plateau_configs, plateau_curves

conformance = settings(max_examples=min(settings().max_examples, 200))


def run(policy: Plateau, metrics: list[float]) -> list[float]:
    return [policy.step(m).lr for m in metrics]


# -- torch conformance ----------------------------------------------------------------------


def torch_run(config: dict, metrics: list[float]) -> list[tuple[float, float, int, int]]:
    """(lr, best, num_bad_epochs, cooldown_counter) of torch's scheduler after each step."""
    kwargs = {k: v for k, v in config.items() if k != "lr_max"}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config["lr_max"])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
        for m in metrics:
            scheduler.step(m)
            s = scheduler
            out.append((opt.param_groups[0]["lr"], s.best, s.num_bad_epochs, s.cooldown_counter))
    return out


def policy_run(config: dict, metrics: list[float]) -> list[tuple[float, float, int, int]]:
    """The same four values from the policy's own state after each step."""
    policy = Plateau(**config)
    worst = math.inf if config["mode"] == "min" else -math.inf
    out = []
    for m in metrics:
        policy.step(m)
        s = policy.state_dict()["state"]
        best = worst if s["best"] is None else s["best"]
        out.append((s["lr"], best, s["num_bad_epochs"], s["cooldown_counter"]))
    return out


@conformance
@given(plateau_configs(), plateau_curves())
def test_lr_and_counters_equal_torch_reduce_lr_on_plateau_exactly(config, metrics) -> None:
    expected = torch_run(config, metrics)
    assert policy_run(config, metrics) == expected
    # A decision changed the lr exactly where torch's lr fell.
    policy = Plateau(**config)
    lrs = [config["lr_max"], *run(policy, metrics)]
    falls = [e for e in range(len(metrics)) if lrs[e + 1] < lrs[e]]
    assert [d.evaluation for d in policy.decisions if d.new_lr < d.old_lr] == falls


def test_torch_edges_ties_eps_and_the_min_lr_clamp() -> None:
    configs = [
        # A tie with the threshold is not an improvement (torch's strict < and >).
        dict(lr_max=1.0, mode="max", factor=0.5, patience=0, threshold=0.25, threshold_mode="abs"),
        # A reduction of exactly eps is decided (cooldown restarts) but not kept.
        dict(lr_max=2e-8, mode="min", factor=0.5, patience=0, cooldown=1, eps=1e-8),
        # Clamped to min_lr, then reductions that change nothing.
        dict(lr_max=1.0, mode="min", factor=0.1, patience=1, min_lr=0.05, threshold=0.0),
    ]
    metrics = [0.0, 0.25, 0.5, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75]
    for config in configs:
        full = {**dict(threshold=1e-4, threshold_mode="rel", cooldown=0, eps=1e-8), **config}
        assert policy_run(full, metrics) == torch_run(full, metrics), config
