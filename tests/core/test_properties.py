"""Properties every policy must have: fixed shapes, AccelAT, and Warmup / Join of them.

- every emitted lr is finite and within the policy's envelope, momentum within its pair;
- a fixed-shape policy's ``step()`` equals its closed form ``at(t)`` at every t;
- a save -> JSON -> load into ``from_config(to_config())`` -> continue run is identical to
  the uninterrupted one, at every split point;
- ``from_config(to_config())`` rebuilds the same policy.
"""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st
from strategies_metric import all_policies, envelope, metric_histories

from accelat_core import Hyper, Policy, Schedule, from_config

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


def trajectory(policy: Policy, metrics: list[float | None]) -> list[Hyper]:
    return [policy.step(m) for m in metrics]


def fresh_copy(policy: Policy) -> Policy:
    return from_config(json.loads(json.dumps(policy.to_config(), allow_nan=False)))


@given(runs())
def test_every_value_is_finite_and_within_the_policy_envelope(run) -> None:
    policy, metrics = run
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


@given(runs())
def test_fixed_shape_step_equals_closed_form_at_every_t(run) -> None:
    policy, metrics = run
    if not isinstance(policy, Schedule):
        assert policy.needs_metric
        return
    assert policy.hyper == policy.at(0)
    for t, m in enumerate(metrics, start=1):
        assert policy.step(m) == policy.at(t)
        assert policy.t == t
    horizon = policy.horizon
    if horizon is not None:
        assert policy.at(horizon + 1) == policy.at(horizon) == policy.at(horizon + 1000)


@given(runs(), st.data())
def test_resume_at_a_random_split_gives_identical_trajectory(run, data) -> None:
    policy, metrics = run
    split = data.draw(st.integers(0, len(metrics)), label="split")
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
def test_from_config_of_to_config_rebuilds_the_same_policy(policy) -> None:
    config = json.loads(json.dumps(policy.to_config(), allow_nan=False))
    rebuilt = from_config(config)
    assert type(rebuilt) is type(policy)
    assert rebuilt.to_config() == config
    assert rebuilt.needs_metric == policy.needs_metric
    assert rebuilt.hyper == policy.hyper
    assert rebuilt.state_dict() == policy.state_dict()
