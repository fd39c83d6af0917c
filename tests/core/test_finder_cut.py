"""The reading stops at the first divergence or collapse: a fall to chance is not learning."""

from __future__ import annotations

import math

import pytest

from accelat_core import LRFindResult, RangeTestLog, curve_problem, suggest
from accelat_core.finder import CHANCE, EDGE_FRACTION, FLAT, PERSIST, RISE, _cut, smooth_losses

LN10 = math.log(10)


def grid(n: int, lo: float = -5.0, hi: float = 1.0) -> list[float]:
    """n log-spaced lrs from 10**lo to 10**hi (the trainer's range test: 1e-5 .. 10)."""
    return [10 ** (lo + (hi - lo) * k / (n - 1)) for k in range(n)]


def first_argmin(values: list[float]) -> int:
    return values.index(min(values))


def old_minimum(losses: list[float], beta: float) -> int:
    """The reading before this rule: the argmin of every usable smoothed point."""
    return first_argmin(_cut(losses, beta))


def first_rise(losses: list[float], beta: float) -> int | None:
    """By hand: the first point above both the start and RISE x the best before it."""
    s = smooth_losses(losses, beta)
    for i in range(1, len(s)):
        best = min(s[:i])
        if best > 0 and s[i] > s[0] and s[i] > RISE * best:
            return i
    return None


# The CIFAR-10 curve, one point per step of a 40-step test from 1e-5 to 10: the
# adversarial loss on a plateau near 3.1, down to 2.8 near lr 0.1, a spike to 4.6 from lr 0.14,
# then a fall to 2.35-2.45 (ln 10 = 2.30) with flat predictions past lr 1.
SPIKE_LOSSES = [3.1] * 16 + [3.0, 2.95, 2.9, 2.9, 2.85, 2.85, 2.82, 2.8, 2.8, 2.78, 2.76]
SPIKE_LOSSES += [4.4, 4.0, 3.9, 4.6, 4.6, 4.0, 2.8, 2.45, 2.6, 2.36, 2.39, 2.5, 2.44]
SPIKE_SPREAD = [0.03] * 24 + [0.06, 0.15, 0.15] + [0.36, 0.19, 0.23, 0.26, 0.19, 0.1, 0.15]
SPIKE_SPREAD += [0.08, 0.04, 0.018, 0.015, 0.035, 0.2]
BETA = 0.75  # the trainer's smoothing for 40 steps: 1 - 10 / 40


def test_a_spike_then_a_fall_to_chance_is_read_before_the_spike() -> None:
    lrs = grid(40)
    assert len(SPIKE_LOSSES) == len(SPIKE_SPREAD) == 40
    old = old_minimum(SPIKE_LOSSES, BETA)
    assert old >= 33 and lrs[old] / 10 > 0.1  # the old reading: lr_max in the collapse
    spike = SPIKE_LOSSES.index(4.4)
    for spread in (None, SPIKE_SPREAD):  # the divergence alone needs no spread
        s = suggest(lrs, SPIKE_LOSSES, "minimum", BETA, spread=spread, classes=10)
        assert s.cut is not None and s.cut.reason == "diverged"
        assert s.cut.index == first_rise(SPIKE_LOSSES, BETA) == spike
        assert s.cut.lr == lrs[spike]
        read = smooth_losses(SPIKE_LOSSES, BETA)[:spike]
        assert s.index == first_argmin(read) < spike and s.lr_max == lrs[s.index] / 10
        assert (s.cut.lower_lr, s.cut.lower_loss) == (lrs[old], min(_cut(SPIKE_LOSSES, BETA)))
        assert len(s.smoothed) == 40  # every point stays usable: the reading stopped
    assert curve_problem(lrs, SPIKE_LOSSES, smooth=BETA, spread=SPIKE_SPREAD, classes=10) is None


def test_the_note_names_the_lr_where_the_reading_stopped_and_the_lower_point_past_it() -> None:
    lrs = grid(40)
    s = suggest(lrs, SPIKE_LOSSES, "minimum", BETA)
    (note,) = LRFindResult(s, lrs, SPIKE_LOSSES).notes
    assert note.startswith(f"the loss diverged at lr {lrs[27]:.3g} (its smoothed value ")
    assert f"fell later to {s.cut.lower_loss:.3g} at lr {lrs[39]:.3g}" in note
    assert note.endswith("which is not read as learning.")


def collapse_curve() -> tuple[list[float], list[float]]:
    """No spike: the loss falls from 3.1 to 2.8 while the predictions spread, then the
    network collapses: flat predictions, loss 2.35 (below 2.8, never above the start)."""
    losses = [3.1] * 10 + [3.1 - 0.03 * k for k in range(1, 11)] + [2.8] * 5 + [2.35] * 15
    spread = [0.03] * 10 + [0.03 + 0.03 * k for k in range(1, 11)] + [0.33] * 5 + [0.01] * 15
    return losses, spread


def test_a_collapse_to_chance_with_flat_predictions_is_not_read_as_learning() -> None:
    lrs = grid(40)
    losses, spread = collapse_curve()
    assert first_rise(losses, BETA) is None  # the loss never rose: only the spread tells
    blind = suggest(lrs, losses, "minimum", BETA)
    assert blind.cut is None and blind.index == old_minimum(losses, BETA) >= 25
    s = suggest(lrs, losses, "minimum", BETA, spread=spread, classes=10)
    assert s.cut is not None and (s.cut.reason, s.cut.index, s.cut.lr) == ("collapsed", 25, lrs[25])
    assert s.index == first_argmin(smooth_losses(losses, BETA)[:25]) < 25
    assert s.cut.lower_lr == lrs[blind.index]
    assert s.cut.evidence == (
        "its loss 2.35 is at most 1.1x ln(10) = 2.3, the loss of one uniform output for every "
        "image, and the spread of its predictions fell to 0.01 nats, 3 % of the 0.3 they had "
        "gained over their start"
    )
    (note,) = LRFindResult(s, lrs, losses, None, spread, 10).notes
    assert note.startswith(f"the network collapsed at lr {lrs[25]:.3g} (its loss 2.35")


@pytest.mark.parametrize("method", ["paper", "minimum", "steepest", "valley"])
def test_a_healthy_curve_reads_as_before(method) -> None:
    # An adversarial curve that learns: from 2.5 (above chance) down to 1.2, the predictions
    # spreading as it learns, then up past its start (read no further, as before: 4x its best
    # is never reached). A fresh network's predictions start flat (spread 0.001).
    lrs = grid(40)
    losses = (
        [2.5] * 10 + [2.5 - 0.065 * k for k in range(1, 21)] + [1.5, 2.0, 2.6, 3.2] * 2 + [3.5] * 2
    )
    spread = [0.001] * 10 + [0.001 + 0.05 * k for k in range(1, 21)] + [1.0] * 10
    old = suggest(lrs, losses, method, BETA)
    new = suggest(lrs, losses, method, BETA, spread=spread, classes=10)
    assert (new.lr_max, new.lr_min, new.index, new.min_index, new.smoothed) == (
        old.lr_max, old.lr_min, old.index, old.min_index, old.smoothed
    )  # fmt: skip
    if method == "minimum":
        assert new.index == old_minimum(losses, BETA)
    assert new.cut is not None and new.cut.reason == "diverged" and new.cut.lower_lr is None
    assert LRFindResult(new, lrs, losses, None, spread, 10).notes == []


def test_a_network_that_starts_flat_at_chance_has_not_collapsed() -> None:
    # Natural training of a fresh network: loss ln 10 and flat predictions from the start,
    # then learning; and one that stays at chance (a plateau, not a collapse).
    lrs = grid(30)
    learning = [LN10] * 10 + [LN10 - 0.1 * k for k in range(1, 21)]
    spread = [1e-4] * 10 + [1e-4 + 0.05 * k for k in range(1, 21)]
    s = suggest(lrs, learning, "minimum", 0.5, spread=spread, classes=10)
    assert s.cut is None and s.index == 29
    flat = [LN10] * 30
    s = suggest(lrs, flat, "minimum", 0.5, spread=[1e-4] * 30, classes=10)
    assert s.cut is None
    assert curve_problem(lrs, flat, smooth=0.5, spread=[1e-4] * 30, classes=10).startswith(
        "the loss never left its plateau: "
    )


def test_a_divergence_after_a_noisy_start_is_cut_and_the_fall_after_it_not_read() -> None:
    # From the fifth point on, a rise above the start and 1.1x the best that holds for three
    # points is a divergence: the fall to chance after it is never read. Rises before the
    # fifth point, or for one point, are a noisy start and are read.
    lrs = grid(30)
    losses = [3.0, 2.9, 2.8, 2.8, 2.9, 3.6, 3.7, 3.8] + [2.4] * 22
    s = suggest(lrs, losses, "minimum", smooth=0.0)
    assert (s.cut.reason, s.cut.index, s.index) == ("diverged", 5, 2)
    assert s.cut.lower_lr == lrs[8]
    assert suggest(lrs, [3.0, 3.6, 3.7, 3.8] + [2.4] * 26, "minimum", smooth=0.0).cut is None
    assert suggest(lrs, [3.0] * 5 + [3.6] + [2.4] * 24, "minimum", smooth=0.0).cut is None


def test_a_collapse_from_the_start_is_refused_naming_its_lr() -> None:
    # A network whose predictions spread out at the second step and are flat at chance from
    # the third on: its loss falls from 3 to 2.3, which looks like learning and is not.
    lrs = grid(30)
    losses = [3.0, 2.9] + [2.3] * 28
    spread = [0.02, 0.5] + [0.01] * 28
    assert curve_problem(lrs, losses, smooth=0.0) is None  # blind to the collapse
    problem = curve_problem(lrs, losses, smooth=0.0, spread=spread, classes=10)
    assert problem.startswith(f"the network collapsed at once, at lr {lrs[2]:.3g} (its loss 2.3 ")
    assert problem.endswith(
        "fell to 0.01 nats, 2 % of the 0.48 they had gained over their start): only 2 of 30 "
        "points come before it (at least 5 are needed); start the range test at a lower "
        "start_lr."
    )
    assert suggest(lrs, losses, "minimum", 0.0, spread=spread, classes=10).index == 1


def test_losing_the_spread_a_network_started_with_is_not_a_collapse() -> None:
    # A fresh network's random features spread its predictions a little (0.07 nats); training
    # towards chance fades that. Nothing was gained, so nothing collapsed.
    lrs = grid(30)
    losses = [2.6] * 5 + [2.6 - 0.02 * k for k in range(1, 26)]
    spread = [0.07] * 5 + [0.005] * 25
    s = suggest(lrs, losses, "minimum", 0.5, spread=spread, classes=10)
    assert s.cut is None and s.index == 29


def test_a_plateau_before_the_cut_is_named_with_the_cut() -> None:
    lrs = grid(30)
    losses = [3.0] * 10 + [4.0] * 3 + [2.3] * 17  # flat, a spike, then a fall to chance
    problem = curve_problem(lrs, losses, smooth=0.0)
    assert problem.startswith(
        f"the loss never left its plateau before lr {lrs[10]:.3g} (the loss diverged: its "
        "smoothed value 4 rose above its start 3 and 1.1x its best 3): its smoothed value fell "
        "at most 0.0 % below the starting loss 3"
    )


def test_each_bound_is_inclusive_on_the_side_it_names() -> None:
    lrs = grid(8)
    # RISE: exactly 1.1x the best (above the start) is not yet a divergence; a hair more is,
    # held for PERSIST (3) points (or to the last); one such point alone is not.
    assert PERSIST == 3
    at = RISE * 1.0
    base = [1.05, 1.0, 1.0, 1.0, 1.0]
    assert suggest(lrs, [*base, at, at, at], "minimum", 0.0).cut is None
    above = math.nextafter(at, 2.0)
    assert suggest(lrs, [*base, above, above, above], "minimum", 0.0).cut.index == 5
    assert suggest(lrs, [*base, above, 0.5, above], "minimum", 0.0).cut.index == 7
    assert suggest(lrs, [*base, above, above, 0.5], "minimum", 0.0).cut is None
    # ... nor is anything at or below the start, however far above the best.
    assert suggest(lrs, [3.0, 1.0, 1.0, 1.0, 1.0, 3.0, 0.5, 0.5], "minimum", 0.0).cut is None
    # CHANCE and FLAT: a loss of exactly 1.1 ln C and a spread of exactly 0.2 of the gain are
    # a collapse; a hair above either is not.
    chance, top = CHANCE * LN10, 0.5
    flat = FLAT * top
    losses = [3.0, 2.9, 2.8, 2.7, 2.6, chance, 2.0, 2.0]

    def cut(loss5: float, spread5: float):
        spread = [0.0] + [top] * 4 + [spread5, top, top]  # gained: top - 0
        return suggest(
            lrs, [*losses[:5], loss5, 2.0, 2.0], "minimum", 0.0, spread=spread, classes=10
        ).cut

    assert cut(chance, flat).index == 5
    assert cut(math.nextafter(chance, 3.0), flat) is None
    assert cut(chance, math.nextafter(flat, 1.0)) is None


def test_the_edges_are_the_first_and_last_five_percent_of_the_points() -> None:
    assert EDGE_FRACTION == 0.05
    lrs = grid(40)  # edges: points 0, 1 and 38, 39
    falling = [3.0 - 0.01 * k for k in range(40)]
    s = suggest(lrs, falling, "minimum", 0.0)
    result = LRFindResult(s, lrs, falling)
    assert (s.index, result.edge) == (39, "last")
    (note,) = result.notes
    assert note == (
        f"the suggestion sits at the last edge of the range test: lr_max is read from point 39 "
        f"of 40 (lr {lrs[39]:.3g}); the best lr may lie outside the range tested: check the "
        "curve, or rerun it with a higher end_lr."
    )
    for index, edge in [(0, "first"), (1, "first"), (2, None), (37, None), (38, "last")]:
        losses = [2.0] * 40
        losses[index] = 1.0
        assert LRFindResult(suggest(lrs, losses, "minimum", 0.0), lrs, losses).edge == edge
    # 10 points: 5 % is half a point, so one point at each end.
    ten = [2.0] * 9 + [1.0]
    assert LRFindResult(suggest(grid(10), ten, "minimum", 0.0), grid(10), ten).edge == "last"


def test_range_test_log_passes_the_spreads_to_the_reading() -> None:
    lrs = grid(40)
    losses, spread = collapse_curve()
    log = RangeTestLog(smooth=BETA)
    for lr, loss, sp in zip(lrs, losses, spread, strict=True):
        assert log.add(lr, loss, sp, 10)
    result = log.result("minimum")
    assert (result.spreads, result.classes) == (spread, 10)
    assert result.suggestion == suggest(lrs, losses, "minimum", BETA, spread=spread, classes=10)
    assert result.suggestion.cut.reason == "collapsed"
    # A step without a spread turns the collapse check off rather than guessing.
    partial = RangeTestLog(smooth=BETA)
    for k, (lr, loss, sp) in enumerate(zip(lrs, losses, spread, strict=True)):
        partial.add(lr, loss, None if k == 3 else sp, 10)
    assert partial.result("minimum").spreads is None
    assert partial.result("minimum").suggestion.cut is None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"spread": [0.1] * 6}, ValueError, "spread needs classes, the number of classes"),
        ({"spread": [0.1] * 6, "classes": 1}, ValueError, "classes must be an integer >= 2, got 1"),
        ({"spread": [0.1] * 6, "classes": 2.0}, TypeError, "classes must be an integer, got 2.0"),
        ({"spread": [0.1] * 5, "classes": 10}, ValueError, "same length, got 5 and 6"),
        ({"spread": [0.1, -0.1, 0, 0, 0, 0], "classes": 10}, ValueError, r"spread\[1\] must be in"),
        ({"spread": [0.1, math.nan, 0, 0, 0, 0], "classes": 10}, ValueError, r"spread\[1\] must"),
        ({"spread": "abcdef", "classes": 10}, TypeError, "spread must be a sequence of numbers"),
    ],
)
def test_bad_spread_or_classes_is_named(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        suggest(grid(6), [1.0] * 6, "minimum", 0.0, **kwargs)
    with pytest.raises(error, match=message):
        curve_problem(grid(6), [1.0] * 6, smooth=0.0, **kwargs)


def test_the_plot_marks_where_the_reading_stopped(tmp_path, monkeypatch) -> None:
    figure = pytest.importorskip("matplotlib.figure")
    lrs = grid(40)
    result = LRFindResult(suggest(lrs, SPIKE_LOSSES, "minimum", BETA), lrs, SPIKE_LOSSES)
    drawn = []
    save = figure.Figure.savefig

    def keep(fig, path, **kwargs):
        drawn.append(fig)
        return save(fig, path, **kwargs)

    monkeypatch.setattr(figure.Figure, "savefig", keep)
    result.plot(tmp_path / "curve.png")
    (ax,) = drawn[0].axes
    cut_line = ax.get_lines()[-1]
    assert list(cut_line.get_xdata()) == [lrs[27], lrs[27]] and cut_line.get_linestyle() == "-."
    assert ax.get_legend().get_texts()[-1].get_text() == f"diverged at {lrs[27]:.3g}"
