"""Hypothesis strategies for the fixed-shape policies, shared by the generic property tests.

``fixed_policies()`` draws a random valid instance of each fixed-shape class (StepDecay,
LinearDecay, ExponentialDecay, OneCycle, Cyclical, WarmRestarts, Constant) and of the two
presets (``StepDecay.free_at``, ``OneCycle.paper``). Lengths stay small (<= 300 steps to
the horizon, periods <= 60) so a test can walk a whole trajectory and beyond.

``fixed_policy_bounds(policy)`` gives the inclusive :class:`Bounds` every emitted value
must lie in, from the policy's public config alone: check ``lr_lo <= lr <= lr_hi`` and
``momentum`` None exactly when the bounds' is, else within it. They are widened by
``BOUNDS_SLACK`` (1e-12; relative for lr, absolute for momentum) to absorb rounding in
``lo + (hi - lo) * x``; the lower lr bound is > 0 for every policy except
``WarmRestarts`` with ``lr_min = 0`` and ``Anneal`` with ``lr_end = 0``, and the lower
momentum bound is >= 0.
"""

from __future__ import annotations

from typing import NamedTuple

from hypothesis import strategies as st

from accelat_core import (
    Anneal,
    Constant,
    Cyclical,
    ExponentialDecay,
    LinearDecay,
    OneCycle,
    Schedule,
    StepDecay,
    WarmRestarts,
)
from accelat_core.policies.anneal import ANNEAL_SHAPES
from accelat_core.policies.exponential_decay import LR_FLOOR

BOUNDS_SLACK = 1e-12

#: Learning rates across the range people use, from 1e-6 to 10.
lrs = st.floats(min_value=1e-6, max_value=10.0, allow_nan=False, allow_infinity=False)
fractions = st.floats(min_value=0.0, max_value=1.0)


@st.composite
def momentum_pairs(draw: st.DrawFn) -> tuple[float, float] | None:
    """None, or a (low, high) pair within [0, 1]; sometimes low == high."""
    if draw(st.booleans()):
        return None
    a, b = draw(fractions), draw(fractions)
    return (min(a, b), max(a, b))


@st.composite
def lr_pairs(draw: st.DrawFn) -> tuple[float, float]:
    """(low, high) learning rates with 0 < low <= high."""
    a, b = draw(lrs), draw(lrs)
    return (min(a, b), max(a, b))


@st.composite
def step_decays(draw: st.DrawFn) -> StepDecay:
    marks = draw(st.lists(st.integers(1, 300), max_size=4, unique=True))
    factor = draw(st.floats(min_value=1e-3, max_value=1.0))
    return StepDecay(draw(lrs), milestones=sorted(marks), factor=factor)


@st.composite
def linear_decays(draw: st.DrawFn) -> LinearDecay:
    return LinearDecay(draw(lrs), draw(lrs), total_steps=draw(st.integers(1, 300)))


@st.composite
def exponential_decays(draw: st.DrawFn) -> ExponentialDecay:
    return ExponentialDecay(
        draw(lrs),
        rate=draw(st.floats(min_value=1e-3, max_value=1.0)),
        decay_steps=draw(st.integers(1, 50)),
        staircase=draw(st.booleans()),
    )


@st.composite
def one_cycles(draw: st.DrawFn) -> OneCycle:
    three_phase = draw(st.booleans())
    return OneCycle(
        draw(lrs),
        total_steps=draw(st.integers(1, 300)),
        pct_start=draw(st.floats(min_value=0.0, max_value=0.5 if three_phase else 1.0)),
        div_factor=draw(st.floats(min_value=1.0, max_value=1e3)),
        final_div_factor=draw(st.floats(min_value=1.0, max_value=1e5)),
        three_phase=three_phase,
        anneal=draw(st.sampled_from(["cos", "linear"])),
        momentum=draw(momentum_pairs()),
    )


@st.composite
def cyclicals(draw: st.DrawFn) -> Cyclical:
    lr_min, lr_max = draw(lr_pairs())
    return Cyclical(
        lr_min,
        lr_max,
        step_size_up=draw(st.integers(1, 60)),
        step_size_down=draw(st.none() | st.integers(1, 60)),
        mode=draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
        gamma=draw(st.floats(min_value=0.9, max_value=1.0)),
        momentum=draw(momentum_pairs()),
    )


@st.composite
def warm_restarts(draw: st.DrawFn) -> WarmRestarts:
    lr_max = draw(lrs)
    lr_min = draw(st.just(0.0) | st.floats(min_value=0.0, max_value=1.0).map(lambda x: x * lr_max))
    return WarmRestarts(
        lr_max,
        period=draw(st.integers(1, 60) | st.floats(min_value=1.0, max_value=60.0)),
        lr_min=min(lr_min, lr_max),
        period_mult=draw(st.just(1.0) | st.integers(1, 3) | st.floats(1.0, 3.0)),
        peak_decay=draw(st.floats(min_value=0.01, max_value=1.0)),
        shape=draw(st.sampled_from(["cosine", "linear", "trapezoid"])),
    )


@st.composite
def anneals(draw: st.DrawFn) -> Anneal:
    lr_start = draw(lrs)
    return Anneal(
        lr_start,
        total_steps=draw(st.integers(1, 300)),
        shape=draw(st.sampled_from(ANNEAL_SHAPES)),
        lr_end=draw(st.just(0.0) | fractions.map(lambda x: x * lr_start)),
    )


def free_ats() -> st.SearchStrategy[StepDecay]:
    return st.builds(StepDecay.free_at, lr=lrs, total_steps=st.integers(3, 300))


def papers() -> st.SearchStrategy[OneCycle]:
    return st.builds(OneCycle.paper, lr_max=lrs, total_steps=st.integers(1, 300))


def constants() -> st.SearchStrategy[Constant]:
    return st.builds(Constant, lr=lrs)


# Every fixed-shape policy and preset, by test id: the one list the property tests, the
# three-framework test and fixed_policies() draw from.
FIXED_SHAPES: dict[str, st.SearchStrategy[Schedule]] = {
    "StepDecay": step_decays(),
    "LinearDecay": linear_decays(),
    "ExponentialDecay": exponential_decays(),
    "OneCycle": one_cycles(),
    "Cyclical": cyclicals(),
    "WarmRestarts": warm_restarts(),
    "Anneal": anneals(),
    "StepDecay.free_at": free_ats(),
    "OneCycle.paper": papers(),
    "Constant": constants(),
}


def fixed_policies() -> st.SearchStrategy[Schedule]:
    """A random valid instance of one of the fixed-shape policies or presets."""
    return st.one_of(*FIXED_SHAPES.values())


class Bounds(NamedTuple):
    """Inclusive bounds: ``lr_lo <= lr <= lr_hi``; momentum None or within ``momentum``."""

    lr_lo: float
    lr_hi: float
    momentum: tuple[float, float] | None


def _widen(lo: float, hi: float) -> tuple[float, float]:
    return lo * (1 - BOUNDS_SLACK), hi * (1 + BOUNDS_SLACK)


def fixed_policy_bounds(policy: Schedule) -> Bounds:
    """The bounds any value of ``policy`` must respect, derived from its config."""
    c = policy.get_config()
    momentum = None
    if isinstance(policy, StepDecay):
        lo, hi = c["lr"] * c["factor"] ** len(c["milestones"]), c["lr"]
    elif isinstance(policy, LinearDecay):
        lo, hi = sorted((c["lr_start"], c["lr_end"]))
    elif isinstance(policy, ExponentialDecay):
        lo, hi = LR_FLOOR, c["lr"]
    elif isinstance(policy, OneCycle):
        lo, hi = c["lr_max"] / c["div_factor"] / c["final_div_factor"], c["lr_max"]
        momentum = None if c["momentum"] is None else tuple(c["momentum"])
    elif isinstance(policy, Cyclical):
        lo, hi = c["lr_min"], c["lr_max"]
        momentum = None if c["momentum"] is None else tuple(c["momentum"])
    elif isinstance(policy, WarmRestarts):
        lo, hi = c["lr_min"], c["lr_max"]
    elif isinstance(policy, Anneal):
        lo, hi = c["lr_end"], c["lr_start"]
    elif isinstance(policy, Constant):
        lo = hi = c["lr"]
    else:
        raise TypeError(f"no bounds known for {type(policy).__name__}")
    lo, hi = _widen(lo, hi)
    if momentum is not None:
        # ``high - (high - low) * x`` rounds in units of ``high``: an absolute slack, but
        # never below 0 (the forms cannot go negative).
        momentum = (max(0.0, momentum[0] - BOUNDS_SLACK), momentum[1] + BOUNDS_SLACK)
    return Bounds(lo, hi, momentum)
