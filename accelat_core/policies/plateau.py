"""Plateau: torch's ``ReduceLROnPlateau`` rule, as a policy in plain Python.

A tiny state machine whose whole state is one dataclass (:class:`PlateauState`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from accelat_core._validate import MAX_STEPS, choice, integer, metric_value, positive, real, saved
from accelat_core.config import register
from accelat_core.decisions import Decision, saved_decisions
from accelat_core.hyper import Hyper
from accelat_core.policy import MetricPolicy, expect_keys


@dataclass
class PlateauState:
    """Everything Plateau remembers; ``state_dict()['state']`` is this as JSON.

    Attributes:
        lr: the current lr, in [``min_lr``, ``lr_max``].
        best: the best metric so far; torch's "worse than anything" (``inf`` for
            ``mode="min"``, ``-inf`` for ``"max"``) until the first one, and ``None`` in
            JSON then.
        num_bad_epochs: the evaluations since ``best`` last improved (0 during a cooldown),
            torch's attribute of that name.
        cooldown_counter: the cooldown evaluations left (0: none), as torch's.
        evaluations: the metrics accepted so far.
        decisions: every reduction, oldest first, as AccelAT records its decisions.

    >>> PlateauState(lr=0.1, best=math.inf).num_bad_epochs
    0
    """

    lr: float
    best: float
    num_bad_epochs: int = 0
    cooldown_counter: int = 0
    evaluations: int = 0
    decisions: list[Decision] = field(default_factory=list)


@register
class Plateau(MetricPolicy):
    r"""Multiply the lr by ``factor`` once the metric has not improved for ``patience`` evaluations.

    One ``step(metric)`` per evaluation (normally once per epoch); the returned lr applies
    to the next epoch. The rule is torch's ``ReduceLROnPlateau``, value for value. A metric
    :math:`a` *improves* on the best so far :math:`b` when

    .. math::
        a < b\,(1 - \text{threshold}) \;(\text{min, rel}), \quad
        a < b - \text{threshold} \;(\text{min, abs}), \quad
        a > b\,(1 + \text{threshold}) \;(\text{max, rel}), \quad
        a > b + \text{threshold} \;(\text{max, abs})

    (the first metric always does; as in torch, ``"rel"`` scales by :math:`b` as it is,
    so for negative metrics it asks for less). After ``patience + 1`` evaluations in a
    row without improvement, outside a cooldown, a *reduction* is decided:
    :math:`lr' = \max(lr \cdot \text{factor}, \text{min\_lr})`, kept only when
    :math:`lr - lr' > \text{eps}`; then ``cooldown`` evaluations pass in which
    nothing counts as bad. Every reduction is recorded in :attr:`decisions` as a
    :class:`~accelat_core.Decision` whose ``gain`` is the metric's change over the best
    (for ``mode="min"`` its decrease), with ``new_lr == old_lr`` when it was not kept.
    (A gain beyond the float range, from metrics about 1e308 apart, is recorded as -inf.)

    A metric that is NaN/inf, ``None`` or not a real number raises ``ValueError`` naming
    the value and the evaluation index, and changes nothing. The lr starts at ``lr_max``;
    momentum is not driven (``None``); :attr:`should_stop` is always False.

    Args:
        lr_max: the lr it starts at (> 0); torch's ``ReduceLROnPlateau`` reads it from the
            optimizer.
        mode: ``"min"`` (default: a loss, lower is better) or ``"max"`` (an accuracy).
        factor: the cut, :math:`lr' = lr \cdot \text{factor}`, in (0, 1) (default 0.1).
        patience: the evaluations without improvement tolerated: a reduction comes at the
            ``patience + 1``-th in a row (an integer >= 0, default 10).
        threshold: the improvement that counts (>= 0, default 1e-4): a fraction of ``best``
            (``"rel"``; then < 1 for ``mode="min"``) or in the metric's units (``"abs"``).
        threshold_mode: ``"rel"`` (default) or ``"abs"``.
        cooldown: the evaluations after a reduction in which nothing counts as bad (an
            integer >= 0, default 0).
        min_lr: the floor, in [0, ``lr_max``] (default 0).
        eps: the smallest change of lr applied: a reduction by ``eps`` or less is not kept
            (>= 0, default 1e-8).

    >>> p = Plateau(lr_max=0.1, mode="max", factor=0.5, patience=1, threshold=0.01,
    ...             threshold_mode="abs")
    >>> [p.step(acc).lr for acc in [0.5, 0.6, 0.605, 0.6, 0.7]]
    [0.1, 0.1, 0.1, 0.05, 0.05]
    >>> p.decisions  # 0.6 - 0.6: no gain over the best at evaluation 3
    [Decision(evaluation=3, gain=0.0, old_lr=0.1, new_lr=0.05)]
    """

    def __init__(
        self,
        lr_max: float,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        self._lr_max = positive("lr_max", lr_max)
        self._mode = choice("mode", mode, ("min", "max"))
        self._factor = real("factor", factor, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        self._patience = integer("patience", patience, lo=0, hi=MAX_STEPS)
        self._threshold_mode = choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self._threshold = real("threshold", threshold, lo=0.0)
        if self._mode == "min" and self._threshold_mode == "rel" and self._threshold >= 1.0:
            # b * (1 - threshold) <= 0 for every b > 0: no metric would ever improve.
            raise ValueError(
                f"threshold must be in [0, 1) for mode='min' with threshold_mode='rel', "
                f"got {threshold!r}"
            )
        self._cooldown = integer("cooldown", cooldown, lo=0, hi=MAX_STEPS)
        self._min_lr = real("min_lr", min_lr, lo=0.0, hi=self._lr_max)
        self._eps = real("eps", eps, lo=0.0)
        self._worst = math.inf if self._mode == "min" else -math.inf
        self._state = PlateauState(lr=self._lr_max, best=self._worst)
        self._hyper = Hyper(self._lr_max, None)

    # -- the rule ---------------------------------------------------------------------
    def step(self, metric: float | None = None) -> Hyper:
        """Feed the metric of the evaluation just finished; return the lr for the next epoch."""
        s = self._state
        e = s.evaluations
        current = metric_value("Plateau", metric, e)
        if not math.isfinite(current):
            raise ValueError(f"metric must be finite, got {metric!r} at evaluation {e}")
        if self._improves(current, s.best):
            s.best = current
            s.num_bad_epochs = 0
        else:
            s.num_bad_epochs += 1
        if s.cooldown_counter > 0:
            s.cooldown_counter -= 1
            s.num_bad_epochs = 0  # bad evaluations in a cooldown do not count
        if s.num_bad_epochs > self._patience:
            self._reduce(e, current)
            s.cooldown_counter = self._cooldown
            s.num_bad_epochs = 0
        s.evaluations = e + 1
        return self._hyper

    def _improves(self, a: float, best: float) -> bool:
        """torch's ``_is_better``, operation for operation."""
        t = self._threshold
        if self._mode == "min":
            return a < (best * (1.0 - t) if self._threshold_mode == "rel" else best - t)
        return a > (best * (t + 1.0) if self._threshold_mode == "rel" else best + t)

    def _reduce(self, evaluation: int, metric: float) -> None:
        """Decide a reduction at ``evaluation``; keep it only if it exceeds ``eps``."""
        s = self._state
        old = s.lr
        new = self._reduced(old)
        gain = metric - s.best if self._mode == "max" else s.best - metric
        s.decisions.append(Decision(evaluation, gain, old, new))
        s.lr = new
        self._hyper = Hyper(new, None)

    def _reduced(self, old: float) -> float:
        """The lr a reduction leaves: ``max(old * factor, min_lr)``, or ``old`` within eps."""
        new = max(old * self._factor, self._min_lr)
        return new if old - new > self._eps else old

    # -- description and state --------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            "lr_max": self._lr_max,
            "mode": self._mode,
            "factor": self._factor,
            "patience": self._patience,
            "threshold": self._threshold,
            "threshold_mode": self._threshold_mode,
            "cooldown": self._cooldown,
            "min_lr": self._min_lr,
            "eps": self._eps,
        }

    def _get_state(self) -> dict[str, Any]:
        s = self._state
        return {
            "lr": s.lr,
            "best": None if s.best == self._worst else s.best,
            "num_bad_epochs": s.num_bad_epochs,
            "cooldown_counter": s.cooldown_counter,
            "evaluations": s.evaluations,
            "decisions": [list(d) for d in s.decisions],
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        keys = {"lr", "best", "num_bad_epochs", "cooldown_counter", "evaluations", "decisions"}
        expect_keys("state", state, required=keys)
        evaluations = saved(integer, "evaluations", state["evaluations"], lo=0, hi=MAX_STEPS)
        best = state["best"]
        if (best is None) != (evaluations == 0):
            raise ValueError(
                f"state['best'] must be None exactly when evaluations is 0 (the first metric "
                f"always improves), got {best!r} with evaluations {evaluations}"
            )
        best = self._worst if best is None else saved(real, "best", best)
        decisions = self._saved_decisions(state["decisions"], evaluations)
        lr = saved(real, "lr", state["lr"])
        last_lr = decisions[-1].new_lr if decisions else self._lr_max
        if lr != last_lr:
            raise ValueError(
                f"state['lr'] must be the last decision's new_lr (lr_max before any), "
                f"{last_lr!r}, got {lr!r}"
            )
        cooldown_left, most_bad = self._counters_after(decisions, evaluations)
        counter = saved(integer, "cooldown_counter", state["cooldown_counter"], lo=0)
        if counter != cooldown_left:
            raise ValueError(
                f"state['cooldown_counter'] must be {cooldown_left} (what is left of the "
                f"cooldown of {self._cooldown} after the last decision), got {counter}"
            )
        bad = saved(integer, "num_bad_epochs", state["num_bad_epochs"], lo=0, hi=most_bad)
        self._state = PlateauState(lr, best, bad, counter, evaluations, decisions)
        self._hyper = Hyper(lr, None)

    def _saved_decisions(self, decisions: Any, evaluations: int) -> list[Decision]:
        """``state['decisions']`` parsed and checked against the rule that made them."""
        parsed = saved_decisions(decisions, self._min_lr, self._lr_max, "min_lr")
        earliest, lr = self._patience + 1, self._lr_max
        for d in parsed:
            if not earliest <= d.evaluation < evaluations:
                raise ValueError(
                    f"state['decisions[][0]'] must be in [{earliest}, {evaluations}): after "
                    f"the first metric and after the previous decision's cooldown, a decision "
                    f"takes patience + 1 evaluations, got {d.evaluation}"
                )
            if (d.old_lr, d.new_lr) != (lr, self._reduced(lr)):
                raise ValueError(
                    f"state['decisions'] entry {list(d)!r} must reduce the lr {lr!r} to "
                    f"{self._reduced(lr)!r}"
                )
            earliest, lr = d.evaluation + self._cooldown + self._patience + 1, d.new_lr
        return parsed

    def _counters_after(self, decisions: list[Decision], evaluations: int) -> tuple[int, int]:
        """The cooldown left after ``evaluations``, and the most bad evaluations possible."""
        if not decisions:
            return 0, min(self._patience, max(evaluations - 1, 0))
        since = evaluations - 1 - decisions[-1].evaluation  # evaluations after the last one
        cooldown_left = max(self._cooldown - since, 0)
        return cooldown_left, min(self._patience, max(since - self._cooldown, 0))
