"""curve_problem: when a range-test curve carries no information, and why."""

from __future__ import annotations

import pytest

from accelat_core import RangeTestLog, curve_problem
from accelat_core.finder import EARLY_FRACTION, MIN_POINTS, PLATEAU_FRACTION

PLATEAU = "the loss never left its plateau"
DIVERGED = "the loss diverged at once"


def grid(n: int) -> list[float]:
    return [10 ** (k / 4 - 7) for k in range(n)]


def u_shape(n: int = 40) -> list[float]:
    """Flat, falls to half its start, rises again: the minimum at 3/4 of the curve."""
    return [1.0 - 0.5 * min(k, 30) / 30 + (0.2 * (k - 30) if k > 30 else 0.0) for k in range(n)]


def test_normal_u_shaped_curve_is_informative() -> None:
    assert curve_problem(grid(40), u_shape(), smooth=0.0) is None
    assert curve_problem(grid(40), u_shape()) is None  # with the default smoothing


def test_flat_curve_never_left_its_plateau() -> None:
    problem = curve_problem(grid(30), [2.0] * 30, smooth=0.0)
    assert problem == (
        "the loss never left its plateau: its smoothed value fell at most 0.0 % below the "
        "starting loss 2 (more than 5 % is needed)."
    )


def test_noisy_flat_curve_never_left_its_plateau_with_default_smoothing() -> None:
    losses = [2.3 + 0.05 * (-1) ** k for k in range(100)]
    assert curve_problem(grid(100), losses).startswith(PLATEAU)


def test_immediately_rising_curve_diverged_at_once() -> None:
    losses = [1.1**k for k in range(30)]  # cut where it passes 4x the start: 15 points
    problem = curve_problem(grid(30), losses, smooth=0.0)
    assert problem == (
        "the loss diverged at once: its smoothed minimum is point 0 of 15 usable ones, "
        "within the first 10 % of the curve; start the range test at a lower start_lr."
    )


def test_curve_with_fewer_than_min_points_usable_diverged_at_once() -> None:
    losses = [1.0] * (MIN_POINTS - 1) + [100.0] * 10
    problem = curve_problem(grid(len(losses)), losses, smooth=0.0)
    assert problem.startswith(f"{DIVERGED}: only {MIN_POINTS - 1} of {len(losses)} points")
    nan_losses = [1.0, 0.9, 0.8, 0.7, float("nan"), 0.1]
    assert curve_problem(grid(6), nan_losses, smooth=0.0).startswith(f"{DIVERGED}: only 4 of 6")


def test_exactly_min_points_usable_is_judged_on_its_shape() -> None:
    losses = [1.0, 0.9, 0.7, 0.5, 0.4] + [100.0] * 5
    assert MIN_POINTS == 5
    assert curve_problem(grid(len(losses)), losses, smooth=0.0) is None


def fall_at(drop: float, n: int = 40, at: int = 20) -> list[float]:
    """Flat at 1.0 but for a dip of ``drop`` at point ``at``."""
    return [1.0 - drop if k == at else 1.0 for k in range(n)]


def test_plateau_boundary_just_inside_and_just_outside() -> None:
    assert PLATEAU_FRACTION == 0.05
    assert curve_problem(grid(40), fall_at(0.05 - 1e-9), smooth=0.0).startswith(PLATEAU)
    assert curve_problem(grid(40), fall_at(0.05 + 1e-9), smooth=0.0) is None
    # The fraction is of the starting loss: scaled by 10 the curve stays informative, but
    # a dip of 0.4 from a start of 10 (4 %) is a plateau.
    scaled = [10 * v for v in fall_at(0.05 + 1e-9)]
    assert curve_problem(grid(40), scaled, smooth=0.0) is None
    assert curve_problem(grid(40), [v + 9.0 for v in fall_at(0.4)], smooth=0.0).startswith(PLATEAU)


def minimum_at(at: int, n: int = 20) -> list[float]:
    """Down to 0.5 at point ``at``, 0.9 everywhere after it (a rise of 0.4)."""
    return [1.0] * at + [0.5] + [0.9] * (n - at - 1)


def test_early_minimum_boundary_just_inside_and_just_outside() -> None:
    assert EARLY_FRACTION == 0.1
    # 20 usable points: the first 10 % are points 0 and 1.
    assert curve_problem(grid(20), minimum_at(1), smooth=0.0).startswith(
        f"{DIVERGED}: its smoothed minimum is point 1 of 20"
    )
    assert curve_problem(grid(20), minimum_at(2), smooth=0.0) is None
    # 30 points: 3 / 30 is exactly 10 %, so point 3 is outside and point 2 inside.
    assert curve_problem(grid(30), minimum_at(3, 30), smooth=0.0) is None
    assert curve_problem(grid(30), minimum_at(2, 30), smooth=0.0).startswith(DIVERGED)


def test_early_minimum_without_a_rise_is_a_plateau_not_a_divergence() -> None:
    # Minimum at point 0 and never more than 5 % above it: nothing diverged.
    losses = [1.0] + [1.0 + 0.05 - 1e-9] * 29
    assert curve_problem(grid(30), losses, smooth=0.0).startswith(PLATEAU)
    risen = [1.0] + [1.0 + 0.05 + 1e-9] * 29
    assert curve_problem(grid(30), risen, smooth=0.0).startswith(DIVERGED)


def test_inputs_are_checked_like_suggest() -> None:
    with pytest.raises(ValueError, match="lrs and losses must have the same length"):
        curve_problem([1e-3, 1e-2], [1.0])
    with pytest.raises(ValueError, match=r"smooth must be in \[0, 1\), got 1.0"):
        curve_problem(grid(5), [1.0] * 5, smooth=1.0)
    with pytest.raises(ValueError, match="lrs must be strictly increasing"):
        curve_problem([1e-3, 1e-3, 1e-2, 1e-1, 1.0], [1.0] * 5)


def test_range_test_log_result_carries_the_problem() -> None:
    flat = RangeTestLog(smooth=0.0)
    for lr, loss in zip(grid(30), [1.0] * 30, strict=True):
        flat.add(lr, loss)
    result = flat.result(method="minimum")
    assert not result.informative
    assert result.problem.startswith(PLATEAU)

    good = RangeTestLog(smooth=0.0)
    for lr, loss in zip(grid(40), u_shape(), strict=True):
        good.add(lr, loss)
    result = good.result()
    assert result.informative and result.problem is None
    assert result.suggestion.index == 30
