"""Range test schedule and the suggestion rules, on curves whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accelat_core import RangeTest, Suggestion, suggest
from accelat_core.finder import _gradient, smooth_losses


def grid(n: int, lo: float = -4.0, hi: float = 0.0) -> list[float]:
    """n log-spaced lrs from 10**lo to 10**hi."""
    return [10 ** (lo + (hi - lo) * k / (n - 1)) for k in range(n)]


# -- RangeTest --------------------------------------------------------------------------


def test_range_test_exp_is_geometric_and_holds_end_lr() -> None:
    r = RangeTest(1e-3, 1.0, 4)
    lrs = [r.at(t).lr for t in range(6)]
    assert lrs[:3] == [1e-3, pytest.approx(1e-2, rel=1e-12), pytest.approx(1e-1, rel=1e-12)]
    assert lrs[3:] == [1.0, 1.0, 1.0]
    assert r.horizon == 3


def test_range_test_linear_is_evenly_spaced() -> None:
    r = RangeTest(0.5, 2.0, 4, mode="linear")
    assert [r.at(t).lr for t in range(5)] == [0.5, 1.0, 1.5, 2.0, 2.0]
    assert [r.step().lr for _ in range(4)] == [1.0, 1.5, 2.0, 2.0]


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((1.0, 1.0, 10), ValueError, "end_lr must be > start_lr"),
        ((0.0, 1.0, 10), ValueError, r"start_lr must be in \(0, inf\)"),
        ((1e-3, 1.0, 1), ValueError, "num_steps must be an integer >= 2, got 1"),
        ((1e-3, 1.0, 10, "log"), ValueError, "mode must be one of 'exp', 'linear', got 'log'"),
    ],
)
def test_range_test_bad_arguments_are_named(args, error, message) -> None:
    with pytest.raises(error, match=message):
        RangeTest(*args)


# -- smoothing ----------------------------------------------------------------------------


def test_smoothing_is_fastai_debiased_ema() -> None:
    # beta = 0.5: avg 0.5 -> 0.5 / 0.5 = 1; avg 0.25 + 1.5 = 1.75 -> 1.75 / 0.75.
    assert smooth_losses([1.0, 3.0], 0.5) == [1.0, 1.75 / 0.75]
    assert smooth_losses([2.0, 5.0, 7.0], 0.0) == [2.0, 5.0, 7.0]


@given(st.floats(0.01, 100.0), st.floats(0.0, 0.99), st.integers(1, 50))
def test_smoothing_a_constant_loss_gives_that_constant(value, beta, n) -> None:
    assert smooth_losses([value] * n, beta) == [pytest.approx(value, rel=1e-9)] * n


# -- suggestions -----------------------------------------------------------------------


def test_minimum_is_a_tenth_of_the_lr_at_the_lowest_loss() -> None:
    lrs = grid(41)  # 1e-4 .. 1
    losses = [(math.log10(lr) + 2.0) ** 2 + 1.0 for lr in lrs]  # lowest at lr = 1e-2, k = 20
    s = suggest(lrs, losses, method="minimum", smooth=0.0)
    assert (s.index, s.lr_max, s.lr_min, s.min_index) == (20, lrs[20] / 10, lrs[20] / 100, None)
    assert s.method == "minimum"


def test_steepest_is_the_most_negative_slope_against_log_lr() -> None:
    # loss = 2 + cos(u) with u = log(lr) + 8 in [0, pi]; the slope -sin(u) is steepest at
    # u = pi / 2, grid point 10 of 21 (central differences keep the symmetry).
    us = [math.pi * k / 20 for k in range(21)]
    lrs = [math.exp(u - 8.0) for u in us]
    s = suggest(lrs, [2.0 + math.cos(u) for u in us], method="steepest", smooth=0.0)
    assert (s.index, s.lr_max, s.lr_min) == (10, lrs[10], lrs[10] / 10)


@given(
    st.lists(st.floats(0.1, 10.0), min_size=5, max_size=40),
    st.lists(st.floats(0.01, 1.0), min_size=40, max_size=40),
)
def test_steepest_slopes_match_numpy_gradient(losses, steps) -> None:
    x = list(np.cumsum(steps[: len(losses)]))
    assert _gradient(x, losses) == pytest.approx(list(np.gradient(losses, x)), rel=1e-9, abs=1e-9)


def test_valley_follows_fastai_longest_valley_rule() -> None:
    lrs = grid(12)
    losses = [3.0, 3.1, 2.9, 2.5, 2.8, 2.0, 1.5, 1.2, 1.0, 0.9, 1.1, 2.0]
    # Longest strictly decreasing run ends at 9 with length 8, so fastai's start = 1;
    # d = 8 / 3, index = 1 + int(d) + int(d / 2) = 4; lr_min from start + 1 = 2.
    s = suggest(lrs, losses, method="valley", smooth=0.0)
    assert (s.index, s.min_index, s.lr_max, s.lr_min) == (4, 2, lrs[4], lrs[2])


def test_valley_of_a_curve_that_never_falls_is_its_first_point() -> None:
    lrs = grid(6)
    s = suggest(lrs, [1.0, 1.0, 1.5, 2.0, 2.5, 3.0], method="valley", smooth=0.0)
    # No point is below an earlier one: fastai's bounds stay (0, 0), index 0.
    assert (s.index, s.lr_max, s.min_index, s.lr_min) == (0, lrs[0], 0, lrs[0])


def test_valley_at_the_very_start_does_not_wrap_round_to_the_last_lr() -> None:
    lrs = grid(6)
    s = suggest(lrs, [2.0, 1.0, 1.5, 2.0, 2.5, 3.0], method="valley", smooth=0.0)
    # Valley = points 0, 1: fastai's start = 1 - 2 = -1, index -1 + int(2/3) + int(1/3) = -1.
    assert (s.index, s.lr_max, s.min_index, s.lr_min) == (0, lrs[0], 0, lrs[0])


def test_paper_takes_a_decade_below_the_minimum_and_the_onset_of_the_fall() -> None:
    lrs = grid(11, -6.0, -1.0)
    losses = [1.0, 1.0, 1.0, 1.0, 0.95, 0.5, 0.3, 0.1, 0.3, 0.35, 0.38]
    # total drop 0.9; the first point more than 0.09 below the start is index 5.
    s = suggest(lrs, losses, method="paper", smooth=0.0)
    assert s == Suggestion(lrs[7] / 10, lrs[5], "paper", 7, 5, tuple(losses))


def test_paper_caps_lr_min_at_lr_max_when_the_fall_starts_late() -> None:
    lrs = grid(8)
    losses = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.2]
    s = suggest(lrs, losses, method="paper", smooth=0.0)
    assert (s.lr_max, s.lr_min) == (lrs[7] / 10, lrs[7] / 10)


def test_paper_rejects_a_loss_that_never_falls() -> None:
    with pytest.raises(ValueError, match="never falls"):
        suggest(grid(10), [1.0 + 0.1 * k for k in range(10)], method="paper", smooth=0.0)


def test_curve_is_cut_before_the_first_nan_and_at_divergence() -> None:
    lrs = grid(10)
    with_nan = [5.0, 4.0, 3.0, 2.0, 1.0, 0.5, math.nan, 0.1, 0.1, 0.1]
    s = suggest(lrs, with_nan, method="minimum", smooth=0.0)
    assert (len(s.smoothed), s.index) == (6, 5)
    diverging = [5.0, 4.0, 3.0, 2.0, 1.0, 3.9, 4.1, 0.1, 0.1, 0.1]
    s = suggest(lrs, diverging, method="minimum", smooth=0.0)
    # 4.1 > 4 x 1.0 is the divergence: the later (lower) losses are never looked at.
    assert (len(s.smoothed), s.index) == (6, 4)


def test_smoothing_delays_the_minimum_on_a_noisy_curve() -> None:
    lrs = grid(60)
    losses = [2.0 - k / 30 + (0.3 if k % 2 else -0.3) for k in range(45)] + [3.0] * 15
    raw = suggest(lrs, losses, method="minimum", smooth=0.0)
    smoothed = suggest(lrs, losses, method="minimum", smooth=0.9)
    assert raw.index == 44
    assert smoothed.index == 44
    assert list(smoothed.smoothed) == smooth_losses(losses, 0.9)[: len(smoothed.smoothed)]


@pytest.mark.parametrize(
    ("lrs", "losses", "kwargs", "error", "message"),
    [
        (grid(5), [1.0] * 4, {}, ValueError, "same length, got 5 and 4"),
        (grid(4), [3.0, 2.0, 1.0, 0.5], {}, ValueError, "at least 5 usable points, got 4"),
        (grid(8), [math.nan] * 8, {}, ValueError, "at least 5 usable points, got 0 of 8"),
        (grid(8), [1.0, 0.5, 0.4, 9.0, 0.1, 0.1, 0.1, 0.1], {"smooth": 0.0}, ValueError, "got 3"),
        ([1e-3, 1e-3, *grid(4)], [1.0] * 6, {}, ValueError, "strictly increasing"),
        ([-1.0, *grid(5)], [1.0] * 6, {}, ValueError, r"lrs\[0\] must be in \(0, inf\)"),
        (grid(6), [1.0] * 6, {"method": "median"}, ValueError, "method must be one of"),
        (grid(6), [1.0] * 6, {"smooth": 1.0}, ValueError, r"smooth must be in \[0, 1\)"),
        (grid(6), [1.0, None, 1, 1, 1, 1], {}, TypeError, r"losses\[1\] must be a real number"),
        ("abc", [1.0] * 3, {}, TypeError, "lrs must be a sequence"),
    ],
)
def test_suggest_bad_input_raises_a_clear_error(lrs, losses, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        suggest(lrs, losses, **kwargs)


@given(
    st.lists(st.floats(0.01, 10.0), min_size=5, max_size=80),
    st.sampled_from(["paper", "steepest", "minimum", "valley"]),
    st.sampled_from([0.0, 0.5, 0.98]),
)
def test_suggestion_is_a_positive_range_read_from_the_usable_points(losses, method, beta) -> None:
    lrs = grid(len(losses), -6.0, 1.0)
    try:
        s = suggest(lrs, losses, method=method, smooth=beta)
    except ValueError as exc:  # too few usable points, or (paper) a loss that never falls
        assert "usable points" in str(exc) or "never falls" in str(exc)
        return
    n = len(s.smoothed)
    assert 5 <= n <= len(losses)
    assert 0 < s.lr_min <= s.lr_max <= max(lrs)
    assert 0 <= s.index < n
    assert s.min_index is None or 0 <= s.min_index < n
    if method in ("paper", "minimum"):
        assert s.smoothed[s.index] == min(s.smoothed)
