"""The fixed-shape policies reproduce torch's own schedulers step for step.

For random arguments, ``policy.at(t)`` must equal the lr (and momentum) a torch scheduler
has put into its optimizer after ``t`` calls to ``scheduler.step()``, to 1e-9 relative,
for every step of the schedule.
"""

from __future__ import annotations

import math
import warnings

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from accelat_core import Cyclical, ExponentialDecay, LinearDecay, OneCycle, StepDecay, WarmRestarts

torch = pytest.importorskip("torch")
from torch.optim import lr_scheduler  # noqa: E402

torch.set_num_threads(1)
conformance = settings(max_examples=min(settings().max_examples, 150))

lrs = st.floats(min_value=1e-5, max_value=5.0)
fractions = st.floats(min_value=0.0, max_value=1.0)


def sgd() -> torch.optim.SGD:
    """A tiny SGD on one parameter; momentum is in its defaults so torch may cycle it."""
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.5)


def torch_trajectory(optimizer, scheduler, steps: int) -> list[tuple[float, float]]:
    """(lr, momentum) of the param group at t = 0 .. steps - 1."""
    group = optimizer.param_groups[0]
    out = [(group["lr"], group["momentum"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
        for _ in range(steps - 1):
            scheduler.step()
            out.append((group["lr"], group["momentum"]))
    return out


def assert_same(policy, expected, *, lr_scale: float, momentum: bool) -> None:
    # abs_tol at 1e-15 of the largest lr in play: torch's linear anneal
    # ``(end - start) * pct + start`` keeps only ~16 digits of ``start``, so a value near a
    # tiny ``end`` is known no better than that (OneCycle also floors it at ``end``).
    for t, (lr, m) in enumerate(expected):
        h = policy.at(t)
        assert math.isclose(h.lr, lr, rel_tol=1e-9, abs_tol=1e-15 * lr_scale), (t, h, lr)
        if momentum:
            assert math.isclose(h.momentum, m, rel_tol=1e-9, abs_tol=1e-15), (t, h, m)
        else:
            assert h.momentum is None


@st.composite
def momentum_pairs(draw: st.DrawFn) -> tuple[float, float] | None:
    if draw(st.booleans()):
        return None
    a, b = draw(fractions), draw(fractions)
    return (min(a, b), max(a, b))


@conformance
@given(
    lr_max=lrs,
    total_steps=st.integers(1, 300),
    three_phase=st.booleans(),
    pct=fractions,
    div_factor=st.floats(min_value=1.0, max_value=1e3),
    final_div_factor=st.floats(min_value=1.0, max_value=1e4),
    anneal=st.sampled_from(["cos", "linear"]),
    momentum=momentum_pairs(),
)
def test_one_cycle_matches_torch_one_cycle_lr(
    lr_max, total_steps, three_phase, pct, div_factor, final_div_factor, anneal, momentum
):
    pct_start = pct / 2 if three_phase else pct
    # torch divides by zero at step 0 when the first phase has length zero.
    assume(float(pct_start * total_steps) != 1.0)
    policy = OneCycle(
        lr_max, total_steps, pct_start, div_factor, final_div_factor, three_phase, anneal, momentum
    )
    opt = sgd()
    low, high = momentum if momentum is not None else (0.85, 0.95)
    scheduler = lr_scheduler.OneCycleLR(
        opt,
        max_lr=lr_max,
        total_steps=total_steps,
        pct_start=float(pct_start),
        anneal_strategy=anneal,
        cycle_momentum=momentum is not None,
        base_momentum=low,
        max_momentum=high,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        three_phase=three_phase,
    )
    expected = torch_trajectory(opt, scheduler, total_steps)
    assert_same(policy, expected, lr_scale=lr_max, momentum=momentum is not None)


def test_paper_one_cycle_matches_torch_three_phase_linear_one_cycle_lr():
    opt = sgd()
    scheduler = lr_scheduler.OneCycleLR(
        opt,
        max_lr=0.2,
        total_steps=1000,
        pct_start=0.45,
        anneal_strategy="linear",
        div_factor=10.0,
        final_div_factor=100.0,
        three_phase=True,
    )
    expected = torch_trajectory(opt, scheduler, 1000)
    assert_same(OneCycle.paper(0.2, 1000), expected, lr_scale=0.2, momentum=True)


@conformance
@given(
    lrs_=st.tuples(lrs, lrs).map(sorted),
    step_size_up=st.integers(1, 40),
    step_size_down=st.none() | st.integers(1, 40),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(min_value=0.9, max_value=1.0),
    momentum=momentum_pairs(),
)
def test_cyclical_matches_torch_cyclic_lr(
    lrs_, step_size_up, step_size_down, mode, gamma, momentum
):
    lr_min, lr_max = lrs_
    policy = Cyclical(lr_min, lr_max, step_size_up, step_size_down, mode, gamma, momentum)
    opt = sgd()
    low, high = momentum if momentum is not None else (0.8, 0.9)
    scheduler = lr_scheduler.CyclicLR(
        opt,
        base_lr=lr_min,
        max_lr=lr_max,
        step_size_up=step_size_up,
        step_size_down=step_size_down,
        mode=mode,
        gamma=gamma,
        cycle_momentum=momentum is not None,
        base_momentum=low,
        max_momentum=high,
    )
    # Several cycles: triangular2 and exp_range change the amplitude from cycle to cycle.
    expected = torch_trajectory(opt, scheduler, 300)
    assert_same(policy, expected, lr_scale=lr_max, momentum=momentum is not None)


@conformance
@given(
    lr_max=lrs,
    lr_min_fraction=st.just(0.0) | fractions,
    period=st.integers(1, 40),
    period_mult=st.integers(1, 3),
)
def test_warm_restarts_matches_torch_cosine_annealing_warm_restarts(
    lr_max, lr_min_fraction, period, period_mult
):
    lr_min = lr_min_fraction * lr_max
    policy = WarmRestarts(lr_max, period, lr_min=lr_min, period_mult=period_mult)
    opt = sgd()
    for group in opt.param_groups:
        group["lr"] = lr_max  # torch's base lr is the optimizer's lr at construction
    scheduler = lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=period, T_mult=period_mult, eta_min=lr_min
    )
    expected = torch_trajectory(opt, scheduler, 300)
    assert_same(policy, expected, lr_scale=lr_max, momentum=False)


@conformance
@given(
    lr=lrs,
    milestones=st.lists(st.integers(1, 200), max_size=5, unique=True).map(sorted),
    factor=st.floats(min_value=0.01, max_value=1.0),
)
def test_step_decay_matches_torch_multi_step_lr(lr, milestones, factor):
    opt = sgd()
    for group in opt.param_groups:
        group["lr"] = lr
    scheduler = lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=factor)
    expected = torch_trajectory(opt, scheduler, 250)
    # torch multiplies the running lr by gamma; we take lr * factor**k: equal to rounding.
    assert_same(StepDecay(lr, milestones, factor), expected, lr_scale=0.0, momentum=False)


@conformance
@given(lr=lrs, rate=st.floats(min_value=0.5, max_value=1.0))
def test_per_step_exponential_decay_matches_torch_exponential_lr(lr, rate):
    opt = sgd()
    for group in opt.param_groups:
        group["lr"] = lr
    scheduler = lr_scheduler.ExponentialLR(opt, gamma=rate)
    expected = torch_trajectory(opt, scheduler, 200)
    # torch multiplies 199 times (error ~ 199 ulps); our closed form rounds once.
    assert_same(ExponentialDecay(lr, rate), expected, lr_scale=0.0, momentum=False)


@conformance
@given(lr_start=lrs, lr_end=lrs, total_steps=st.integers(1, 300))
def test_linear_decay_matches_torch_linear_lr(lr_start, lr_end, total_steps):
    # LinearLR scales the optimizer's lr by factors in (0, 1]: the larger of the two lrs is
    # the base, so both a decay and a ramp up are expressed.
    base = max(lr_start, lr_end)
    opt = sgd()
    for group in opt.param_groups:
        group["lr"] = base
    scheduler = lr_scheduler.LinearLR(
        opt, start_factor=lr_start / base, end_factor=lr_end / base, total_iters=total_steps
    )
    # Past total_steps: torch holds the end value, and so do we.
    expected = torch_trajectory(opt, scheduler, total_steps + 20)
    # torch's chainable form multiplies the running lr step by step (~total_steps ulps).
    assert_same(LinearDecay(lr_start, lr_end, total_steps), expected, lr_scale=base, momentum=False)
