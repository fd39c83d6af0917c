"""Exact argument checks, defaults and boundary values of the fixed schedules.

Every refused argument is matched against its whole message (parameter name, bound,
value); every bound is tested on both sides. Expected values are written out or come
from plain-Python formulas, never from the code under test.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

from accelat_core import (
    Constant,
    Cyclical,
    ExponentialDecay,
    Hyper,
    LinearDecay,
    Policy,
    StepDecay,
    WarmRestarts,
)

#: The float just above 1.0 and just above 1000.0: the smallest values past a closed bound.
ABOVE_1 = math.nextafter(1.0, 2.0)
ABOVE_1000 = math.nextafter(1000.0, 2000.0)
TINY = 5e-324  # the smallest positive float: inside any bound open at 0

CYC: dict[str, Any] = {"lr_min": 0.01, "lr_max": 0.1, "step_size_up": 1}
WR: dict[str, Any] = {"lr_max": 0.1, "period": 1}


def _cyc(**kw: Any) -> dict[str, Any]:
    return {**CYC, **kw}


def _wr(**kw: Any) -> dict[str, Any]:
    return {**WR, **kw}


REFUSED: list[tuple[Callable[..., Policy], dict[str, Any], type[Exception], str]] = [
    (Constant, {"lr": 0}, ValueError, "lr must be in (0, inf), got 0"),
    (Cyclical, _cyc(lr_min=0), ValueError, "lr_min must be in (0, inf), got 0"),
    (Cyclical, _cyc(lr_max=0), ValueError, "lr_max must be in (0, inf), got 0"),
    (
        Cyclical,
        _cyc(lr_min=0.2),
        ValueError,
        "lr_min must be <= lr_max, got lr_min=0.2 > lr_max=0.1",
    ),
    (
        Cyclical,
        _cyc(mode="x"),
        ValueError,
        "mode must be one of 'triangular', 'triangular2', 'exp_range', got 'x'",
    ),
    (Cyclical, _cyc(gamma=0.0), ValueError, "gamma must be in (0, 1], got 0.0"),
    (Cyclical, _cyc(gamma=-0.5), ValueError, "gamma must be in (0, 1], got -0.5"),
    (Cyclical, _cyc(gamma=ABOVE_1), ValueError, f"gamma must be in (0, 1], got {ABOVE_1!r}"),
    (
        Cyclical,
        _cyc(momentum="ab"),
        TypeError,
        "momentum must be None or a (low, high) pair, got 'ab'",
    ),
    (
        Cyclical,
        _cyc(momentum=(0.9, 0.8)),
        ValueError,
        "momentum must satisfy low <= high, got (0.9, 0.8)",
    ),
    (
        Cyclical,
        _cyc(momentum=(-0.1, 0.8)),
        ValueError,
        "momentum[0] must be in [0, 1], got -0.1",
    ),
    (
        LinearDecay,
        {"lr_start": 0, "lr_end": 0.1, "total_steps": 1},
        ValueError,
        "lr_start must be in (0, inf), got 0",
    ),
    (
        LinearDecay,
        {"lr_start": 0.1, "lr_end": 0, "total_steps": 1},
        ValueError,
        "lr_end must be in (0, inf), got 0",
    ),
    (ExponentialDecay, {"lr": 0, "rate": 0.5}, ValueError, "lr must be in (0, inf), got 0"),
    (ExponentialDecay, {"lr": 0.1, "rate": 0.0}, ValueError, "rate must be in (0, 1], got 0.0"),
    (
        ExponentialDecay,
        {"lr": 0.1, "rate": -0.5},
        ValueError,
        "rate must be in (0, 1], got -0.5",
    ),
    (
        ExponentialDecay,
        {"lr": 0.1, "rate": ABOVE_1},
        ValueError,
        f"rate must be in (0, 1], got {ABOVE_1!r}",
    ),
    (WarmRestarts, _wr(lr_max=0), ValueError, "lr_max must be in (0, inf), got 0"),
    (WarmRestarts, _wr(period=0.5), ValueError, "period must be in [1, inf), got 0.5"),
    (WarmRestarts, _wr(lr_min=-0.01), ValueError, "lr_min must be in [0, inf), got -0.01"),
    (
        WarmRestarts,
        _wr(lr_min=0.2),
        ValueError,
        "lr_min must be <= lr_max, got lr_min=0.2 > lr_max=0.1",
    ),
    (
        WarmRestarts,
        _wr(period_mult=0.5),
        ValueError,
        "period_mult must be in [1, 1000], got 0.5",
    ),
    (
        WarmRestarts,
        _wr(period_mult=ABOVE_1000),
        ValueError,
        f"period_mult must be in [1, 1000], got {ABOVE_1000!r}",
    ),
    (WarmRestarts, _wr(peak_decay=0.0), ValueError, "peak_decay must be in (0, 1], got 0.0"),
    (WarmRestarts, _wr(peak_decay=-0.5), ValueError, "peak_decay must be in (0, 1], got -0.5"),
    (
        WarmRestarts,
        _wr(peak_decay=ABOVE_1),
        ValueError,
        f"peak_decay must be in (0, 1], got {ABOVE_1!r}",
    ),
    (
        WarmRestarts,
        _wr(shape="x"),
        ValueError,
        "shape must be one of 'cosine', 'linear', 'trapezoid', got 'x'",
    ),
]


@pytest.mark.parametrize(("cls", "kwargs", "exc", "message"), REFUSED)
def test_refused_argument_message(
    cls: Callable[..., Policy], kwargs: dict[str, Any], exc: type[Exception], message: str
) -> None:
    with pytest.raises(exc, match="^" + re.escape(message) + "$"):
        cls(**kwargs)


ACCEPTED: list[tuple[Callable[..., Policy], dict[str, Any], dict[str, Any]]] = [
    (Constant, {"lr": TINY}, {"policy": "Constant", "lr": TINY}),
    *[
        (
            Cyclical,
            _cyc(gamma=g),
            {
                "policy": "Cyclical",
                "lr_min": 0.01,
                "lr_max": 0.1,
                "step_size_up": 1,
                "step_size_down": None,
                "mode": "triangular",
                "gamma": g,
                "momentum": [0.8, 0.9],
            },
        )
        for g in (TINY, 1.0)
    ],
    (
        Cyclical,
        _cyc(lr_min=0.1, momentum=(0.0, 1.0)),
        {
            "policy": "Cyclical",
            "lr_min": 0.1,
            "lr_max": 0.1,
            "step_size_up": 1,
            "step_size_down": None,
            "mode": "triangular",
            "gamma": 1.0,
            "momentum": [0.0, 1.0],
        },
    ),
    *[
        (
            ExponentialDecay,
            {"lr": 0.1, "rate": r},
            {
                "policy": "ExponentialDecay",
                "lr": 0.1,
                "rate": r,
                "decay_steps": 1,
                "staircase": False,
            },
        )
        for r in (TINY, 1.0)
    ],
    *[
        (
            WarmRestarts,
            _wr(**kw),
            {
                "policy": "WarmRestarts",
                "lr_max": 0.1,
                "period": 1.0,
                "lr_min": 0.0,
                "period_mult": 1.0,
                "peak_decay": 1.0,
                "shape": "cosine",
                **kw,
            },
        )
        for kw in (
            {"period_mult": 1000.0},
            {"peak_decay": TINY},
            {"lr_min": 0.1},
            {"period": 1.0},
        )
    ],
]


@pytest.mark.parametrize(("cls", "kwargs", "config"), ACCEPTED)
def test_boundary_argument_accepted(
    cls: Callable[..., Policy], kwargs: dict[str, Any], config: dict[str, Any]
) -> None:
    assert cls(**kwargs).to_config() == config


def test_classmethod_defaults() -> None:
    assert StepDecay.free_at().to_config() == {
        "policy": "StepDecay",
        "lr": 0.1,
        "milestones": [40000, 60000],
        "factor": 0.1,
    }
    # OneCycle.paper's config: test_fixed_policies.py pins it.


def test_constant_and_linear_end_drive_no_momentum() -> None:
    assert tuple(Constant(0.01).at(7)) == (0.01, None)
    assert tuple(LinearDecay(0.1, 0.01, total_steps=4).at(4)) == (0.01, None)


@pytest.mark.parametrize(("t", "lr"), [(0, 0.01), (2, 0.1), (4, 0.01)])
def test_cyclical_peak_without_momentum(t: int, lr: float) -> None:
    # At t = 2 the cycle position x equals the ratio r = 1/2 exactly: the top of the triangle.
    assert Cyclical(0.01, 0.1, step_size_up=2, momentum=None).at(t) == Hyper(lr, None)


def test_exponential_decay_floor() -> None:
    floor = sys.float_info.min
    assert ExponentialDecay(floor, rate=0.5).at(0) == Hyper(floor, None)  # lands on the floor
    assert ExponentialDecay(floor, rate=0.5).at(1) == Hyper(floor, None)  # held at the floor
    assert ExponentialDecay(0.5, rate=0.5).at(3) == Hyper(0.0625, None)


def _plain_warm_restart(t: int, period: float, mult: int, lr_min: float, amp: float) -> float:
    """Linear-shape lr from restart boundaries summed up in plain integers (``mult`` int)."""
    u = t / period
    i, start, length = 0, 0, 1
    while start + length <= u:
        start, length, i = start + length, length * mult, i + 1
    return lr_min + amp * 0.5**i * (1.0 - (u - start) / length)


@pytest.mark.parametrize("t", range(160))
def test_warm_restarts_boundaries_period_1_1_mult_3(t: int) -> None:
    # Restarts at 1.1, 4.4, 14.3, 44 (t / 1.1 == 40.0 exactly), 133.1 steps.
    policy = WarmRestarts(
        1.0, period=1.1, lr_min=0.125, period_mult=3, peak_decay=0.5, shape="linear"
    )
    assert policy.at(t) == Hyper(_plain_warm_restart(t, 1.1, 3, 0.125, 0.875), None)


def test_warm_restarts_restart_44_lands_on_its_step() -> None:
    policy = WarmRestarts(1.0, period=1.1, period_mult=3, shape="linear")
    assert policy.at(44).lr == 1.0
    assert policy.at(43).lr == 1.0 - (43 / 1.1 - 13) / 27


def test_warm_restarts_first_cycle_just_below_one_period() -> None:
    # u = 1 / period is just below 1, where the logarithm guesses restart 1: settled to 0.
    # at(5) first moves the cached restart away, so at(1) searches afresh.
    period = ABOVE_1
    policy = WarmRestarts(1.0, period=period, period_mult=1000.0, shape="linear")
    assert 1 / period < 1.0
    assert policy.at(5) == Hyper(1.0 - (5 / period - 1) / 1000, None)
    assert policy.at(1) == Hyper(1.0 - 1 / period, None)
    assert policy.at(1).lr == 2.0**-52


def test_warm_restarts_large_multiplier_far_clock() -> None:
    # Restarts at 1, 1 + 1000 = 1001, 1001 + 1000**2 steps: t = 10_000 is in restart 2.
    policy = WarmRestarts(1.0, period=1, period_mult=1000.0, peak_decay=0.5, shape="linear")
    assert policy.at(10_000) == Hyper(0.25 * (1.0 - (10_000 - 1001) / 1000**2), None)
    assert policy.at(10_000).lr == 0.24775025


@pytest.mark.parametrize("lr_min", [0.0, 0.01])
def test_warm_restarts_linear_never_dips_below_lr_min(lr_min: float) -> None:
    # u = 3 / period rounds to just below restart 2's start (2.06...) while
    # (u - 1) / 1.06 rounds to an ulp above 1: the linear shape clamps to lr_min.
    period = 1.45631067961165
    policy = WarmRestarts(0.1, period=period, lr_min=lr_min, period_mult=1.06, shape="linear")
    assert (3 / period - 1) / 1.06 > 1.0
    assert policy.at(3) == Hyper(lr_min, None)
