"""Range test schedule and the suggestion rules, on curves whose answers are known."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from accelat_core import RangeTest, Suggestion, suggest
from accelat_core.finder import (
    LRFindResult,
    RangeTestLog,
    _gradient,
    curve_problem,
    smooth_losses,
)


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
    # A V with its bottom at k = 20 and +-0.1 of alternating noise. The raw minimum is the
    # bottom; the average lags behind the curve, so it keeps falling for a few points after
    # the bottom: its minimum comes later (at 24, with beta = 0.9).
    lrs = grid(60)
    losses = [1.0 + abs(k - 20) / 20 + (0.1 if k % 2 else -0.1) for k in range(60)]
    raw = suggest(lrs, losses, method="minimum", smooth=0.0)
    smoothed = suggest(lrs, losses, method="minimum", smooth=0.9)
    assert raw.index == 20 and raw.lr_max == lrs[20] / 10
    assert smoothed.index == 24 and smoothed.lr_max == lrs[24] / 10
    # The same average written as a weighted sum, m_i = sum_j (1-b) b^(i-j) x_j / (1 - b^(i+1)).
    b = 0.9
    weights = [sum((1 - b) * b ** (i - j) * losses[j] for j in range(i + 1)) for i in range(60)]
    debiased = [w / (1 - b ** (i + 1)) for i, w in enumerate(weights)]
    assert int(np.argmin(debiased)) == 24
    assert list(smoothed.smoothed) == pytest.approx(debiased, rel=1e-12)


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


# Losses in [1, 3.9] after a first one of 3.9: every smoothed value is an average of them, so
# it stays below 4x any best (>= 1) and the curve is never cut, and from the second point on
# it lies below the first, so the loss falls. Equal values are common (ties).
usable_curves = st.lists(
    st.sampled_from([1.0, 1.5, 2.0, 3.8]) | st.floats(1.0, 3.8), min_size=4, max_size=79
).map(lambda rest: [3.9, *rest])


def first_argmin(values: list[float]) -> int:
    return values.index(min(values))


@given(
    usable_curves,
    st.sampled_from(["paper", "steepest", "minimum", "valley"]),
    st.sampled_from([0.0, 0.5, 0.98]),
)
@example([3.9, 1.0, 2.0, 1.0, 2.0, 1.0], "minimum", 0.0)  # equal minima: the first one
@example([3.9, 1.0, 2.0, 1.0, 2.0, 1.0], "paper", 0.0)
@example([3.9, 3.8, 2.8, 1.8, 1.8, 2.8, 1.8, 1.0], "steepest", 0.0)
@example([3.9, 3.9, 3.9, 3.9, 1.0], "valley", 0.0)
def test_suggestion_is_a_positive_range_read_from_the_usable_points(losses, method, beta) -> None:
    lrs = grid(len(losses), -6.0, 1.0)
    s = suggest(lrs, losses, method=method, smooth=beta)
    expected = smooth_losses(losses, beta)
    assert list(s.smoothed) == expected  # every point usable: nothing was cut
    n = len(losses)
    assert 0 < s.lr_min <= s.lr_max <= max(lrs) and 0 <= s.index < n
    if method in ("paper", "minimum"):
        best = first_argmin(expected)
        assert s.index == best and s.lr_max == lrs[best] / 10
    if method == "minimum":
        assert (s.lr_min, s.min_index) == (s.lr_max / 10, None)
    elif method == "paper":
        drop = expected[0] - expected[best]
        onset = next(i for i in range(n) if expected[0] - expected[i] > 0.1 * drop)
        assert 0 < onset <= best and s.min_index == onset
        assert s.lr_min == min(lrs[onset], s.lr_max)
    elif method == "steepest":
        slopes = np.gradient(expected, np.log(lrs))
        assert slopes[s.index] == pytest.approx(slopes.min(), rel=1e-9, abs=1e-12)
        assert s.lr_max == lrs[s.index] and s.lr_min == s.lr_max / 10
    else:
        assert 0 <= s.min_index <= s.index
        assert (s.lr_max, s.lr_min) == (lrs[s.index], lrs[s.min_index])


@given(st.lists(st.floats(0.1, 0.4), min_size=5, max_size=40))
def test_paper_refuses_every_curve_that_never_falls_below_its_start(rest) -> None:
    # Nothing is below the first loss, so no average is either; and none passes 4x 0.1.
    losses = [0.1, *rest]
    with pytest.raises(ValueError, match="never falls"):
        suggest(grid(len(losses)), losses, method="paper", smooth=0.5)


@given(
    st.integers(1, 4),
    st.sampled_from(["paper", "steepest", "minimum", "valley"]),
    st.sampled_from([0.0, 0.5]),
)
def test_a_curve_that_diverges_before_five_points_is_refused(good, method, beta) -> None:
    # From point `good` on the loss is 100x the first: the average jumps past 4x the best.
    losses = [1.0] * good + [1e4] * 10
    with pytest.raises(ValueError, match=rf"at least 5 usable points, got {good} of"):
        suggest(grid(len(losses)), losses, method=method, smooth=beta)


def test_paper_onset_is_the_first_point_past_a_tenth_of_the_drop() -> None:
    # Total drop 1.0 (from 1.0 to 0.0): 0.095 is not yet a tenth of it, 0.105 is. A fraction
    # of 0.09 would take index 3, one of 0.11 index 5.
    lrs = grid(9)
    losses = [1.0, 1.0, 0.97, 0.905, 0.895, 0.6, 0.4, 0.2, 0.0]
    s = suggest(lrs, losses, method="paper", smooth=0.0)
    assert (s.index, s.min_index, s.lr_max, s.lr_min) == (8, 4, lrs[8] / 10, lrs[4])


@pytest.mark.parametrize("method", ["paper", "minimum"])
def test_equal_minima_take_the_first_one(method) -> None:
    lrs = grid(8)
    losses = [3.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.5]
    s = suggest(lrs, losses, method=method, smooth=0.0)
    assert (s.index, s.lr_max) == (2, lrs[2] / 10)


def test_equal_steepest_slopes_take_the_first_one() -> None:
    # Two equal falls of 1.0 per step of log(lr) (exact: lrs e**0 .. e**8), at 2 and at 6.
    lrs = [math.exp(k) for k in range(9)]
    losses = [5.0, 5.0, 4.0, 3.0, 3.0, 3.0, 2.0, 1.0, 1.0]
    s = suggest(lrs, losses, method="steepest", smooth=0.0)
    assert (s.index, s.lr_max) == (2, lrs[2])


def test_valley_from_the_very_first_point_counts_every_point_of_it() -> None:
    # Strictly down for 10 points from the first: fastai's start = 9 - 10 = -1, so
    # d = 10 / 3 and index = -1 + 3 + 1 = 3; lr_min from the valley's first point, 0.
    lrs = grid(12)
    s = suggest(lrs, [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 2, 3], method="valley", smooth=0.0)
    assert (s.index, s.min_index, s.lr_max, s.lr_min) == (3, 0, lrs[3], lrs[0])


def test_valley_is_strictly_decreasing_so_a_flat_stretch_does_not_lengthen_it() -> None:
    # 5, 4, ..., 4, 3: the longest strictly decreasing run is 5, 4, 3 (3 points, ends at 7),
    # so start = 7 - 3 = 4, d = 1 and index = 4 + 1 + 0 = 5. Chaining the equal 4s would
    # make it 8 points long and move the index to 1.
    lrs = grid(10)
    s = suggest(lrs, [5, 4, 4, 4, 4, 4, 4, 3, 6, 7], method="valley", smooth=0.0)
    assert (s.index, s.min_index) == (5, 5)


def test_range_test_log_result_carries_its_record_and_reads_it_with_its_smoothing() -> None:
    # A noisy flat curve: its problem message states how far the *smoothed* loss fell, which
    # differs between the log's smoothing (0.5) and the default (0.98).
    log = RangeTestLog(smooth=0.5)
    lrs, losses = grid(100), [2.3 + 0.05 * (-1) ** k for k in range(100)]
    assert all(log.add(lr, loss) for lr, loss in zip(lrs, losses, strict=True))
    result = log.result(method="minimum")
    assert (result.lrs, result.losses) == (lrs, losses)
    assert result.suggestion == suggest(lrs, losses, method="minimum", smooth=0.5)
    assert result.problem == curve_problem(lrs, losses, smooth=0.5)
    assert "2.8 %" in result.problem and result.problem != curve_problem(lrs, losses)


def test_paper_onset_needs_strictly_more_than_a_tenth_of_a_drop_of_2_5() -> None:
    # Drop 3.0 -> 0.5 = 2.5, a tenth of it 0.25 (exact in floats): 2.75 is exactly 0.25
    # below the start and does not count; 2.7 does. (A fraction divided by the drop, 0.04,
    # would take index 2; ">=" would take index 3.)
    lrs = grid(8)
    s = suggest(lrs, [3.0, 3.0, 2.9, 2.75, 2.7, 1.5, 0.5, 0.8], method="paper", smooth=0.0)
    assert (s.min_index, s.index, s.lr_min) == (4, 6, lrs[4])


def test_range_test_log_stops_where_suggest_would_cut() -> None:
    # beta = 0.5: the debiased averages are 2, 1.33, 0.914, 0.693, 0.955, 1.79, 3.41, ...;
    # 3.41 is the first above 4 x 0.693. Exactly 4 x the best is not yet a divergence.
    curve = [2.0, 1.0, 0.6, 0.5, 1.2, 2.6, 5.0, 9.0]
    log = RangeTestLog(smooth=0.5)
    assert [log.add(lr, loss) for lr, loss in zip(grid(8), curve, strict=True)] == [True] * 6 + [
        False
    ] * 2
    assert len(suggest(grid(8), curve, method="minimum", smooth=0.5).smoothed) == 6
    exact = RangeTestLog(smooth=0.0)
    assert [exact.add(lr, x) for lr, x in zip(grid(4), [1.0, 0.5, 2.0, 2.5], strict=True)] == [
        True,
        True,
        True,
        False,
    ]
    assert not exact.add(1.0, math.nan) and exact.losses == [1.0, 0.5, 2.0, 2.5]


@pytest.mark.parametrize("smooth", [1.0, -0.1, 2.0])
def test_range_test_log_smoothing_must_be_in_zero_one(smooth) -> None:
    with pytest.raises(ValueError, match=rf"^smooth must be in \[0, 1\), got {smooth}$"):
        RangeTestLog(smooth=smooth)
    assert RangeTestLog(smooth=0.0).smooth == 0.0


def test_lr_find_result_plot_draws_the_curve_on_a_log_axis_and_marks_both_lrs(
    tmp_path, monkeypatch
) -> None:
    figure = pytest.importorskip("matplotlib.figure")
    drawn = []
    save = figure.Figure.savefig

    def keep(fig, path, **kwargs):
        drawn.append((fig, kwargs))
        return save(fig, path, **kwargs)

    monkeypatch.setattr(figure.Figure, "savefig", keep)
    lrs, losses = [1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.5, 1.0, 3.0]
    found = LRFindResult(Suggestion(0.1, 0.0125, "minimum", 2, None, (2.0,)), lrs, losses)
    out = found.plot(str(tmp_path / "curve.png"))
    assert out == tmp_path / "curve.png" and isinstance(out, Path)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ((fig, kwargs),) = drawn
    assert kwargs == {"dpi": 100} and tuple(fig.get_size_inches()) == (6.0, 4.0)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("learning rate", "training loss")
    curve, lr_max, lr_min = ax.get_lines()
    assert list(curve.get_xdata()) == lrs and list(curve.get_ydata()) == losses
    assert list(lr_max.get_xdata()) == [0.1, 0.1] and lr_max.get_linestyle() == "--"
    assert list(lr_min.get_xdata()) == [0.0125, 0.0125] and lr_min.get_linestyle() == ":"
    assert lr_max.get_color() == lr_min.get_color() == "C3"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["loss", "lr_max = 0.1", "lr_min = 0.0125"]


def test_lr_find_result_plot_keeps_its_labels_inside_the_figure(tmp_path, monkeypatch) -> None:
    figure = pytest.importorskip("matplotlib.figure")
    drawn = []
    save = figure.Figure.savefig

    def keep(fig, path, **kwargs):
        drawn.append(fig)
        return save(fig, path, **kwargs)

    monkeypatch.setattr(figure.Figure, "savefig", keep)
    lrs = [10 ** (-5 + i / 4) for i in range(25)]
    losses = [2.5] * 20 + [3.0, 5.0, 9.0, 17.0, 27.0]
    LRFindResult(Suggestion(0.1, 0.0125, "minimum", 2, None, (2.0,)), lrs, losses).plot(
        tmp_path / "curve.png"
    )
    (fig,) = drawn
    # Everything drawn (the x label under the tick labels included) lies inside the figure.
    tight, page = fig.get_tightbbox(), fig.bbox_inches
    assert page.x0 <= tight.x0 and page.y0 <= tight.y0
    assert tight.x1 <= page.x1 and tight.y1 <= page.y1


def test_range_test_log_stop_reads_the_debiased_average() -> None:
    # beta = 0.5: debiased averages 2, 1.333, 5.14, 4.53, 6.32; only 6.32 exceeds 4 x 1.333.
    # Multiplying by the debias factor instead of dividing, dividing by 1 + beta**n or by
    # 2 - beta**n, or starting the average at 1 instead of 0 stops at a different point.
    log = RangeTestLog(smooth=0.5)
    curve = [2.0, 1.0, 8.0, 4.0, 8.0]
    assert [log.add(lr, x) for lr, x in zip(grid(5), curve, strict=True)] == [True] * 4 + [False]


def test_range_test_log_with_a_best_of_zero_never_calls_a_divergence() -> None:
    log = RangeTestLog(smooth=0.0)
    assert [log.add(lr, x) for lr, x in zip(grid(3), [0.0, 5.0, 9.0], strict=True)] == [True] * 3


def test_range_test_log_default_smoothing_is_fastais() -> None:
    assert RangeTestLog().smooth == 0.98


FEW = (
    "only 3 of 3 points are usable (at least 5 are needed) before it turned NaN/inf or "
    "exceeded 4x its best; start the range test at a lower start_lr."
)


@pytest.mark.parametrize(
    ("losses", "problem"),
    [
        ([1.0, 1.0, 1.0], "the loss diverged at once: " + FEW),
        (
            [1.0] + [2.0] * 19,
            "the loss diverged at once: its smoothed minimum is point 0 of 20 usable ones, "
            "within the first 10 % of the curve; start the range test at a lower start_lr.",
        ),
        # A rise of exactly 5 % of the start (21 - 20 == 0.05 * 20 in floats) is not a
        # divergence; nor is a fall of exactly 5 % a way off the plateau.
        (
            [20.0] + [21.0] * 19,
            "the loss never left its plateau: its smoothed value fell at most 0.0 % below the "
            "starting loss 20 (more than 5 % is needed).",
        ),
        (
            [20.0] * 10 + [19.0] * 10,
            "the loss never left its plateau: its smoothed value fell at most 5.0 % below the "
            "starting loss 20 (more than 5 % is needed).",
        ),
        (
            [0.0] * 20,
            "the loss never left its plateau: its smoothed value fell at most 0.0 % below the "
            "starting loss 0 (more than 5 % is needed).",
        ),
        (
            [1.0, 2.0] + [0.97] * 18,
            "the loss never left its plateau: its smoothed value fell at most 3.0 % below the "
            "starting loss 1 (more than 5 % is needed).",
        ),
        ([20.0] * 10 + [18.9] * 10, None),
    ],
)
def test_curve_problem_gives_its_exact_reason_on_each_side_of_each_bound(losses, problem) -> None:
    assert curve_problem(grid(len(losses)), losses, smooth=0.0) == problem


@pytest.mark.parametrize(
    ("lrs", "losses", "method", "error", "message"),
    [
        (
            grid(3),
            [1.0, 1.0, 1.0],
            "minimum",
            ValueError,
            "suggest needs at least 5 usable points, got 3 of 3 (the losses are cut before the "
            "first NaN/inf and where the smoothed loss exceeds 4x its best); run the range test "
            "longer or from a lower start_lr",
        ),
        (
            grid(6),
            [1.0] * 6,
            "paper",
            ValueError,
            "the smoothed loss never falls below its first value; start the range test at a "
            "lower start_lr",
        ),
        (5, [1.0], "paper", TypeError, "lrs must be a sequence of numbers, got int"),
        ([1e-3], 5, "paper", TypeError, "losses must be a sequence of numbers, got int"),
        ([1e-3] * 5, "abcde", "paper", TypeError, "losses must be a sequence of numbers, got str"),
        (
            [1e-4, 1e-3, 1e-2, 5e-3, 1e-1],
            [1.0] * 5,
            "paper",
            ValueError,
            "lrs must be strictly increasing, got lrs[2]=0.01 >= lrs[3]=0.005",
        ),
    ],
)
def test_suggest_refuses_a_bad_curve_with_its_exact_message(
    lrs, losses, method, error, message
) -> None:
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        suggest(lrs, losses, method=method, smooth=0.0)


def test_the_cut_keeps_a_zero_best_and_exactly_four_times_the_best() -> None:
    # A best of 0 never calls a divergence, and 4 x the best is not yet one.
    assert len(suggest(grid(6), [0.0, 0.0, 1.0, 2.0, 3.0, 4.0], "minimum", 0.0).smoothed) == 6
    assert len(suggest(grid(6), [1.0, 4.0, 4.0, 4.0, 4.0, 4.0], "minimum", 0.0).smoothed) == 6
    problem = curve_problem(grid(6), [1.0, 4.0, 4.0, 4.5, 4.0, 4.0], smooth=0.0)
    assert problem.startswith("the loss diverged at once: only 3 of 6 points are usable")


@pytest.mark.parametrize("method", ["paper", "minimum", "steepest", "valley"])
def test_a_suggestion_names_the_rule_that_read_it(method) -> None:
    losses = [1.0, 1.0, 0.9, 0.7, 0.4, 0.2, 0.1, 0.3, 0.9, 2.0]
    assert suggest(grid(10), losses, method=method, smooth=0.0).method == method


def test_cycle_batches_of_an_empty_loader_names_batches_by_default() -> None:
    from accelat_core.finder import cycle_batches

    with pytest.raises(ValueError, match=r"^lr_find's batches yielded no batches$"):
        next(cycle_batches([]))


def test_range_test_ends_exactly_at_end_lr_and_names_a_bad_one() -> None:
    # 1e-5 * (5.875 / 1e-5) ** 1.0 is not 5.875 in floats: the last step returns end_lr itself.
    r = RangeTest(1e-5, 5.875, 11)
    assert r.at(10).lr == 5.875 and r.at(11).lr == 5.875 and r.at(9).lr < 5.875
    with pytest.raises(ValueError, match=r"^end_lr must be in \(0, inf\), got -1\.0$"):
        RangeTest(1e-3, -1.0, 10)
