"""Learning-rate range test: the schedule that drives it and the rules that read its curve.

A range test trains for a few hundred batches while the lr grows from ``start_lr`` to
``end_lr`` (:class:`RangeTest`), records one loss per batch, and :func:`suggest` turns
the ``(lr, loss)`` lists into an lr range. Frameworks run the test (``accelat_torch``,
``accelat_keras``); this module only sees plain lists.

>>> lrs = [RangeTest(1e-4, 1.0, 9).at(t).lr for t in range(9)]
>>> losses = [2.0, 2.0, 1.9, 1.5, 1.0, 0.6, 0.5, 0.9, 3.0]
>>> s = suggest(lrs, losses, method="minimum", smooth=0.0)
>>> round(s.lr_max, 12), s.index
(0.01, 6)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from accelat_core._validate import MAX_STEPS, choice, integer, positive, real
from accelat_core.config import register
from accelat_core.hyper import Hyper
from accelat_core.policy import Schedule

METHODS = ("paper", "steepest", "minimum", "valley")

#: Fewer usable points than this (after cutting at NaN/inf or divergence) is an error.
MIN_POINTS = 5
#: The test has diverged once the smoothed loss exceeds this multiple of its best so far.
DIVERGENCE = 4.0
#: "paper": the loss has started to fall once it dropped by this fraction of its total drop.
ONSET_FRACTION = 0.1
#: :func:`curve_problem`: the loss never left its plateau when its smoothed value never fell
#: more than this fraction (5 %) of the starting loss below it.
PLATEAU_FRACTION = 0.05
#: :func:`curve_problem`: the loss diverged at once when its smoothed minimum lies within this
#: leading fraction (10 %) of the usable points and it then rose (by the plateau fraction).
EARLY_FRACTION = 0.1
#: :func:`suggest` reads no further than where the smoothed loss rises above its starting
#: value and this multiple (1.1) of its best so far: a divergence below ``DIVERGENCE``.
RISE = 1.1
#: ... for this many points in a row (3): a single noisy batch is not a divergence.
PERSIST = 3
#: A step's network has collapsed when its loss is at most this multiple (1.1) of ln(classes),
#: the loss of one uniform output for every image, ...
CHANCE = 1.1
#: ... and the spread of its predictions is at most this fraction (0.2) of the most it had gained
#: over its start.
FLAT = 0.2
#: :attr:`LRFindResult.edge`: the first and last 5 % of a test's points (at least one each).
EDGE_FRACTION = 0.05

T = TypeVar("T")


@register
class RangeTest(Schedule):
    r"""The lr of a range test, per batch: exponential or linear from ``start_lr`` to ``end_lr``.

    .. math::
        lr(t) = \text{start} \cdot (\text{end}/\text{start})^{t/(n-1)} \quad \text{(exp)}, \qquad
        lr(t) = \text{start} + (\text{end} - \text{start})\, t/(n-1) \quad \text{(linear)}

    for :math:`0 \le t < n` = ``num_steps``, then held at ``end_lr`` (``horizon = n - 1``).

    Args:
        start_lr: the lr of the first batch (> 0).
        end_lr: the lr of the last batch (> ``start_lr``).
        num_steps: :math:`n`, the batches of the test (>= 2).
        mode: ``"exp"`` (default: evenly spaced in log lr, as fastai and most finders) or
            ``"linear"``.

    >>> [round(RangeTest(1e-3, 1.0, 4).at(t).lr, 12) for t in range(5)]
    [0.001, 0.01, 0.1, 1.0, 1.0]
    """

    def __init__(self, start_lr: float, end_lr: float, num_steps: int, mode: str = "exp") -> None:
        self._start_lr = positive("start_lr", start_lr)
        self._end_lr = positive("end_lr", end_lr)
        if self._end_lr <= self._start_lr:
            raise ValueError(
                f"end_lr must be > start_lr, got start_lr={start_lr!r}, end_lr={end_lr!r}"
            )
        self._num_steps = integer("num_steps", num_steps, lo=2, hi=MAX_STEPS)
        self._mode = choice("mode", mode, ("exp", "linear"))
        self._last = self._num_steps - 1
        self._ratio = self._end_lr / self._start_lr
        self._end = Hyper(self._end_lr, None)
        super().__init__()

    def at(self, t: int) -> Hyper:
        if t >= self._last:
            return self._end
        f = t / self._last
        if self._mode == "exp":
            return Hyper(self._start_lr * self._ratio**f, None)
        return Hyper(self._start_lr + (self._end_lr - self._start_lr) * f, None)

    @property
    def horizon(self) -> int:
        return self._last

    def get_config(self) -> dict[str, Any]:
        return {
            "start_lr": self._start_lr,
            "end_lr": self._end_lr,
            "num_steps": self._num_steps,
            "mode": self._mode,
        }


@dataclass(frozen=True)
class Cut:
    """Where :func:`suggest` stopped reading a curve before its usable end, and why.

    Attributes:
        index: the first point not read.
        lr: its lr.
        reason: ``"diverged"`` or ``"collapsed"``.
        evidence: the numbers that showed it, as a phrase.
        lower_lr: the lr of ``lower_loss``, or ``None``.
        lower_loss: the lowest smoothed loss of the usable points from ``index`` on when it
            lies below every point read (the point a reading that did not stop would have
            taken for the minimum), else ``None``.
    """

    index: int
    lr: float
    reason: str
    evidence: str
    lower_lr: float | None = None
    lower_loss: float | None = None

    @property
    def headline(self) -> str:
        """``"the loss diverged"`` or ``"the network collapsed"``."""
        return "the loss diverged" if self.reason == "diverged" else "the network collapsed"


@dataclass(frozen=True)
class Suggestion:
    """What :func:`suggest` found.

    Attributes:
        lr_max: the suggested peak lr (the lr to pass as ``lr_max`` / torch's ``max_lr``).
        lr_min: the suggested low end of the range (<= ``lr_max``).
        method: the rule that read the curve (see :func:`suggest`).
        index: the point ``lr_max`` was read from (``lr_max`` may be that lr / 10).
        min_index: the point ``lr_min`` was read from (``None`` when ``lr_min`` is
            ``lr_max / 10``).
        smoothed: the debiased smoothed losses of the usable points (``len(smoothed)``
            points were usable; the rest were cut at NaN/inf or ``DIVERGENCE``).
        cut: where the reading stopped before the end of the usable points, and why
            (``None``: every usable point was read).

    >>> s = suggest([1e-3, 1e-2, 1e-1, 1.0, 10.0], [2.0, 1.5, 1.0, 0.5, 0.8], "minimum", 0.0)
    >>> round(s.lr_max, 12), round(s.lr_min, 12), s.index, s.cut
    (0.1, 0.01, 3, None)
    """

    lr_max: float
    lr_min: float
    method: str
    index: int
    min_index: int | None
    smoothed: tuple[float, ...]
    cut: Cut | None = None


@dataclass
class LRFindResult:
    """What a framework's ``lr_find`` measured: the per-batch ``lrs`` and raw ``losses``,
    and :func:`suggest`'s reading of them (``suggestion.lr_max``, ``suggestion.lr_min``).

    A caller can refuse to train on a suggestion read from a flat or at once diverging curve
    (``informative``). ``notes`` are the sentences a caller should show its user: the reading
    stopped at a divergence or collapse past which the loss fell lower, or the suggestion sits
    at an ``edge`` of the test. ``plot`` needs matplotlib (imported only when called; the core
    itself stays standard-library only).

    Attributes:
        suggestion: :func:`suggest`'s reading of the curve.
        lrs: the lr of each batch, in the order run.
        losses: each batch's raw training loss.
        problem: :func:`curve_problem`'s reason why the curve carries no information, or
            ``None`` for an informative one.
        spreads: the per-batch spread of the predictions (nats) when the framework measured
            them (see :func:`suggest`), else ``None``.
        classes: the number of classes the network predicts, with ``spreads``, else ``None``.

    >>> log = RangeTestLog(smooth=0.0)
    >>> for lr, loss in zip([1e-3, 1e-2, 1e-1, 1.0, 10.0], [2.0, 1.5, 1.0, 0.5, 0.8]):
    ...     _ = log.add(lr, loss)
    >>> result = log.result("minimum")
    >>> round(result.suggestion.lr_max, 12), result.informative, result.edge
    (0.1, True, None)
    """

    suggestion: Suggestion
    lrs: list[float]
    losses: list[float]
    problem: str | None = None
    spreads: list[float] | None = None
    classes: int | None = None

    @property
    def informative(self) -> bool:
        """True unless :func:`curve_problem` found a reason (``problem``)."""
        return self.problem is None

    @property
    def edge(self) -> str | None:
        """``"first"`` or ``"last"`` when ``lr_max`` is read from the first or last
        ``EDGE_FRACTION`` (5 %, at least one) of the test's points, else ``None``."""
        n, index = len(self.lrs), self.suggestion.index
        k = max(1, math.ceil(EDGE_FRACTION * n))
        return "first" if index < k else "last" if index >= n - k else None

    @property
    def notes(self) -> list[str]:
        """One sentence per thing the user should know about how the curve was read."""
        notes = []
        cut = self.suggestion.cut
        if cut is not None and cut.lower_lr is not None:
            notes.append(
                f"{cut.headline} at lr {cut.lr:.3g} ({cut.evidence}), so the curve was read only "
                f"below that lr; the smoothed loss fell later to {cut.lower_loss:.3g} at lr "
                f"{cut.lower_lr:.3g}, which is not read as learning."
            )
        edge = self.edge
        if edge is not None:
            index = self.suggestion.index
            fix = "a lower start_lr" if edge == "first" else "a higher end_lr"
            notes.append(
                f"the suggestion sits at the {edge} edge of the range test: lr_max is read from "
                f"point {index} of {len(self.lrs)} (lr {self.lrs[index]:.3g}); the best lr may "
                f"lie outside the range tested: check the curve, or rerun it with {fix}."
            )
        return notes

    def plot(self, path: str | Path) -> Path:
        """Write loss against lr (log x axis) as a PNG, marking the suggested lrs (and the
        lr where the reading stopped, when it stopped early), in constrained layout so that no
        label is cut off at an edge."""
        from matplotlib.figure import Figure  # no pyplot: the caller's backend is left alone

        fig = Figure(figsize=(6, 4), layout="constrained")
        ax = fig.subplots()
        ax.plot(self.lrs, self.losses, label="loss")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        for name, style in (("lr_max", "--"), ("lr_min", ":")):
            value = getattr(self.suggestion, name)
            ax.axvline(value, linestyle=style, color="C3", label=f"{name} = {value:.3g}")
        cut = self.suggestion.cut
        if cut is not None:
            ax.axvline(cut.lr, linestyle="-.", color="C7", label=f"{cut.reason} at {cut.lr:.3g}")
        ax.legend()
        path = Path(path)
        fig.savefig(path, dpi=100)
        return path


class RangeTestLog:
    """The ``(lr, loss)`` record of a running range test, and the rule for when to stop it.

    Frameworks call :meth:`add` once per batch; it returns ``False`` once the test should
    stop: the loss is NaN/inf (not recorded), or its debiased exponential average (factor
    ``smooth``) exceeds ``DIVERGENCE`` (4) times the best average so far while that is
    positive (recorded, as :func:`suggest` cuts it again). The same rule as :func:`suggest`'s
    cut, applied online, so a framework never trains past it. A framework that sees the
    network's outputs passes each batch's ``spread`` and the number of ``classes`` too (see
    :func:`suggest`), and the reading then looks for a collapse.

    Args:
        smooth: the factor of the loss's exponential moving average, in [0, 1) (default
            0.98, fastai's; 0: no smoothing).

    >>> log = RangeTestLog(smooth=0.0)
    >>> [log.add(lr, loss) for lr, loss in [(1e-3, 2.0), (1e-2, 1.0), (1e-1, 5.0)]]
    [True, True, False]
    >>> log.lrs, log.losses
    ([0.001, 0.01, 0.1], [2.0, 1.0, 5.0])
    """

    def __init__(self, smooth: float = 0.98) -> None:
        self.smooth = real("smooth", smooth, lo=0.0, hi=1.0, hi_open=True)
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.spreads: list[float | None] = []
        self.classes: int | None = None
        self._average = 0.0
        self._best = math.inf

    def add(
        self, lr: float, loss: float, spread: float | None = None, classes: int | None = None
    ) -> bool:
        """Record one batch; ``False`` when the test should stop here."""
        if not math.isfinite(loss):
            return False
        self.lrs.append(lr)
        self.losses.append(loss)
        self.spreads.append(spread)
        if classes is not None:
            self.classes = classes
        beta = self.smooth
        self._average = beta * self._average + (1 - beta) * loss
        smoothed = self._average / (1 - beta ** len(self.losses))
        if 0 < self._best < math.inf and smoothed > DIVERGENCE * self._best:
            return False
        self._best = min(self._best, smoothed)
        return True

    def result(self, method: str = "paper") -> LRFindResult:
        """:func:`suggest`'s reading of the record, with the record itself."""
        spreads = [s for s in self.spreads if s is not None]
        measured = len(spreads) == len(self.losses) and self.classes is not None
        spread, classes = (spreads, self.classes) if measured else (None, None)
        return LRFindResult(
            suggest(self.lrs, self.losses, method, self.smooth, spread=spread, classes=classes),
            self.lrs,
            self.losses,
            curve_problem(
                self.lrs, self.losses, smooth=self.smooth, spread=spread, classes=classes
            ),
            spread,
            classes,
        )


def cycle_batches(batches: Iterable[T], *, name: str = "batches") -> Iterator[T]:
    """The items of ``batches`` for ever, iterating it again (not caching) each time it ends.

    A range test may want more batches than one pass of a loader holds. Raises
    ``ValueError("lr_find's <name> yielded no batches")`` when a pass yields nothing
    (``name`` is the caller's argument name), instead of looping for ever.

    Args:
        batches: a re-iterable of batches (a list, a torch ``DataLoader``, a
            ``tf.data.Dataset``); a one-shot iterator (a generator) raises the
            ``ValueError`` once it is spent.
        name: the argument name the error names (default ``"batches"``).

    >>> from itertools import islice
    >>> list(islice(cycle_batches([1, 2]), 5))
    [1, 2, 1, 2, 1]
    """
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError(f"lr_find's {name} yielded no batches")


def smooth_losses(losses: Sequence[float], smooth: float) -> list[float]:
    r"""Debiased exponential moving average (fastai's ``smooth_loss``).

    :math:`m_i = \beta m_{i-1} + (1 - \beta) x_i` with :math:`m_{-1} = 0`, and the
    smoothed value :math:`m_i / (1 - \beta^{i+1})`. ``smooth = 0`` returns the losses.
    """
    avg = 0.0
    out = []
    for i, x in enumerate(losses):
        avg = smooth * avg + (1.0 - smooth) * x
        out.append(avg / (1.0 - smooth ** (i + 1)))
    return out


def suggest(
    lrs: Sequence[float],
    losses: Sequence[float],
    method: str = "paper",
    smooth: float = 0.98,
    *,
    spread: Sequence[float] | None = None,
    classes: int | None = None,
) -> Suggestion:
    r"""Suggest ``(lr_max, lr_min)`` from a range test's per-batch lrs and losses.

    The losses are smoothed (:func:`smooth_losses`) and cut before the first NaN/inf loss
    and before the first point where the smoothed loss exceeds ``4 x`` its best so far
    (divergence; only checked while the best is positive). At least ``5`` points must
    remain: the usable points. The rules read them up to (not including) the first point
    :math:`i` that shows a divergence or a collapse (:attr:`Suggestion.cut`), where, with
    :math:`s` the smoothed and :math:`\ell` the raw losses, :math:`m_i = \min_{j<i} s_j`:

    - **diverged**: :math:`i \ge 5` (``MIN_POINTS``: earlier rises are a noisy start),
      :math:`m_i > 0` and :math:`s_j > \max(s_0,\ 1.1\, m_i)` (``RISE``) for
      :math:`j = i, i+1, i+2` (``PERSIST``, or to the last point; one noisy batch is no
      divergence): the
      loss rose above where it started, and clearly above its best. Adversarial losses
      flatten near chance instead of exploding, so they rarely reach ``4 x``; a network
      worse than before training is the sign that the lr is too large, and what follows
      (a fall to chance, say) is not learning.
    - **collapsed** (only with ``spread`` and ``classes``): :math:`\ell_i \le 1.1 \ln C`
      (``CHANCE``) and :math:`\sigma_i \le 0.2\,(\max_{j \le i} \sigma_j - \sigma_0)`
      (``FLAT``), where ``spread[i]`` :math:`= \sigma_i = H(\bar p) - \frac{1}{N}\sum_n
      H(p_n)` is the mutual information between a batch's images and the network's
      predicted class (nats; :math:`p_n` the softmax of image :math:`n`, :math:`\bar p`
      their mean over the batch, 0 when every image gets the same output) and :math:`C` =
      ``classes``. The loss is then that of one output for every image, and the spread is
      down to a fifth of what the predictions had gained over their start: the network
      stopped looking at its input. A fresh network is flat at first, or spread by its
      random features only; losing that is not a collapse, hence the gain. Each batch's own
      values are tested, not averages: a smoothed loss that averages in a collapsed batch is
      no evidence of learning.

    Then, with :math:`i^*` the argmin of the points read (the first one on ties):

    - ``"paper"`` (AccelAT): ``lr_max = lrs[i*] / 10``, one order of magnitude below the
      minimum; ``lr_min`` is where the loss starts to fall from its initial plateau: the
      first lr at which :math:`s_0 - s_i > 0.1\,(s_0 - s_{i^*})` (the loss has covered 10 %
      of its total drop), capped at ``lr_max``. Raises if the loss never falls.
    - ``"minimum"`` (fastai): ``lr_max = lrs[i*] / 10``, ``lr_min = lr_max / 10``.
    - ``"steepest"``: ``lr_max`` is the lr of the most negative slope
      :math:`ds/d\log(lr)` (second-order central differences inside, one-sided at the
      ends, like ``numpy.gradient``), ``lr_min = lr_max / 10``.
    - ``"valley"`` (fastai): the longest strictly decreasing subsequence ("valley") of
      :math:`s`; with its bounds ``start, end`` computed as fastai does,
      ``lr_max = lrs[start + int(d) + int(d / 2)]`` where ``d = (end - start) / 3``
      (index clamped at 0, where fastai's would wrap round to the last point);
      ``lr_min = lrs[min(start + 1, index)]`` (the valley's first point when it is
      contiguous, and never past ``lr_max``'s point).

    A reading of fewer than 5 points is returned too; :func:`curve_problem` says when a
    curve carries no information. ``lrs`` must be positive, finite and strictly increasing,
    and as long as ``losses`` (and ``spread``, finite and >= 0; ``classes`` >= 2).

    Args:
        lrs: the lr of each batch of the test (> 0, finite, strictly increasing).
        losses: each batch's raw training loss, as many as ``lrs`` (NaN/inf cut the curve).
        method: ``"paper"`` (default), ``"minimum"``, ``"steepest"`` or ``"valley"``.
        smooth: the factor of the losses' exponential moving average, in [0, 1) (default
            0.98, fastai's; 0: the raw losses).
        spread: each batch's spread of the predictions (nats, >= 0), as many as ``lrs``, to
            find a collapse; ``None`` (default): no collapse check.
        classes: the number of classes the network predicts (>= 2); required with ``spread``.

    >>> lrs = [10 ** (k / 2 - 6) for k in range(11)]  # 1e-6 .. 1e-1
    >>> losses = [1.0, 1.0, 1.0, 0.8, 0.5, 0.3, 0.2, 0.1, 0.3, 0.9, 5.0]
    >>> s = suggest(lrs, losses, method="paper", smooth=0.0)
    >>> s.index, s.min_index, s.lr_max == lrs[7] / 10, s.lr_min == lrs[3]
    (7, 3, True, True)
    >>> spike = [3.0, 2.9, 2.8, 2.7, 2.6, 4.5, 4.4, 4.0, 2.4, 2.3, 2.3]  # then a fall to ln 10
    >>> s = suggest(lrs, spike, method="minimum", smooth=0.0)
    >>> s.index, s.cut.reason, s.cut.index
    (4, 'diverged', 5)
    """
    choice("method", method, METHODS)
    xs, ys, beta = _checked_curve(lrs, losses, smooth)
    flat = _checked_spread(spread, classes, len(ys))
    smoothed = _cut(ys, beta)
    n = len(smoothed)
    if n < MIN_POINTS:
        raise ValueError(
            f"suggest needs at least {MIN_POINTS} usable points, got {n} of {len(ys)} "
            "(the losses are cut before the first NaN/inf and where the smoothed loss "
            f"exceeds {DIVERGENCE:g}x its best); run the range test longer or from a lower "
            "start_lr"
        )
    cut = _reading_cut(xs, ys, smoothed, flat, classes)
    end = n if cut is None else cut.index
    read = _suggest(xs[:end], smoothed[:end], method)
    return replace(read, smoothed=tuple(smoothed), cut=cut)


def curve_problem(
    lrs: Sequence[float],
    losses: Sequence[float],
    *,
    smooth: float = 0.98,
    spread: Sequence[float] | None = None,
    classes: int | None = None,
) -> str | None:
    r"""``None`` for an informative range-test curve, else a one-sentence reason why not.

    With :math:`s` the smoothed usable losses (cut as in :func:`suggest`), :math:`n`
    their number, :math:`i^*` their argmin (the first on ties) and the scale
    :math:`|s_0|` (the starting loss), in this order:

    - fewer than ``MIN_POINTS`` (5) usable points: *"the loss diverged at once"*;
    - :math:`i^* / n < 0.1` (``EARLY_FRACTION``) and then the loss rose,
      :math:`\max_{i \ge i^*} s_i - s_{i^*} > 0.05\,|s_0|`: *"the loss diverged at once"*;
    - :math:`s_0 - s_{i^*} \le 0.05\,|s_0|` (``PLATEAU_FRACTION``): *"the loss never left
      its plateau"*.

    When the curve passes, and :func:`suggest` stops reading it at a divergence or a
    collapse, the same three checks run on the points it reads (*"... at once"*, naming
    the lr and the evidence). ``spread`` and ``classes`` and the other inputs are checked
    as :func:`suggest` checks them.

    Args:
        lrs: the lr of each batch of the test (> 0, finite, strictly increasing).
        losses: each batch's raw training loss, as many as ``lrs``.
        smooth: the factor of the losses' exponential moving average, in [0, 1) (default
            0.98).
        spread: each batch's spread of the predictions (nats, >= 0), or ``None`` (default).
        classes: the number of classes the network predicts (>= 2); required with ``spread``.

    >>> lrs = [10 ** (k / 4 - 6) for k in range(20)]
    >>> curve_problem(lrs, [1.0] * 20, smooth=0.0).split(":")[0]
    'the loss never left its plateau'
    >>> print(curve_problem(lrs, [1.0 - 0.04 * k for k in range(20)], smooth=0.0))
    None
    >>> curve_problem(lrs, [3.0, 2.9] + [50.0] * 18, smooth=0.0).split(":")[0]
    'the loss diverged at once'
    """
    xs, ys, beta = _checked_curve(lrs, losses, smooth)
    flat = _checked_spread(spread, classes, len(ys))
    s = _cut(ys, beta)
    problem = _shape_problem(s, len(ys), None)
    if problem is not None:
        return problem
    cut = _reading_cut(xs, ys, s, flat, classes)
    return None if cut is None else _shape_problem(s[: cut.index], len(ys), cut)


def _shape_problem(s: list[float], total: int, cut: Cut | None) -> str | None:
    """:func:`curve_problem`'s three checks on the smoothed points ``s`` (of ``total``),
    read up to ``cut`` (``None``: all the usable points)."""
    n = len(s)
    if n < MIN_POINTS:
        if cut is not None:
            return (
                f"{cut.headline} at once, at lr {cut.lr:.3g} ({cut.evidence}): only {n} of "
                f"{total} points come before it (at least {MIN_POINTS} are needed); start the "
                "range test at a lower start_lr."
            )
        return (
            f"the loss diverged at once: only {n} of {total} points are usable (at least "
            f"{MIN_POINTS} are needed) before it turned NaN/inf or exceeded {DIVERGENCE:g}x "
            "its best; start the range test at a lower start_lr."
        )
    where = "" if cut is None else f" before lr {cut.lr:.3g} ({cut.headline}: {cut.evidence})"
    best = min(range(n), key=s.__getitem__)
    scale = abs(s[0])
    if best / n < EARLY_FRACTION and max(s[best:]) - s[best] > PLATEAU_FRACTION * scale:
        return (
            f"the loss diverged at once: its smoothed minimum is point {best} of {n} usable "
            f"ones{where}, within the first {EARLY_FRACTION * 100:g} % of the curve; start the "
            "range test at a lower start_lr."
        )
    drop = s[0] - s[best]
    if drop <= PLATEAU_FRACTION * scale:
        fell = 0.0 if scale == 0 else max(drop, 0.0) / scale
        return (
            f"the loss never left its plateau{where}: its smoothed value fell at most "
            f"{fell * 100:.1f} % below the starting loss {s[0]:g} (more than "
            f"{PLATEAU_FRACTION * 100:g} % is needed)."
        )
    return None


def _reading_cut(
    xs: list[float],
    raw: list[float],
    smoothed: list[float],
    spread: list[float] | None,
    classes: int | None,
) -> Cut | None:
    """The first of the usable points that shows a divergence or a collapse (see
    :func:`suggest`), or ``None``."""
    chance = -math.inf if classes is None else CHANCE * math.log(classes)
    best, gain = math.inf, 0.0
    for i, s in enumerate(smoothed):
        above = [x > max(smoothed[0], RISE * best) for x in smoothed[i : i + PERSIST]]
        # (To the end, when fewer points are left. A rise at the first MIN_POINTS is a noisy
        # start, a trained network's batches or a debiased average of few losses: it is read.)
        if i >= MIN_POINTS and 0 < best < math.inf and all(above):
            return _cut_at(
                i, xs, smoothed, "diverged",
                f"its smoothed value {s:.3g} rose above its start {smoothed[0]:.3g} and "
                f"{RISE:g}x its best {best:.3g}",
            )  # fmt: skip
        if spread is not None and classes is not None:
            gain = max(gain, spread[i] - spread[0])
            if gain > 0 and raw[i] <= chance and spread[i] <= FLAT * gain:
                return _cut_at(
                    i, xs, smoothed, "collapsed",
                    f"its loss {raw[i]:.3g} is at most {CHANCE:g}x ln({classes}) = "
                    f"{math.log(classes):.3g}, the loss of one uniform output for every image, "
                    f"and the spread of its predictions fell to {spread[i]:.3g} nats, "
                    f"{spread[i] / gain * 100:.0f} % of the {gain:.3g} they had gained over "
                    f"their start",
                )  # fmt: skip
        best = min(best, s)
    return None


def _cut_at(i: int, xs: list[float], smoothed: list[float], reason: str, evidence: str) -> Cut:
    """A :class:`Cut` at point ``i``, with the lowest point past it if it lies lower."""
    later = min(range(i, len(smoothed)), key=smoothed.__getitem__)
    if i > 0 and smoothed[later] < min(smoothed[:i]):
        return Cut(i, xs[i], reason, evidence, xs[later], smoothed[later])
    return Cut(i, xs[i], reason, evidence)


def _suggest(xs: list[float], smoothed: list[float], method: str) -> Suggestion:
    """:func:`suggest`'s rules on the usable lrs and their smoothed losses."""
    n = len(smoothed)
    best = min(range(n), key=smoothed.__getitem__)

    if method == "minimum":
        lr_max = xs[best] / 10
        return Suggestion(lr_max, lr_max / 10, method, best, None, tuple(smoothed))

    if method == "paper":
        drop = smoothed[0] - smoothed[best]
        if not drop > 0:
            raise ValueError(
                "the smoothed loss never falls below its first value; start the range test "
                "at a lower start_lr"
            )
        onset = next(i for i in range(n) if smoothed[0] - smoothed[i] > ONSET_FRACTION * drop)
        lr_max = xs[best] / 10
        return Suggestion(lr_max, min(xs[onset], lr_max), method, best, onset, tuple(smoothed))

    if method == "steepest":
        slopes = _gradient([math.log(x) for x in xs], smoothed)
        steep = min(range(n), key=slopes.__getitem__)
        lr_max = xs[steep]
        return Suggestion(lr_max, lr_max / 10, method, steep, None, tuple(smoothed))

    start, end = _longest_valley(smoothed)
    third = (end - start) / 3
    # fastai's formula gives -1 for a valley of one or two points at the very start (and
    # then reads the last lr); take the first point instead.
    idx = max(start + int(third) + int(third / 2), 0)
    first = min(start + 1, idx)
    return Suggestion(xs[idx], xs[first], method, idx, first, tuple(smoothed))


def _checked_curve(
    lrs: Sequence[float], losses: Sequence[float], smooth: float
) -> tuple[list[float], list[float], float]:
    """The lrs and losses as float lists and the smoothing factor, checked; or raise."""
    beta = real("smooth", smooth, lo=0.0, hi=1.0, hi_open=True)
    if isinstance(lrs, (str, bytes)) or not isinstance(lrs, Sequence):
        raise TypeError(f"lrs must be a sequence of numbers, got {type(lrs).__name__}")
    if isinstance(losses, (str, bytes)) or not isinstance(losses, Sequence):
        raise TypeError(f"losses must be a sequence of numbers, got {type(losses).__name__}")
    if len(lrs) != len(losses):
        raise ValueError(
            f"lrs and losses must have the same length, got {len(lrs)} and {len(losses)}"
        )
    xs = [positive(f"lrs[{i}]", v) for i, v in enumerate(lrs)]
    for i in range(1, len(xs)):
        if xs[i] <= xs[i - 1]:
            raise ValueError(
                f"lrs must be strictly increasing, got lrs[{i - 1}]={xs[i - 1]!r} >= "
                f"lrs[{i}]={xs[i]!r}"
            )
    ys = []
    for i, v in enumerate(losses):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"losses[{i}] must be a real number, got {v!r}")
        ys.append(float(v))
    return xs, ys, beta


def _checked_spread(
    spread: Sequence[float] | None, classes: int | None, n: int
) -> list[float] | None:
    """The per-batch spreads as a float list (``None`` without them), checked; or raise."""
    if spread is None:
        return None
    if classes is None:
        raise ValueError(
            "spread needs classes, the number of classes the network predicts, to tell a "
            "collapse; got classes=None"
        )
    integer("classes", classes, lo=2)
    if isinstance(spread, (str, bytes)) or not isinstance(spread, Sequence):
        raise TypeError(f"spread must be a sequence of numbers, got {type(spread).__name__}")
    if len(spread) != n:
        raise ValueError(f"spread and losses must have the same length, got {len(spread)} and {n}")
    return [real(f"spread[{i}]", v, lo=0.0) for i, v in enumerate(spread)]


def _cut(losses: list[float], beta: float) -> list[float]:
    """The smoothed losses up to (not including) the first NaN/inf or divergent point.

    The average is causal and a NaN/inf loss makes it NaN/inf (``beta < 1``), so cutting at
    the first non-finite smoothed value cuts before the first non-finite loss.
    """
    smoothed = smooth_losses(losses, beta)
    best = math.inf
    for i, s in enumerate(smoothed):
        if not math.isfinite(s) or (0 < best < math.inf and s > DIVERGENCE * best):
            return smoothed[:i]
        best = min(best, s)
    return smoothed


def _gradient(x: list[float], y: list[float]) -> list[float]:
    """dy/dx like ``numpy.gradient(y, x)``: second-order inside, first-order at the ends
    (0 for a single point)."""
    n = len(y)
    if n == 1:
        return [0.0]
    g = [(y[1] - y[0]) / (x[1] - x[0])]
    for i in range(1, n - 1):
        hd = x[i] - x[i - 1]
        hs = x[i + 1] - x[i]
        g.append(
            (hd * hd * y[i + 1] - hs * hs * y[i - 1] + (hs * hs - hd * hd) * y[i])
            / (hs * hd * (hd + hs))
        )
    g.append((y[-1] - y[-2]) / (x[-1] - x[-2]))
    return g


def _longest_valley(losses: list[float]) -> tuple[int, int]:
    """fastai's ``valley`` bounds: ``(end - length, end)`` of the longest decreasing run.

    ``lds[i]`` is the length of the longest strictly decreasing subsequence ending at
    ``i``; as in fastai, ``start = end - lds[end]`` is one before the valley's first
    point (and can be -1).
    """
    n = len(losses)
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    return max_start, max_end
