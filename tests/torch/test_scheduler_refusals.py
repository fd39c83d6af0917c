"""A refused state, metric or step leaves scheduler, policy and optimizer as they were.

Each case builds a scheduler whose restored state would differ from its current one (a
cut was taken, a phase was entered), so a half-applied load or step shows as a change
in ``state_dict()``, ``get_last_lr()`` or the optimizer's values.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from accelat_core import AccelAT, Constant, JoinSchedule, OneCycle, join
from accelat_torch import PlateauPolicyScheduler, PolicyScheduler


def accelat() -> AccelAT:
    return AccelAT(lr_max=0.1, lr_min=0.001, min_gain=0.01, factor=0.5, window=1)


def snapshot(sched: PolicyScheduler) -> tuple:
    groups = sched.optimizer.param_groups
    return (
        json.dumps(sched.state_dict()),
        sched.get_last_lr(),
        [(g["lr"], g["momentum"]) for g in groups],
        sched.last_epoch,
    )


def saved_after_a_cut(make_sgd) -> dict:
    """A state whose policy cut the lr to 0.05: loading it changes every view."""
    sched = PlateauPolicyScheduler(make_sgd(), accelat())
    for acc in [0.5, 0.5, 0.5]:
        sched.step(acc)
    assert sched.get_last_lr() == [0.05]
    return sched.state_dict()


# -- load_state_dict -------------------------------------------------------------------------
BAD_FIELDS = [
    ("last_epoch", None),
    ("last_epoch", 1.9),
    ("last_epoch", -5),
    ("last_epoch", -1),
    ("last_epoch", True),
    ("last_epoch", "3"),
    ("base_lrs", ["0.1"]),
    ("base_lrs", [True]),
    ("base_lrs", [float("nan")]),
    ("base_lrs", [float("inf")]),
    ("base_lrs", [0.0]),
    ("base_lrs", [-0.1]),
    ("base_lrs", [10**400]),
    ("base_lrs", (0.1,)),
    ("base_lrs", [0.1, 0.1]),
    ("format", True),
    ("format", 1.0),
    ("format", 2),
]


@pytest.mark.parametrize(
    ("key", "value"), BAD_FIELDS, ids=[f"{k}={v!r:.12}" for k, v in BAD_FIELDS]
)
def test_a_refused_field_raises_value_error_naming_it_and_changes_nothing(make_sgd, key, value):
    state = dict(saved_after_a_cut(make_sgd), **{key: value})
    sched = PlateauPolicyScheduler(make_sgd(), accelat())
    sched.step(0.4)
    before = snapshot(sched)
    with pytest.raises(ValueError, match=rf"state_dict\['{key}'\]"):
        sched.load_state_dict(state)
    assert snapshot(sched) == before


@pytest.mark.parametrize(
    "policy_state",
    [
        "not a dict",
        {"format": 1, "policy": "AccelAT"},
        OneCycle(0.1, 10).state_dict(),
        AccelAT(0.2, 0.001, min_gain=0.01, factor=0.5, window=1).state_dict(),
    ],
    ids=["string", "missing-keys", "other-policy", "other-config"],
)
def test_a_refused_policy_state_raises_value_error_and_changes_nothing(make_sgd, policy_state):
    state = dict(saved_after_a_cut(make_sgd), policy=policy_state)
    sched = PlateauPolicyScheduler(make_sgd(), accelat())
    before = snapshot(sched)
    with pytest.raises(ValueError, match=r"state_dict\['policy'\]"):
        sched.load_state_dict(state)
    assert snapshot(sched) == before


def test_a_malformed_accelat_state_is_refused_before_the_policy_changes(make_sgd):
    state = saved_after_a_cut(make_sgd)
    state["policy"]["state"]["decisions"] = "garbage"  # lr 0.05 would load before this
    sched = PlateauPolicyScheduler(make_sgd(), accelat())
    before = snapshot(sched)
    with pytest.raises(ValueError, match="decisions"):
        sched.load_state_dict(state)
    assert snapshot(sched) == before


def constant_then_onecycle() -> JoinSchedule:
    """A constant lr for two steps, then a OneCycle, which drives momentum."""
    return join([(Constant(0.1), 2), (OneCycle(0.1, 10), None)])


def test_a_state_whose_momentum_the_optimizer_cannot_take_is_refused_and_changes_nothing(
    make_sgd,
):
    with_momentum = PolicyScheduler(make_sgd(momentum=0.9), constant_then_onecycle())
    for _ in range(3):
        with_momentum.step()  # into the OneCycle phase: lr 0.052, momentum 0.9
    sched = PolicyScheduler(make_sgd(momentum=0.0), constant_then_onecycle())
    before = snapshot(sched)
    with pytest.raises(ValueError, match=r"state_dict\['policy'\].*drives momentum"):
        sched.load_state_dict(with_momentum.state_dict())
    assert snapshot(sched) == before
    # the documented way out still loads it
    lenient = PolicyScheduler(make_sgd(momentum=0.0), constant_then_onecycle(), momentum=False)
    lenient.load_state_dict(with_momentum.state_dict())
    assert (
        lenient.get_last_lr() == with_momentum.get_last_lr() == [constant_then_onecycle().at(3).lr]
    )


def test_every_state_the_scheduler_writes_loads(make_sgd):
    fresh = PlateauPolicyScheduler(make_sgd(), accelat())
    states = [fresh.state_dict(), saved_after_a_cut(make_sgd)]
    assert [s["last_epoch"] for s in states] == [0, 3]
    for state in states:
        sched = PlateauPolicyScheduler(make_sgd(), accelat())
        sched.step(0.9)
        sched.load_state_dict(json.loads(json.dumps(state)))
        assert sched.state_dict() == state
        assert [g["lr"] for g in sched.optimizer.param_groups] == sched.get_last_lr()


def test_base_lrs_saved_as_ints_load_as_floats(make_sgd):
    sched = PolicyScheduler(make_sgd((1.0, 2.0)), Constant(0.1))
    sched.load_state_dict(dict(sched.state_dict(), base_lrs=[1, 2]))
    assert sched.base_lrs == [1.0, 2.0]
    assert all(type(lr) is float for lr in sched.base_lrs)


# -- step --------------------------------------------------------------------------------------
BAD_METRICS = [
    "0.5",
    True,
    False,
    np.bool_(True),
    torch.tensor(True),
    torch.tensor([0.5, 0.6]),
    np.array([0.5, 0.6]),
    complex(0.5, 0),
    [0.5],
]


@pytest.mark.parametrize("metric", BAD_METRICS, ids=repr)
@pytest.mark.parametrize("sync_metric", ["auto", True])
def test_a_bool_string_or_non_scalar_metric_is_refused_before_anything_changes(
    make_sgd, metric, sync_metric
):
    with pytest.raises(ValueError, match="real-number metric"):
        accelat().step(metric)  # the kind of error AccelAT alone raises
    sched = PlateauPolicyScheduler(make_sgd(), accelat(), sync_metric=sync_metric)
    before = snapshot(sched)
    # sync_metric=True without a process group would raise RuntimeError at the sync: the
    # metric is refused before it gets there.
    with pytest.raises(ValueError, match=r"AccelAT needs a real-number metric, got "):
        sched.step(metric)
    assert snapshot(sched) == before


@pytest.mark.parametrize(
    "metric",
    [
        0.25,
        torch.tensor(0.25),
        torch.tensor([0.25], dtype=torch.float64),
        np.float32(0.25),
        np.float64(0.25),
        np.array(0.25),
    ],
    ids=repr,
)
def test_a_real_metric_in_any_numeric_wrapper_is_the_same_float(make_sgd, metric):
    ours = PlateauPolicyScheduler(make_sgd(), accelat())
    reference = accelat()
    for acc in [0.5, 0.3, metric, metric]:
        ours.step(acc)
        reference.step(0.25 if acc is metric else acc)
    assert ours.policy.state_dict() == reference.state_dict()
    assert reference.decisions


def test_an_int_metric_is_accepted_as_accelat_accepts_it(make_sgd):
    ours = PlateauPolicyScheduler(make_sgd(), accelat())
    reference = accelat()
    for acc in [0, 1, torch.tensor(1), np.int64(1)]:
        ours.step(acc)
        reference.step(int(acc))
    assert ours.policy.state_dict() == reference.state_dict()


def test_a_step_after_add_param_group_raises_before_the_policy_moves(make_sgd):
    opt = make_sgd((0.1,))
    sched = PolicyScheduler(opt, OneCycle(0.1, 10))
    sched.step()
    before = snapshot(sched)
    opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "lr": 0.5})
    with pytest.raises(ValueError, match="has 2 param groups, but this scheduler was built for 1"):
        sched.step()
    opt.param_groups.pop()
    assert snapshot(sched) == before
