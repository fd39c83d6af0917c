"""Fixed-shape policies: bounds, closed form vs stepping, resume, holding, key values, errors."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies_fixed import FIXED_SHAPES, fixed_policy_bounds, lrs

from accelat_core import (
    Anneal,
    Constant,
    Cyclical,
    ExponentialDecay,
    Hyper,
    LinearDecay,
    OneCycle,
    Schedule,
    StepDecay,
    WarmRestarts,
    from_config,
)
from accelat_core.policies.exponential_decay import LR_FLOOR

each_policy = pytest.mark.parametrize("strategy", FIXED_SHAPES.values(), ids=FIXED_SHAPES.keys())

# Per-class properties run for nine strategies; a third of the profile's examples each keeps
# the file within its time budget while every class still sees ~100 random instances.
few = settings(max_examples=max(10, settings().max_examples // 3))


def walk_length(policy: Schedule) -> int:
    """Steps enough to pass the horizon (or several cycles of an unending shape)."""
    return 400 if policy.horizon is None else policy.horizon + 30


def json_roundtrip(policy: Schedule) -> Schedule:
    """A fresh policy built from the JSON config, with the JSON state loaded into it."""
    fresh = from_config(json.loads(json.dumps(policy.to_config())))
    fresh.load_state_dict(json.loads(json.dumps(policy.state_dict())))
    return fresh


@each_policy
@few
@given(data=st.data())
def test_every_value_is_finite_and_within_bounds(strategy, data):
    policy = data.draw(strategy)
    lo, hi, momentum = fixed_policy_bounds(policy)
    for t in range(walk_length(policy)):
        h = policy.at(t)
        assert type(h) is Hyper
        assert math.isfinite(h.lr) and lo <= h.lr <= hi, (t, h, lo, hi)
        assert h.lr > 0 or (isinstance(policy, (WarmRestarts, Anneal)) and lo == 0)
        if momentum is None:
            assert h.momentum is None
        else:
            assert momentum[0] <= h.momentum <= momentum[1], (t, h, momentum)


@each_policy
@few
@given(data=st.data())
def test_step_returns_at_of_the_advanced_clock_for_every_t(strategy, data):
    # The closed form comes from another instance, asked in a random order: step() must
    # give the same values as at(t) whatever at() was asked before (WarmRestarts' cycle
    # cache), not merely call at() itself.
    policy = data.draw(strategy)
    n = walk_length(policy)
    fresh = from_config(policy.to_config())
    order = data.draw(st.permutations(range(n)), label="order")
    closed = {t: fresh.at(t) for t in order}
    assert policy.hyper == closed[0]
    for t in range(1, n):
        assert policy.step() == closed[t], t
        assert policy.t == t and policy.hyper == closed[t]


@each_policy
@few
@given(data=st.data())
def test_resume_from_json_state_gives_identical_trajectory(strategy, data):
    policy = data.draw(strategy)
    n = walk_length(policy)
    stop = data.draw(st.integers(0, n), label="stop")
    for _ in range(stop):
        policy.step()
    resumed = json_roundtrip(policy)
    assert resumed.t == policy.t and resumed.hyper == policy.hyper
    for _ in range(stop, n):
        assert resumed.step() == policy.step()  # ==, not approx


@each_policy
@few
@given(data=st.data())
def test_config_roundtrip_rebuilds_the_same_shape(strategy, data):
    policy = data.draw(strategy)
    config = json.loads(json.dumps(policy.to_config()))
    rebuilt = from_config(config)
    assert type(rebuilt) is type(policy)
    assert rebuilt.to_config() == config
    assert [rebuilt.at(t) for t in range(walk_length(policy))] == [
        policy.at(t) for t in range(walk_length(policy))
    ]


@each_policy
@few
@given(data=st.data())
def test_far_future_steps_neither_raise_nor_leave_bounds(strategy, data):
    # Years of steps: no OverflowError (2.0 ** 1024, m ** i) and no drift out of bounds.
    policy = data.draw(strategy)
    lo, hi, momentum = fixed_policy_bounds(policy)
    for t in (10**6, 10**9 + 7, 2**53 - 1, 2**62 + 3):
        h = policy.at(t)
        assert math.isfinite(h.lr) and lo <= h.lr <= hi, (t, h)
        assert momentum is None or momentum[0] <= h.momentum <= momentum[1], (t, h)


def expected_horizon(policy: Schedule) -> int | None:
    """The step from which the value holds, read from the config (not from ``horizon``)."""
    c = policy.get_config()
    if isinstance(policy, StepDecay):
        return c["milestones"][-1] if c["milestones"] else 0
    if isinstance(policy, (LinearDecay, Anneal)):
        return c["total_steps"]
    if isinstance(policy, OneCycle):
        return c["total_steps"] - 1
    if isinstance(policy, ExponentialDecay):
        return 0 if c["rate"] == 1.0 else None
    if isinstance(policy, Constant):
        return 0
    return None  # Cyclical and WarmRestarts never end


# The shapes that end: every draw has a horizon. ExponentialDecay ends only at rate 1, so it
# is drawn with rate 1 here; its rate < 1 draws are unending (below).
ENDING = {
    name: strategy
    for name, strategy in FIXED_SHAPES.items()
    if name not in ("Cyclical", "WarmRestarts", "ExponentialDecay")
}
ENDING["ExponentialDecay(rate=1)"] = st.builds(
    ExponentialDecay,
    lrs,
    rate=st.just(1.0),
    decay_steps=st.integers(1, 50),
    staircase=st.booleans(),
)


@pytest.mark.parametrize("strategy", ENDING.values(), ids=ENDING.keys())
@few
@given(data=st.data())
def test_value_holds_from_the_horizon_on(strategy, data):
    policy = data.draw(strategy)
    assert policy.horizon is not None and policy.horizon == expected_horizon(policy)
    final = policy.at(policy.horizon)
    for t in [*range(policy.horizon, policy.horizon + 50), 10**6, 10**12]:
        assert policy.at(t) == final
    policy.load_state_dict({**policy.state_dict(), "state": {"t": policy.horizon + 1000}})
    assert policy.step() == final  # never raises like torch's "Tried to step N times"


UNENDING = {
    "Cyclical": FIXED_SHAPES["Cyclical"],
    "WarmRestarts": FIXED_SHAPES["WarmRestarts"],
    "ExponentialDecay(rate<1)": st.builds(
        ExponentialDecay,
        lrs,
        rate=st.floats(min_value=1e-3, max_value=1.0, exclude_max=True),
        decay_steps=st.integers(1, 50),
        staircase=st.booleans(),
    ),
}


@pytest.mark.parametrize("strategy", UNENDING.values(), ids=UNENDING.keys())
@few
@given(data=st.data())
def test_an_unending_shape_has_no_horizon(strategy, data):
    policy = data.draw(strategy)
    assert policy.horizon is None and expected_horizon(policy) is None


@pytest.mark.parametrize(
    ("policy", "t", "later", "value", "later_value"),
    [
        # A cycle of 10 starts at lr_min and peaks 4 steps in, a million cycles out.
        (Cyclical(0.01, 0.11, step_size_up=4, step_size_down=6), 10**7, 10**7 + 4, 0.01, 0.11),
        # Restart 30 of period 3, doubling: starts at 3 * (2**30 - 1); the step before ends one.
        (
            WarmRestarts(1.0, period=3, period_mult=2),
            3 * (2**30 - 1) - 1,
            3 * (2**30 - 1),
            (1 + math.cos(math.pi * (3 * 2**29 - 1) / (3 * 2**29))) / 2,
            1.0,
        ),
        (WarmRestarts(1.0, period=10), 10**7 + 5, 10**7 + 10, 0.5, 1.0),
        # 0.1 * 0.5**1000 is still a normal float: the decay goes on past step 10**6.
        (
            ExponentialDecay(0.1, 0.5, decay_steps=1000),
            10**6,
            10**6 + 1000,
            0.1 * 0.5**1000,
            0.1 * 0.5**1001,
        ),
    ],
    ids=["Cyclical", "WarmRestarts-doubling", "WarmRestarts", "ExponentialDecay"],
)
def test_an_unending_shape_still_moves_far_past_any_walk(policy, t, later, value, later_value):
    assert policy.at(t).lr == pytest.approx(value, rel=1e-9)
    assert policy.at(later).lr == pytest.approx(later_value, rel=1e-9)


# -- StepDecay -------------------------------------------------------------------------


def test_free_at_is_the_papers_three_step_schedule():
    p = StepDecay.free_at()
    assert p.get_config() == {"lr": 0.1, "milestones": [40000, 60000], "factor": 0.1}
    assert p.at(0).lr == 0.1 and p.at(39999).lr == 0.1
    assert p.at(40000).lr == pytest.approx(0.01, rel=1e-12)
    assert p.at(59999).lr == pytest.approx(0.01, rel=1e-12)
    assert p.at(60000).lr == pytest.approx(0.001, rel=1e-12)
    assert p.at(80000).lr == pytest.approx(0.001, rel=1e-12)
    assert p.horizon == 60000 and p.momentum is None


def test_free_at_scales_its_milestones_to_the_budget():
    p = StepDecay.free_at(lr=0.2, total_steps=1000)
    assert p.get_config()["milestones"] == [500, 750]
    assert [p.at(t).lr for t in (499, 500, 749, 750)] == pytest.approx(
        [0.2, 0.02, 0.02, 0.002], rel=1e-12
    )


def test_step_decay_applies_the_new_value_from_the_milestone_itself():
    p = StepDecay(1.0, milestones=[3, 5], factor=0.5)
    assert [p.at(t).lr for t in range(7)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_step_decay_without_milestones_is_constant():
    p = StepDecay(0.3, milestones=[])
    assert p.horizon == 0 and p.at(0) == p.at(10**9) == Hyper(0.3, None)


# -- LinearDecay ----------------------------------------------------------------------


def test_linear_decay_interpolates_then_holds_the_end_value():
    p = LinearDecay(0.1, 0.02, total_steps=8)
    assert p.at(0).lr == 0.1
    assert p.at(4).lr == pytest.approx(0.06, rel=1e-12)
    assert p.at(6).lr == pytest.approx(0.04, rel=1e-12)
    assert p.at(8).lr == 0.02 and p.at(1000).lr == 0.02 and p.horizon == 8


def test_linear_decay_may_ramp_up():
    p = LinearDecay(0.01, 0.1, total_steps=10)
    assert p.at(5).lr == pytest.approx(0.055, rel=1e-12) and p.at(10).lr == 0.1


# -- ExponentialDecay -------------------------------------------------------------------


def test_exponential_decay_follows_rate_per_decay_steps():
    p = ExponentialDecay(0.1, rate=0.5, decay_steps=4)
    assert p.at(0).lr == 0.1
    assert p.at(2).lr == pytest.approx(0.1 * 0.5**0.5, rel=1e-12)
    assert p.at(8).lr == pytest.approx(0.025, rel=1e-12)


def test_staircase_exponential_decay_drops_only_at_multiples_of_decay_steps():
    p = ExponentialDecay(0.1, rate=0.5, decay_steps=4, staircase=True)
    assert [p.at(t).lr for t in range(9)] == pytest.approx(
        [0.1] * 4 + [0.05] * 4 + [0.025], rel=1e-12
    )


def test_exponential_decay_never_underflows_to_zero():
    p = ExponentialDecay(1e-6, rate=0.5)
    assert p.at(10**6).lr == LR_FLOOR > 0
    assert ExponentialDecay(0.1, rate=1.0).horizon == 0
    assert ExponentialDecay(0.1, rate=0.9).horizon is None


# -- OneCycle -------------------------------------------------------------------------


def test_paper_one_cycle_hits_its_corners():
    lr_max, total = 0.2, 1000
    p = OneCycle.paper(lr_max, total)
    # Phase ends as in torch's OneCycleLR: 0.45 * 1000 - 1 = 449, 0.9 * 1000 - 2 = 898, 999.
    assert p.at(0) == Hyper(pytest.approx(0.02, rel=1e-12), 0.95)
    assert p.at(449) == Hyper(pytest.approx(0.2, rel=1e-12), pytest.approx(0.85, rel=1e-12))
    assert p.at(898) == Hyper(pytest.approx(0.02, rel=1e-12), pytest.approx(0.95, rel=1e-12))
    assert p.at(999) == Hyper(pytest.approx(0.0002, rel=1e-12), 0.95)
    assert p.at(5000) == p.at(999) and p.horizon == 999
    # Linear in between: a quarter of the way up, and half way down the tail.
    assert p.at(449 // 4).lr == pytest.approx(0.02 + 0.18 * (449 // 4) / 449, rel=1e-12)
    assert p.at(948).lr == pytest.approx(0.02 - 0.0198 * 50 / 101, rel=1e-12)
    assert p.at(948).momentum == 0.95
    lrs = [p.at(t).lr for t in range(total)]
    assert max(lrs) == pytest.approx(lr_max, rel=1e-12) and lrs.index(max(lrs)) == 449


def test_paper_one_cycle_config_is_the_three_phase_one_cycle():
    config = OneCycle.paper(0.2, 1000).to_config()
    assert config == {
        "policy": "OneCycle",
        "lr_max": 0.2,
        "total_steps": 1000,
        "pct_start": 0.45,
        "div_factor": 10.0,
        "final_div_factor": 100.0,
        "three_phase": True,
        "anneal": "linear",
        "momentum": [0.85, 0.95],
    }


def test_one_cycle_defaults_start_low_peak_at_pct_start_and_end_at_the_floor():
    p = OneCycle(0.1, total_steps=100)
    assert p.at(0) == Hyper(pytest.approx(0.004, rel=1e-12), pytest.approx(0.95, rel=1e-12))
    assert p.at(29) == Hyper(pytest.approx(0.1, rel=1e-12), pytest.approx(0.85, rel=1e-12))
    assert p.at(99) == Hyper(pytest.approx(4e-7, rel=1e-12), pytest.approx(0.95, rel=1e-12))


def test_one_cycle_zero_length_first_phase_starts_at_the_peak():
    # pct_start * total_steps == 1: torch divides by zero at step 0; we take the phase's end.
    p = OneCycle(0.1, total_steps=10, pct_start=0.1)
    assert p.at(0).lr == pytest.approx(0.1, rel=1e-12)


def test_one_cycle_without_momentum_drives_none():
    p = OneCycle(0.1, total_steps=10, momentum=None)
    assert all(p.at(t).momentum is None for t in range(12))


def test_loading_state_of_another_length_is_refused():
    state = OneCycle(0.1, total_steps=100).state_dict()
    with pytest.raises(ValueError, match="differs"):
        OneCycle(0.1, total_steps=200).load_state_dict(state)


# -- Cyclical -------------------------------------------------------------------------


def test_triangular_cycle_goes_min_max_min_with_inverse_momentum():
    p = Cyclical(0.01, 0.11, step_size_up=4, step_size_down=6, momentum=(0.8, 0.9))
    assert p.at(0) == Hyper(0.01, 0.9)
    assert p.at(2) == Hyper(pytest.approx(0.06, rel=1e-12), pytest.approx(0.85, rel=1e-12))
    assert p.at(4) == Hyper(pytest.approx(0.11, rel=1e-12), pytest.approx(0.8, rel=1e-12))
    assert p.at(7).lr == pytest.approx(0.06, rel=1e-12)
    assert p.at(10) == Hyper(0.01, 0.9) and p.at(14).lr == pytest.approx(0.11, rel=1e-12)
    assert p.horizon is None


def test_triangular2_halves_the_amplitude_each_cycle():
    p = Cyclical(0.01, 0.11, step_size_up=5, mode="triangular2", momentum=None)
    peaks = [p.at(5 + 10 * k).lr for k in range(4)]
    assert peaks == pytest.approx([0.11, 0.06, 0.035, 0.0225], rel=1e-12)


def test_triangular2_runs_past_a_thousand_cycles():
    # torch's 1 / 2.0 ** (cycle - 1) raises OverflowError from cycle 1025 on.
    p = Cyclical(0.01, 0.11, step_size_up=1, mode="triangular2")
    assert p.at(2 * 1025 + 1).lr == 0.01 and p.at(10**9 + 1).lr == 0.01
    assert p.at(2 * 10 + 1).lr == pytest.approx(0.01 + 0.1 / 2**10, rel=1e-12)


def test_exp_range_scales_the_amplitude_by_gamma_per_step():
    p = Cyclical(0.01, 0.11, step_size_up=5, mode="exp_range", gamma=0.9)
    assert p.at(5).lr == pytest.approx(0.01 + 0.1 * 0.9**5, rel=1e-12)
    assert p.at(25).lr == pytest.approx(0.01 + 0.1 * 0.9**25, rel=1e-12)


# -- WarmRestarts ---------------------------------------------------------------------


def test_cosine_restarts_at_each_period_with_decayed_peaks():
    p = WarmRestarts(0.1, period=10, lr_min=0.01, peak_decay=0.5)
    assert p.at(0).lr == 0.1
    assert p.at(5).lr == pytest.approx(0.055, rel=1e-12)
    assert p.at(10).lr == pytest.approx(0.01 + 0.09 * 0.5, rel=1e-12)
    assert p.at(25).lr == pytest.approx(0.01 + 0.09 * 0.25 / 2, rel=1e-12)
    assert p.horizon is None and p.momentum is None


def test_period_mult_lengthens_each_restart_on_a_continuous_clock():
    p = WarmRestarts(1.0, period=4, period_mult=2)
    restarts = [t for t in range(1, 60) if p.at(t).lr > p.at(t - 1).lr]
    assert restarts == [4, 12, 28]  # 4, 4 + 8, 4 + 8 + 16
    q = WarmRestarts(1.0, period=2, period_mult=1.5)
    # Restart i starts at 2 * (1.5**i - 1) / 0.5: 0, 2, 5, 9.5, 16.25 -> first steps 2, 5, 10, 17.
    assert [t for t in range(1, 20) if q.at(t).lr > q.at(t - 1).lr] == [2, 5, 10, 17]
    assert q.at(10).lr == pytest.approx((1 + math.cos(math.pi * 0.5 / 6.75)) / 2, rel=1e-12)


def test_a_restart_due_at_a_step_lands_on_it_despite_rounding():
    # 11 // 1.1 == 9.0, but restart 10 of period 1.1 is due at step 11.
    p = WarmRestarts(1.0, period=1.1)
    assert p.at(11).lr == 1.0
    assert p.at(12).lr == pytest.approx((1 + math.cos(math.pi * (12 / 1.1 - 10))) / 2, rel=1e-12)


def test_restart_boundaries_are_exact_far_out():
    # The restart index comes from a logarithm; it must not land one cycle off at a boundary.
    p = WarmRestarts(1.0, period=3, period_mult=2)
    for i in range(1, 40):
        start = 3 * (2**i - 1)
        previous_length = 3 * 2 ** (i - 1)
        assert p.at(start).lr == 1.0
        assert p.at(start - 1).lr == pytest.approx(
            (1 + math.cos(math.pi * (previous_length - 1) / previous_length)) / 2, rel=1e-12
        )


def test_restart_boundaries_are_exact_where_the_logarithm_lands_low():
    # With period_mult 3, log(3**i) / log(3) comes out just under i for i = 1, 5, 10, 13, ...
    # (Keras then starts restart i one step late); the restart must still start on its step.
    p = WarmRestarts(1.0, period=1, period_mult=3)
    for i in range(1, 34):
        start = (3**i - 1) // 2
        previous_length = 3 ** (i - 1)
        assert p.at(start).lr == 1.0, i
        assert p.at(start - 1).lr == pytest.approx(
            (1 + math.cos(math.pi * (previous_length - 1) / previous_length)) / 2, rel=1e-12
        )
    # Period 1.1: restart 4 is due at 1.1 * 40 = 44 steps, where 44 / 1.1 == 40.0 exactly.
    q = WarmRestarts(1.0, period=1.1, period_mult=3)
    assert q.at(44).lr == 1.0
    assert q.at(43).lr == pytest.approx((1 + math.cos(math.pi * (43 / 1.1 - 13) / 27)) / 2)


def test_linear_and_trapezoid_shapes():
    lin = WarmRestarts(0.1, period=10, lr_min=0.0, shape="linear")
    assert [lin.at(t).lr for t in (0, 5, 9, 10)] == pytest.approx([0.1, 0.05, 0.01, 0.1], rel=1e-12)
    trap = WarmRestarts(0.1, period=10, lr_min=0.02, shape="trapezoid")
    assert [trap.at(t).lr for t in (0, 4, 5, 6, 8, 10)] == pytest.approx(
        [0.1, 0.1, 0.1, 0.02 + 0.08 * 0.8, 0.02 + 0.08 * 0.4, 0.1], rel=1e-12
    )


# -- bad input -------------------------------------------------------------------------

BAD = [
    (StepDecay, {"lr": 0.0, "milestones": [1]}, "lr", "0.0"),
    (StepDecay, {"lr": 0.1, "milestones": [5, 5]}, "milestones", "[5, 5]"),
    (StepDecay, {"lr": 0.1, "milestones": [0, 5]}, r"milestones\[0\]", "0"),
    (StepDecay, {"lr": 0.1, "milestones": [2.5]}, r"milestones\[0\]", "2.5"),
    (StepDecay, {"lr": 0.1, "milestones": "10"}, "milestones", "'10'"),
    (StepDecay, {"lr": 0.1, "milestones": [1], "factor": 1.5}, "factor", "1.5"),
    (StepDecay, {"lr": 0.1, "milestones": [1], "factor": 0.0}, "factor", "0.0"),
    (LinearDecay, {"lr_start": -1.0, "lr_end": 0.1, "total_steps": 5}, "lr_start", "-1.0"),
    (LinearDecay, {"lr_start": 0.1, "lr_end": 0.0, "total_steps": 5}, "lr_end", "0.0"),
    (LinearDecay, {"lr_start": 0.1, "lr_end": 0.1, "total_steps": 0}, "total_steps", "0"),
    (ExponentialDecay, {"lr": math.inf, "rate": 0.5}, "lr", "inf"),
    (ExponentialDecay, {"lr": 0.1, "rate": 1.5}, "rate", "1.5"),
    (ExponentialDecay, {"lr": 0.1, "rate": math.nan}, "rate", "nan"),
    (ExponentialDecay, {"lr": 0.1, "rate": 0.5, "decay_steps": 0}, "decay_steps", "0"),
    (ExponentialDecay, {"lr": 0.1, "rate": 0.5, "staircase": "yes"}, "staircase", "'yes'"),
    (OneCycle, {"lr_max": 0.0, "total_steps": 10}, "lr_max", "0.0"),
    (OneCycle, {"lr_max": 0.1, "total_steps": 10.0}, "total_steps", "10.0"),
    (OneCycle, {"lr_max": 0.1, "total_steps": 10, "pct_start": 1.2}, "pct_start", "1.2"),
    (
        OneCycle,
        {"lr_max": 0.1, "total_steps": 10, "pct_start": 0.6, "three_phase": True},
        "pct_start",
        "0.6",
    ),
    (OneCycle, {"lr_max": 0.1, "total_steps": 10, "div_factor": 0.5}, "div_factor", "0.5"),
    (
        OneCycle,
        {"lr_max": 0.1, "total_steps": 10, "final_div_factor": -1.0},
        "final_div_factor",
        "-1.0",
    ),
    (OneCycle, {"lr_max": 0.1, "total_steps": 10, "anneal": "cosine"}, "anneal", "'cosine'"),
    (OneCycle, {"lr_max": 0.1, "total_steps": 10, "three_phase": 1}, "three_phase", "1"),
    (OneCycle, {"lr_max": 0.1, "total_steps": 10, "momentum": (0.95, 0.85)}, "momentum", "0.95"),
    (OneCycle, {"lr_max": 0.1, "total_steps": 10, "momentum": (0.8, 1.5)}, r"momentum\[1\]", "1.5"),
    (Cyclical, {"lr_min": 0.2, "lr_max": 0.1, "step_size_up": 5}, "lr_min", "0.2"),
    (Cyclical, {"lr_min": 0.0, "lr_max": 0.1, "step_size_up": 5}, "lr_min", "0.0"),
    (Cyclical, {"lr_min": 0.01, "lr_max": 0.1, "step_size_up": 0}, "step_size_up", "0"),
    (
        Cyclical,
        {"lr_min": 0.01, "lr_max": 0.1, "step_size_up": 5, "step_size_down": -2},
        "step_size_down",
        "-2",
    ),
    (Cyclical, {"lr_min": 0.01, "lr_max": 0.1, "step_size_up": 5, "mode": "tri"}, "mode", "'tri'"),
    (Cyclical, {"lr_min": 0.01, "lr_max": 0.1, "step_size_up": 5, "gamma": 1.1}, "gamma", "1.1"),
    (WarmRestarts, {"lr_max": 0.1, "period": 0.5}, "period", "0.5"),
    (WarmRestarts, {"lr_max": 0.1, "period": 10, "lr_min": -0.01}, "lr_min", "-0.01"),
    (WarmRestarts, {"lr_max": 0.1, "period": 10, "lr_min": 0.2}, "lr_min", "0.2"),
    (WarmRestarts, {"lr_max": 0.1, "period": 10, "period_mult": 0.5}, "period_mult", "0.5"),
    (WarmRestarts, {"lr_max": 0.1, "period": 10, "period_mult": 1e4}, "period_mult", "10000.0"),
    (WarmRestarts, {"lr_max": 0.1, "period": 10, "peak_decay": 1.5}, "peak_decay", "1.5"),
    (WarmRestarts, {"lr_max": 0.1, "period": 10, "shape": "cos"}, "shape", "'cos'"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "param", "value"),
    BAD,
    ids=[f"{cls.__name__}-{param}-{value}" for cls, _, param, value in BAD],
)
def test_bad_argument_error_names_parameter_and_value(cls, kwargs, param, value):
    with pytest.raises((ValueError, TypeError), match=rf"{param}.*{value}|{value}.*{param}"):
        cls(**kwargs)


def test_free_at_rejects_a_budget_too_short_for_two_milestones():
    with pytest.raises(ValueError, match=r"total_steps.*>= 3.*2"):
        StepDecay.free_at(total_steps=2)


def test_step_decay_refuses_an_lr_that_underflows_to_zero():
    with pytest.raises(ValueError, match="underflows"):
        StepDecay(1e-300, milestones=list(range(1, 40)), factor=1e-10)
