"""Hypothesis strategies for the metric-driven policies (AccelAT, Plateau) and the composites."""

from __future__ import annotations

from typing import NamedTuple

from hypothesis import strategies as st
from strategies_fixed import BOUNDS_SLACK, fixed_policies, fixed_policy_bounds

from accelat_core import (
    AccelAT,
    JoinSchedule,
    MetricJoin,
    MetricWarmup,
    Plateau,
    Policy,
    RangeTest,
    WarmupSchedule,
    join,
    warmup,
)

# Round numbers make exact ties with min_gain (and so the >= / < edge) likely.
_grid_metric = st.integers(-64, 64).map(lambda k: k / 32)
_any_metric = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
#: Every finite float, 1e308 included: gains can overflow (AccelAT refuses those).
wide_metrics = st.floats(allow_nan=False, allow_infinity=False)


def _plateau(draw: st.DrawFn, min_size: int, max_size: int) -> list[float]:
    """A rise that flattens, on the 1/32 grid with +-1/32 of noise: the shape that makes
    AccelAT cut, clamp at lr_min and stop. Rises 0..8/32 per evaluation, then flat; at
    least 12 long where ``max_size`` allows (lengths drawn uniformly: enough to pass warmup)."""
    n = draw(st.sampled_from(range(max(min_size, min(12, max_size)), max_size + 1)))
    rise = draw(st.sampled_from(range(n + 1)))
    step = draw(st.integers(0, 8))
    start = draw(st.integers(-32, 32))
    noise = draw(st.lists(st.sampled_from([0, 1, -1]), min_size=n, max_size=n))
    return [(start + step * min(k, rise) + noise[k]) / 32 for k in range(n)]


@st.composite
def metric_histories(draw: st.DrawFn, min_size: int = 0, max_size: int = 60) -> list[float]:
    """Evaluation curves: plateaus (three times in five), lists on a coarse grid, or
    arbitrary finite floats within +-1e3 (empty only in those, when ``min_size`` is 0)."""
    kind = draw(st.sampled_from(["plateau", "plateau", "plateau", "grid", "any"]))
    if kind == "plateau":
        return _plateau(draw, min_size, max_size)
    element = _grid_metric if kind == "grid" else _any_metric
    return draw(st.lists(element, min_size=min_size, max_size=max_size))


@st.composite
def accelat_configs(draw: st.DrawFn) -> dict:
    """Keyword arguments of a random valid AccelAT, shaped so that cuts are common (gains
    of a plateau sit below min_gain), lr_min is reached in one to four cuts, and landed
    on exactly or clamped to (a ratio strictly between powers of the factor)."""
    # The extremes, 1e-12 and 1e3, in one draw in three.
    lr_max = draw(st.sampled_from([1e-12, 1e3, None, None, None, None])) or draw(
        st.floats(1e-6, 10.0)
    )
    factor = draw(st.sampled_from([0.1, 0.5, 0.8, 0.999]))
    cuts = draw(st.integers(1, 4))
    # lr_min == lr_max in one draw in eight.
    ratio = draw(
        st.sampled_from([*[factor**cuts] * 3, *[factor**cuts * factor**0.5] * 3, 1e-3, 1.0])
    )
    return {
        "lr_max": lr_max,
        "min_lr": lr_max * ratio,
        "min_gain": draw(st.sampled_from([1 / 32, 0.25, 0.0, -0.5])),
        "factor": factor,
        "window": draw(st.integers(1, 6)),
        "cooldown": draw(st.none() | st.integers(0, 6)),
        "warmup": draw(st.none() | st.integers(0, 10)),
        "mode": draw(st.sampled_from(["max", "min"])),
        "gain": draw(st.sampled_from(["endpoint", "windows", "slope"])),
        "stop_patience": draw(st.none() | st.integers(1, 3)),
        "nan_policy": draw(st.sampled_from(["raise", "skip"])),
    }


def accelat_policies() -> st.SearchStrategy[AccelAT]:
    """Freshly built random valid AccelAT policies (the paper's rule: no anneal)."""
    return accelat_configs().map(lambda c: AccelAT(**c))


@st.composite
def annealing_configs(draw: st.DrawFn) -> dict:
    """An :func:`accelat_configs` with a stop and an anneal after it (its length a fraction
    of the evaluations so far, from a tenth to twice them)."""
    config = draw(accelat_configs())
    return {
        **config,
        # At most four cuts to the floor (a factor of 0.999 with 1e-3 would take thousands).
        "min_lr": max(config["min_lr"], config["lr_max"] * config["factor"] ** 4),
        "stop_patience": draw(st.integers(1, 3)),
        "anneal": draw(st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.0])),
        "anneal_shape": draw(st.sampled_from(["linear", "sqrt", "cosine"])),
    }


def annealing_policies() -> st.SearchStrategy[AccelAT]:
    """Freshly built random valid AccelAT policies with an anneal."""
    return annealing_configs().map(lambda c: AccelAT(**c))


@st.composite
def plateau_configs(draw: st.DrawFn) -> dict:
    """Keyword arguments of a random valid Plateau (torch's ReduceLROnPlateau arguments):
    round thresholds that tie with grid metrics, min_lr from 0 to lr_max, and eps from 0
    to a quarter of lr_max (so a reduction is sometimes ignored)."""
    lr_max = draw(st.sampled_from([1e-12, 1e3, None, None, None, None])) or draw(
        st.floats(1e-6, 10.0)
    )
    mode = draw(st.sampled_from(["min", "max"]))
    threshold_mode = draw(st.sampled_from(["rel", "abs"]))
    # mode="min" with "rel" needs threshold < 1 (else nothing ever improves).
    top = 0.999 if (mode, threshold_mode) == ("min", "rel") else 4.0
    return {
        "lr_max": lr_max,
        "mode": mode,
        # 0.75 with eps = lr_max / 4: a first reduction of exactly eps (not kept).
        "factor": draw(st.sampled_from([0.1, 0.5, 0.75, 0.999]) | st.floats(0.01, 0.99)),
        "patience": draw(st.integers(0, 5)),
        "threshold": draw(st.sampled_from([0.0, 1e-4, 1 / 32, 0.25]) | st.floats(0.0, top)),
        "threshold_mode": threshold_mode,
        "cooldown": draw(st.integers(0, 4)),
        "min_lr": lr_max * draw(st.sampled_from([0.0, 1e-3, 0.5, 1.0]) | st.floats(0.0, 1.0)),
        "eps": draw(st.sampled_from([0.0, 1e-8, lr_max / 4])),
    }


def plateau_policies() -> st.SearchStrategy[Plateau]:
    """Freshly built random valid Plateau policies."""
    return plateau_configs().map(lambda c: Plateau(**c))


# -- every policy, with the envelope its values must stay in -------------------------------


class Envelope(NamedTuple):
    """Inclusive lr bounds; ``momentum`` is the range any driven momentum lies in (``None``
    when no part drives it) and ``momentum_none`` whether ``None`` may be emitted."""

    lr_lo: float
    lr_hi: float
    momentum: tuple[float, float] | None
    momentum_none: bool


def envelope(policy: Policy) -> Envelope:
    """The envelope of ``policy``'s values, from its config (and its children's)."""
    if isinstance(policy, AccelAT):
        c = policy.get_config()  # the anneal ends at 0
        return Envelope(0.0 if c.get("anneal") else c["min_lr"], c["lr_max"], None, True)
    if isinstance(policy, Plateau):
        c = policy.get_config()
        return Envelope(c["min_lr"], c["lr_max"], None, True)
    if isinstance(policy, RangeTest):
        c = policy.get_config()
        lo, hi = c["start_lr"], c["end_lr"]
        return Envelope(lo * (1 - BOUNDS_SLACK), hi * (1 + BOUNDS_SLACK), None, True)
    if isinstance(policy, (WarmupSchedule, MetricWarmup)):
        inner = envelope(policy.inner)
        return _union([inner, Envelope(policy.start_lr, policy.start_lr, None, False)])
    if isinstance(policy, (JoinSchedule, MetricJoin)):
        return _union([envelope(p) for p in policy.policies])
    b = fixed_policy_bounds(policy)
    return Envelope(b.lr_lo, b.lr_hi, b.momentum, b.momentum is None)


def _union(parts: list[Envelope]) -> Envelope:
    momenta = [p.momentum for p in parts if p.momentum is not None]
    return Envelope(
        min(p.lr_lo for p in parts),
        max(p.lr_hi for p in parts),
        (min(m[0] for m in momenta), max(m[1] for m in momenta)) if momenta else None,
        any(p.momentum_none for p in parts),
    )


def range_tests() -> st.SearchStrategy[RangeTest]:
    return st.builds(
        RangeTest,
        start_lr=st.floats(1e-7, 1e-3),
        end_lr=st.floats(1e-2, 10.0),
        num_steps=st.integers(2, 300),
        mode=st.sampled_from(["exp", "linear"]),
    )


def warmups(inner: st.SearchStrategy[Policy]) -> st.SearchStrategy[Policy]:
    return st.builds(
        warmup,
        inner,
        steps=st.integers(0, 40),
        start_lr=st.just(0.0) | st.floats(1e-7, 10.0),
    )


@st.composite
def joins(draw: st.DrawFn, children: st.SearchStrategy[Policy]) -> Policy:
    policies = draw(st.lists(children, min_size=1, max_size=3))
    lengths = draw(
        st.lists(st.integers(1, 60), min_size=len(policies) - 1, max_size=len(policies) - 1)
    )
    return join(list(zip(policies, [*lengths, None], strict=True)))


def base_policies() -> st.SearchStrategy[Policy]:
    """Every leaf policy: fixed shapes, range tests, AccelAT and Plateau."""
    return st.one_of(
        fixed_policies(),
        range_tests(),
        accelat_policies(),
        annealing_policies(),
        plateau_policies(),
    )


def all_policies() -> st.SearchStrategy[Policy]:
    """Every policy kind: the leaves, and warmups / joins of them (nested one level)."""
    base = base_policies()
    composed = st.one_of(warmups(base), joins(base))
    return st.one_of(base, composed, warmups(composed), joins(st.one_of(base, composed)))


@st.composite
def plateau_curves(draw: st.DrawFn) -> list[float]:
    """Plateaus, ties and noise (``metric_histories``), rising or, negated, falling."""
    values = draw(metric_histories(min_size=1))
    return [-v for v in values] if draw(st.booleans()) else values
