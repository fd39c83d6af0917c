"""Edges of the sources: step counts beyond 2**53 and metrics that span the float range."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from itertools import islice

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from accelat_core import (
    AccelAT,
    Constant,
    Cyclical,
    ExponentialDecay,
    LinearDecay,
    OneCycle,
    Plateau,
    Policy,
    RangeTest,
    StepDecay,
    cycle_batches,
    join,
    warmup,
)
from accelat_core._validate import MAX_STEPS

#: The issue's case: a step count of 300 digits.
HUGE = 10**299


def accelat(**kwargs: object) -> AccelAT:
    return AccelAT(**{"lr_max": 0.1, "min_lr": 0.001, "min_gain": 0.0, "factor": 0.5} | kwargs)


# Every integer argument that reaches float arithmetic (or a clock compared with one), as
# (the name its error must carry, a builder taking that argument's value, its largest value).
INTEGER_ARGUMENTS: dict[str, tuple[str, Callable[[int], Policy], int]] = {
    "warmup steps": ("steps", lambda n: warmup(StepDecay.free_at(1.0, 3), steps=n), MAX_STEPS),
    "join phase length": (
        r"phases\[0\]\[1\]",
        lambda n: join([(Constant(0.1), n), (Constant(0.2), None)]),
        MAX_STEPS,
    ),
    "Cyclical.step_size_up": ("step_size_up", lambda n: Cyclical(0.01, 0.1, n), MAX_STEPS),
    "Cyclical.step_size_down": (
        "step_size_down",
        lambda n: Cyclical(0.01, 0.1, 1, step_size_down=n),
        MAX_STEPS,
    ),
    "ExponentialDecay.decay_steps": (
        "decay_steps",
        lambda n: ExponentialDecay(0.1, 0.5, decay_steps=n),
        MAX_STEPS,
    ),
    "LinearDecay.total_steps": ("total_steps", lambda n: LinearDecay(0.1, 0.01, n), MAX_STEPS),
    "OneCycle.total_steps": ("total_steps", lambda n: OneCycle(0.1, n), MAX_STEPS),
    "StepDecay.milestones": (r"milestones\[0\]", lambda n: StepDecay(0.1, [n]), MAX_STEPS),
    "StepDecay.free_at.total_steps": (
        "total_steps",
        lambda n: StepDecay.free_at(0.1, n),
        MAX_STEPS,
    ),
    "RangeTest.num_steps": ("num_steps", lambda n: RangeTest(1e-3, 1.0, n), MAX_STEPS),
    "AccelAT.window": ("window", lambda n: accelat(window=n), 10_000),
    "AccelAT.cooldown": ("cooldown", lambda n: accelat(window=2, cooldown=n), MAX_STEPS),
    "AccelAT.warmup": ("warmup", lambda n: accelat(window=2, warmup=n), MAX_STEPS),
    "AccelAT.stop_patience": (
        "stop_patience",
        lambda n: accelat(window=2, stop_patience=n),
        MAX_STEPS,
    ),
    "AccelAT.samples": ("samples", lambda n: accelat(window=2, samples=n), MAX_STEPS),
    "Plateau.patience": ("patience", lambda n: Plateau(0.1, patience=n), MAX_STEPS),
    "Plateau.cooldown": ("cooldown", lambda n: Plateau(0.1, cooldown=n), MAX_STEPS),
}


def test_warmup_of_a_300_digit_steps_names_steps_instead_of_overflowing() -> None:
    # The exact case: this raised OverflowError in compose.py (... / self.steps).
    with pytest.raises(ValueError, match=r"steps must be an integer in \[0, 2\*\*53\], got 1000"):
        warmup(StepDecay.free_at(lr=1.0, total_steps=3), steps=HUGE)


@pytest.mark.parametrize("argument", INTEGER_ARGUMENTS)
@given(extra=st.integers(1, 10**400))
@example(extra=1)
@example(extra=HUGE)
def test_every_integer_argument_beyond_its_bound_raises_value_error_naming_it(
    argument, extra
) -> None:
    name, build, largest = INTEGER_ARGUMENTS[argument]
    with pytest.raises(ValueError, match=rf"^{name} must be an integer in \[\d+, "):
        build(largest + extra)


@pytest.mark.parametrize("argument", INTEGER_ARGUMENTS)
def test_every_integer_argument_at_its_bound_is_accepted_and_steps(argument) -> None:
    _, build, largest = INTEGER_ARGUMENTS[argument]
    policy = build(largest)
    h = policy.step(0.5)
    assert math.isfinite(h.lr) and h.lr > 0
    json.dumps(policy.state_dict(), allow_nan=False)


# -- AccelAT: a gain that overflows ---------------------------------------------------------

BIG = 1e308


@pytest.mark.parametrize("gain", ["endpoint", "windows", "slope"])
def test_overflowing_gain_raises_naming_evaluation_and_values_and_leaves_the_state(gain) -> None:
    # window 1: every estimator is a +-1 difference, so BIG - (-BIG) leaves the float range.
    p = accelat(window=1, gain=gain, warmup=0, cooldown=0)
    for m in [BIG, BIG, BIG, BIG]:
        p.step(m)
    before = copy.deepcopy(p.state_dict())
    with pytest.raises(ValueError, match=r"the gain at evaluation 4 overflows to -inf: the values"):
        p.step(-BIG)
    assert p.state_dict() == before
    # The next finite gain is decided as if the refused metric had never come.
    fresh = accelat(window=1, gain=gain, warmup=0, cooldown=0)
    for m in [BIG, BIG, BIG, BIG, 0.0, 0.0]:
        fresh.step(m)
    for m in [0.0, 0.0]:
        p.step(m)
    assert p.state_dict() == fresh.state_dict()


def test_overflowing_gain_message_lists_the_values_read() -> None:
    p = accelat(window=1, warmup=0)
    p.step(BIG)
    with pytest.raises(ValueError, match=r"values \[1e\+308, -1e\+308\] span more than"):
        p.step(-BIG)


@pytest.mark.parametrize("history_full", [False, True])
def test_overflowing_gain_is_skipped_like_a_nan_with_nan_policy_skip(history_full) -> None:
    p = accelat(window=1, warmup=0, cooldown=0, nan_policy="skip")
    head = [BIG, BIG, BIG, BIG] if history_full else [BIG]
    for m in head:
        p.step(m)
    before = copy.deepcopy(p.state_dict()["state"])
    p.step(-BIG)
    after = p.state_dict()["state"]
    assert after["skipped"] == [len(head)]
    assert after | {"skipped": []} == before


@given(
    metrics=st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=40),
    gain=st.sampled_from(["endpoint", "windows", "slope"]),
    mode=st.sampled_from(["max", "min"]),
    window=st.integers(1, 4),
    nan_policy=st.sampled_from(["raise", "skip"]),
)
@example(
    metrics=[1e308, 1e308, -1e308, 1e308, -1e308],
    gain="endpoint",
    mode="max",
    window=1,
    nan_policy="raise",
)
@example(
    metrics=[-1.7976931348623157e308, 1.7976931348623157e308] * 3,
    gain="windows",
    mode="min",
    window=1,
    nan_policy="skip",
)
def test_state_dict_is_strict_json_after_any_finite_metrics(
    metrics, gain, mode, window, nan_policy
) -> None:
    p = accelat(window=window, gain=gain, mode=mode, cooldown=0, warmup=0, nan_policy=nan_policy)
    for m in metrics:
        before = json.dumps(p.state_dict(), allow_nan=False)
        try:
            p.step(m)
        except ValueError as exc:
            assert nan_policy == "raise" and "overflows" in str(exc)
            assert json.dumps(p.state_dict(), allow_nan=False) == before
        text = json.dumps(p.state_dict(), allow_nan=False)
        assert all(math.isfinite(d.gain) for d in p.decisions)
        resumed = accelat(
            window=window, gain=gain, mode=mode, cooldown=0, warmup=0, nan_policy=nan_policy
        )
        resumed.load_state_dict(json.loads(text))
        assert resumed.state_dict() == p.state_dict()


# -- the LR finder's batch cycle -----------------------------------------------------------


class Passes:
    """An iterable whose every pass yields new values (as a shuffling loader does)."""

    def __init__(self) -> None:
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        yield from (10 * self.passes + k for k in range(2))


def test_cycle_batches_iterates_again_without_caching() -> None:
    assert list(islice(cycle_batches(Passes()), 5)) == [10, 11, 20, 21, 30]


def test_cycle_batches_of_an_empty_loader_raises_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^lr_find's loader yielded no batches$"):
        next(cycle_batches([], name="loader"))
