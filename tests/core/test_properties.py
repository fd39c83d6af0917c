"""Properties every policy must have: fixed shapes, AccelAT, and warmups / joins of them.

- every emitted lr is finite and within the policy's envelope, momentum within its pair;
- a fixed-shape policy's ``step()`` equals its closed form ``at(t)`` at every t;
- a save -> JSON -> load into ``from_config(to_config())`` -> continue run is identical to
  the uninterrupted one, at every split point;
- ``from_config(to_config())`` rebuilds the same policy.
"""

from __future__ import annotations

import copy
import json
import math
import random

from hypothesis import example, given
from hypothesis import strategies as st
from strategies_metric import all_policies, envelope, metric_histories

from accelat_core import (
    AccelAT,
    Constant,
    Hyper,
    LinearDecay,
    OneCycle,
    Policy,
    Schedule,
    WarmRestarts,
    from_config,
    join,
    warmup,
)

# Momentum formulas follow torch's ``high - (high - low) * x``, which can land one rounding
# step outside the pair when low is tiny next to high; allow that much, absolutely.
MOMENTUM_SLACK = 1e-12
# Enough units to run past every drawn horizon (<= 300, plus warmups and join phases).
MAX_UNITS = 420


@st.composite
def runs(draw: st.DrawFn) -> tuple[Policy, list[float | None]]:
    """A fresh policy and the metrics of a run of it (``None`` for fixed shapes)."""
    policy = draw(all_policies())
    units = draw(st.integers(0, MAX_UNITS))
    if not policy.needs_metric:
        return policy, [None] * units
    curve = draw(metric_histories(min_size=1))
    return policy, [curve[i % len(curve)] for i in range(units)]


def edge_runs() -> list[tuple[Policy, list[float | None]]]:
    """The edges every property must hold at, pinned so that no run depends on luck."""
    flat = [0.5] * 12
    none = [None] * 60
    return [
        (OneCycle(0.1, total_steps=1), none[:5]),  # total_steps = 1
        (LinearDecay(0.1, 0.01, total_steps=1), none[:5]),
        (OneCycle(0.1, total_steps=10, pct_start=0.1), none[:12]),  # pct_start * total == 1
        # Three phases with pct_start * total == 1: the first two phases have zero length.
        (OneCycle(0.1, total_steps=10, pct_start=0.1, three_phase=True), none[:12]),
        (WarmRestarts(1.0, period=1.1, period_mult=3), none),  # period_mult = 3
        (WarmRestarts(1.0, period=1, period_mult=3, lr_min=0.0), none),
        (warmup(Constant(1e3), steps=0), none[:5]),  # a zero-length phase, lr 1e3
        (join([(Constant(1e-12), 1), (OneCycle(1e3, total_steps=1), None)]), none[:5]),
        # window = 1, lr 1e-12 and 1e3, the clamp at lr_min and the stop.
        (AccelAT(1e-12, 3e-13, 1 / 32, 0.5, window=1, cooldown=0, warmup=0, stop_patience=1), flat),
        (AccelAT(1e3, 1e-3, 1 / 32, 0.1, window=1, stop_patience=2), flat),
        (warmup(AccelAT(1e3, 1e3, 0.0, 0.5, window=1), steps=2), flat),  # lr_min == lr_max
    ]


def edge_examples(test):
    """Add each of ``edge_runs()`` (fresh instances for each test) as an explicit example."""
    for run in edge_runs():
        test = example(run)(test)
    return test


def trajectory(policy: Policy, metrics: list[float | None]) -> list[Hyper]:
    return [policy.step(m) for m in metrics]


def fresh_copy(policy: Policy) -> Policy:
    return from_config(json.loads(json.dumps(policy.to_config(), allow_nan=False)))


@given(runs())
@edge_examples
def test_every_value_is_finite_and_within_the_policy_envelope(run) -> None:
    policy, metrics = copy.deepcopy(run)  # an explicit example is reused: keep it fresh
    env = envelope(policy)
    for h in [policy.hyper, *trajectory(policy, metrics)]:
        assert math.isfinite(h.lr)
        assert env.lr_lo <= h.lr <= env.lr_hi
        if h.momentum is None:
            assert env.momentum_none
        else:
            assert env.momentum is not None
            low, high = env.momentum
            assert low - MOMENTUM_SLACK <= h.momentum <= high + MOMENTUM_SLACK


@given(runs(), st.randoms(use_true_random=False))
@example(edge_runs()[4], random.Random(0))
@example(edge_runs()[3], random.Random(1))
def test_fixed_shape_step_equals_closed_form_at_every_t(run, rng) -> None:
    policy, metrics = copy.deepcopy(run)  # an explicit example is reused: keep it fresh
    if not isinstance(policy, Schedule):
        assert policy.needs_metric
        return
    # The closed form of a fresh copy, asked in a random order: step() must not depend on
    # what at() was asked before (a cache), and at() on nothing but t.
    fresh = fresh_copy(policy)
    order = list(range(len(metrics) + 1))
    rng.shuffle(order)
    closed = {t: fresh.at(t) for t in order}
    assert policy.hyper == closed[0]
    for t, m in enumerate(metrics, start=1):
        assert policy.step(m) == closed[t], t
        assert policy.t == t
    horizon = policy.horizon
    if horizon is not None:
        assert policy.at(horizon + 1) == policy.at(horizon) == policy.at(horizon + 1000)


@given(runs(), st.integers(0, MAX_UNITS))
@example(edge_runs()[-3], 3)
@example(edge_runs()[-2], 4)
@example(edge_runs()[-1], 1)
@example(edge_runs()[4], 20)
def test_resume_at_a_random_split_gives_identical_trajectory(run, split_at) -> None:
    policy, metrics = copy.deepcopy(run)  # an explicit example is reused: keep it fresh
    split = min(split_at, len(metrics))
    whole = fresh_copy(policy)
    expected = trajectory(whole, metrics)

    head = trajectory(policy, metrics[:split])
    saved = json.loads(json.dumps(policy.state_dict(), allow_nan=False))
    resumed = fresh_copy(policy)
    resumed.load_state_dict(saved)
    assert resumed.hyper == policy.hyper
    tail = trajectory(resumed, metrics[split:])

    assert head + tail == expected
    assert resumed.should_stop == whole.should_stop
    assert json.dumps(resumed.state_dict()) == json.dumps(whole.state_dict())

    # Loading into a policy that has already run elsewhere restores the saved point too.
    whole.load_state_dict(saved)
    assert trajectory(whole, metrics[split:]) == tail


@given(all_policies())
@example(OneCycle(0.1, total_steps=10, pct_start=0.1, three_phase=True))
@example(warmup(Constant(1e-12), steps=0))
def test_from_config_of_to_config_rebuilds_the_same_policy(policy) -> None:
    config = json.loads(json.dumps(policy.to_config(), allow_nan=False))
    rebuilt = from_config(config)
    assert type(rebuilt) is type(policy)
    assert rebuilt.to_config() == config
    assert rebuilt.needs_metric == policy.needs_metric
    assert rebuilt.hyper == policy.hyper
    assert rebuilt.state_dict() == policy.state_dict()
