"""AccelAT's final anneal through ``PlateauPolicyScheduler.step_update``: update by update.

The expected values are the core's closed form, :class:`Anneal` over ``length x updates``
steps, stepped once per update; where the anneal starts is where the same rule without an
anneal stops.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from accelat_core import AccelAT, Anneal
from accelat_torch import PlateauPolicyScheduler

RULE = dict(lr_max=0.1, min_lr=0.025, min_gain=0.01, factor=0.5, window=2, stop_patience=2)
UPDATES = 5  # weight updates per epoch


def falling(n: int) -> list[float]:
    return [1.0 - 0.01 * i for i in range(n)]  # every decision finds a loss of accuracy


def first_stop(metrics: list[float]) -> int:
    plain = AccelAT(**RULE)
    for e, m in enumerate(metrics):
        plain.step(m)
        if plain.should_stop:
            return e
    raise AssertionError("the rule must stop")


def train(sched: PlateauPolicyScheduler, opt: torch.optim.Optimizer, metrics, record) -> None:
    """Epochs of UPDATES weight updates each, then one step(metric); the lr of every update."""
    for m in metrics:
        for _ in range(UPDATES):
            record.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step_update()
        sched.step(m)


def make() -> tuple[PlateauPolicyScheduler, torch.optim.Optimizer]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9)
    return PlateauPolicyScheduler(opt, AccelAT(**RULE, anneal=0.5, anneal_shape="cosine")), opt


def test_the_anneal_moves_every_update_as_the_closed_form_stepped_per_update() -> None:
    metrics = falling(30)
    start = first_stop(metrics)
    length = max(1, math.floor(0.5 * (start + 1) + 0.5))
    sched, opt = make()
    got: list[float] = []
    train(sched, opt, metrics[: start + 1 + length], got)
    closed = Anneal(0.025, length * UPDATES, shape="cosine")
    expected = [closed.at(t).lr for t in range(length * UPDATES)]
    assert got[(start + 1) * UPDATES :] == expected
    assert got[: (start + 1) * UPDATES][-1] == 0.025  # the floor, until the anneal starts
    assert sched.should_stop and opt.param_groups[0]["lr"] == 0.0


@pytest.mark.parametrize("split", [0, 1, 3])  # updates into the epoch when the run is saved
@pytest.mark.parametrize("optimizer_last", [False, True])  # its load_state_dict after ours
def test_resume_mid_epoch_of_the_anneal_is_exact(split, optimizer_last) -> None:
    metrics = falling(30)
    start = first_stop(metrics)
    whole, opt = make()
    expected: list[float] = []
    train(whole, opt, metrics[: start + 3], expected)
    first, opt1 = make()
    got: list[float] = []
    train(first, opt1, metrics[: start + 2], got)
    for _ in range(split):
        got.append(opt1.param_groups[0]["lr"])
        opt1.step()
        first.step_update()
    saved = json.loads(json.dumps(first.state_dict()))
    resumed, opt2 = make()
    resumed.load_state_dict(saved)
    if optimizer_last:  # new param-group dicts: a trainer restoring the scheduler first
        opt2.load_state_dict(opt1.state_dict())
    for _ in range(UPDATES - split):
        got.append(opt2.param_groups[0]["lr"])
        opt2.step()
        resumed.step_update()
    resumed.step(metrics[start + 2])
    assert got == expected
    assert saved["updates"] == split and saved["updates_per_evaluation"] == UPDATES


def test_a_state_saved_by_0_2_without_the_update_counts_loads() -> None:
    sched, _ = make()
    sched.step(0.5)
    old = {
        k: v
        for k, v in sched.state_dict().items()
        if k in ("format", "policy", "base_lrs", "last_epoch")
    }
    again, _ = make()
    again.load_state_dict(old)
    assert (again.updates, again.updates_per_evaluation, again.last_epoch) == (0, 0, 1)
    with pytest.raises(
        ValueError, match=r"state_dict\['updates'\] must be an integer >= 0, got -1"
    ):
        again.load_state_dict({**sched.state_dict(), "updates": -1})


def test_step_update_between_evaluations_leaves_a_policy_without_anneal_alone() -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = PlateauPolicyScheduler(opt, AccelAT(0.1, 0.01, min_gain=0.01, window=1))
    for m in [0.5, 0.5, 0.5]:
        for _ in range(3):
            sched.step_update()
            assert opt.param_groups[0]["lr"] == sched.policy.lr
        sched.step(m)
    assert sched.policy.decisions and opt.param_groups[0]["lr"] == sched.policy.lr
