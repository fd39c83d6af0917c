"""AccelAT: cut the learning rate when the validation metric stops gaining.

The rule of Nikfam et al. (IEEE Access 2022), as in their released code, is a tiny
state machine whose whole state is one dataclass (:class:`AccelATState`).
"""

from __future__ import annotations

import math
import numbers
from collections import deque
from dataclasses import dataclass, field
from operator import mul
from typing import Any, NamedTuple

from accelat_core._validate import choice, integer, positive, real
from accelat_core.config import register
from accelat_core.hyper import Hyper
from accelat_core.policy import Policy, expect_keys

_GAINS = ("endpoint", "windows", "slope")
#: Windows are counted in evaluations (epochs); a larger one is a units mistake.
MAX_WINDOW = 10_000


class Decision(NamedTuple):
    """One cut decision: at ``evaluation`` the ``gain`` was below ``min_gain``.

    ``new_lr == old_lr`` when the lr was already at ``lr_min`` (the cut was clamped away).
    """

    evaluation: int
    gain: float
    old_lr: float
    new_lr: float


@dataclass
class AccelATState:
    """Everything AccelAT remembers; ``state_dict()['state']`` is this as JSON.

    ``history`` holds the newest accepted metrics (at most as many as the gain needs),
    ``evaluations`` counts accepted metrics (the newest has index ``evaluations - 1``),
    ``last_drop`` is the evaluation index of the last cut decision (``None`` before any),
    ``below_min`` counts cut decisions taken while the lr was already ``lr_min``,
    ``skipped`` lists the step-call indices whose metric was NaN/inf and ignored.
    """

    lr: float
    history: deque[float]
    evaluations: int = 0
    last_drop: int | None = None
    below_min: int = 0
    skipped: list[int] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


@register
class AccelAT(Policy):
    r"""Multiply the lr by ``factor`` whenever the metric gained less than ``min_gain``.

    One ``step(metric)`` per evaluation (normally once per epoch). With the metric
    history :math:`a_0, a_1, \dots` and :math:`e` the index of the metric just passed,
    a *decision* is taken at :math:`e` when

    .. math:: e \ge \text{warmup} \quad\text{and}\quad e - e_\text{last cut} \ge \text{cooldown}

    (and enough history exists for the gain). If :math:`g(e) < \text{min\_gain}`,
    :math:`lr \leftarrow \max(lr \cdot \text{factor}, \text{lr\_min})`; the returned lr
    applies to the next epoch. The gain (for ``mode="min"`` the decrease, i.e. the
    sign is flipped) is

    - ``"endpoint"``: :math:`g(e) = a_e - a_{e-w}` with :math:`w` = ``window``. This
      equals the released code's "window-epoch moving mean minus the previous epoch's
      moving mean, times window", and the paper's "accuracy has not increased by
      :math:`\Delta acc` in the last :math:`n` epochs".
    - ``"windows"``: mean of the last :math:`w` values minus the mean of the :math:`w`
      before them (needs :math:`2w` values).
    - ``"slope"``: least-squares slope over the last :math:`w + 1` values, times :math:`w`.

    Defaults follow the released code: ``warmup = window + 1`` and ``cooldown = window``.
    Every decision that finds ``gain < min_gain`` counts as a cut for the cooldown and is
    recorded in :attr:`decisions`, including one where the lr already sat at ``lr_min``
    (then ``new_lr == old_lr``): the metric gets ``cooldown`` evaluations to respond
    before it is judged again. Decisions that find enough gain are not recorded.

    ``stop_patience=k``: :attr:`should_stop` turns True once the lr sits at ``lr_min``
    and ``k`` further decisions found ``gain < min_gain``.

    A metric that is NaN/inf, ``None`` or not a real number raises ``ValueError`` naming
    the value and the evaluation (step-call) index. With ``nan_policy="skip"`` a NaN/inf
    metric is ignored instead (the history does not advance) and its step-call index is
    appended to :attr:`skipped`; ``None`` and non-numbers still raise.

    The lr starts at ``lr_max``; momentum is not driven (``None``).

    >>> p = AccelAT(lr_max=0.1, lr_min=0.001, min_gain=0.01, factor=0.5, window=2)
    >>> [p.step(acc).lr for acc in [0.5, 0.6, 0.7, 0.75, 0.75, 0.75]]
    [0.1, 0.1, 0.1, 0.1, 0.1, 0.05]
    >>> p.decisions
    [Decision(evaluation=5, gain=0.0, old_lr=0.1, new_lr=0.05)]
    """

    needs_metric = True

    def __init__(
        self,
        lr_max: float,
        lr_min: float,
        min_gain: float,
        factor: float,
        window: int,
        cooldown: int | None = None,
        warmup: int | None = None,
        mode: str = "max",
        gain: str = "endpoint",
        stop_patience: int | None = None,
        nan_policy: str = "raise",
    ) -> None:
        self._lr_max = positive("lr_max", lr_max)
        self._lr_min = real("lr_min", lr_min, lo=0.0, lo_open=True, hi=self._lr_max)
        self._min_gain = real("min_gain", min_gain)
        self._factor = real("factor", factor, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        self._window = integer("window", window, lo=1)
        if self._window > MAX_WINDOW:
            raise ValueError(f"window must be an integer in [1, {MAX_WINDOW}], got {window!r}")
        self._cooldown_arg = None if cooldown is None else integer("cooldown", cooldown, lo=0)
        self._warmup_arg = None if warmup is None else integer("warmup", warmup, lo=0)
        self._mode = choice("mode", mode, ("max", "min"))
        self._gain = choice("gain", gain, _GAINS)
        self._stop_patience = (
            None if stop_patience is None else integer("stop_patience", stop_patience, lo=1)
        )
        self._nan_policy = choice("nan_policy", nan_policy, ("raise", "skip"))

        w = self._window
        self._cooldown = w if cooldown is None else self._cooldown_arg
        self._warmup = w + 1 if warmup is None else self._warmup_arg
        self._sign = 1.0 if self._mode == "max" else -1.0
        # How many values the gain reads, and the first index at which it can be computed.
        self._needed = 2 * w if self._gain == "windows" else w + 1
        self._first_decision = max(self._warmup, self._needed - 1)
        # "windows" and "slope" are weighted sums of the history, g = sum(c_i * a_i), with the
        # sign and the factor w folded into the weights once.
        if self._gain == "windows":
            self._weights = (-self._sign / w,) * w + (self._sign / w,) * w
        elif self._gain == "slope":
            # Least squares slope = sum((i - w/2) * y_i) / sum_j (j - w/2)^2 over i = 0..w.
            sxx = sum((i - w / 2) ** 2 for i in range(w + 1))
            self._weights = tuple(self._sign * w * (i - w / 2) / sxx for i in range(w + 1))
        self._state = AccelATState(lr=self._lr_max, history=deque(maxlen=self._needed))
        self._sync()

    # -- the hot path -------------------------------------------------------------
    def step(self, metric: float | None = None) -> Hyper:
        """Feed the metric of the evaluation just finished; return the lr for the next epoch."""
        # Finite floats take the fast path: x - x is 0.0 for them and NaN for NaN/inf.
        if metric.__class__ is not float or metric - metric != 0.0:  # type: ignore[operator]
            metric = self._admit(metric)
            if metric is None:
                return self._hyper
        s = self._state
        s.history.append(metric)
        e = s.evaluations
        s.evaluations = e + 1
        if e < self._next_decision:
            return self._hyper
        h = s.history
        if self._gain == "endpoint":
            g = self._sign * (h[-1] - h[0])
        else:
            g = sum(map(mul, self._weights, h))
        if g >= self._min_gain:
            return self._hyper
        old = s.lr
        new = old * self._factor
        if new < self._lr_min:
            new = self._lr_min
        if old == self._lr_min:
            s.below_min += 1
        s.lr = new
        s.last_drop = e
        s.decisions.append(Decision(e, g, old, new))
        self._sync()
        return self._hyper

    def _admit(self, metric: Any) -> float | None:
        """The slow path of ``step``: convert a metric, or raise / skip a bad one."""
        s = self._state
        call = s.evaluations + len(s.skipped)
        if metric is None or isinstance(metric, bool) or not isinstance(metric, numbers.Real):
            raise ValueError(
                f"AccelAT needs a real-number metric at every step, got {metric!r} "
                f"at evaluation {call}"
            )
        try:
            value = float(metric)
        except OverflowError:  # an int beyond float range is as unusable as inf
            value = math.inf
        if math.isfinite(value):
            return value
        if self._nan_policy == "skip":
            s.skipped.append(call)
            return None
        raise ValueError(
            f"metric must be finite, got {metric!r} at evaluation {call} "
            "(pass nan_policy='skip' to ignore such evaluations)"
        )

    def _sync(self) -> None:
        """Refresh the values derived from the state (emitted hyper, next decision index)."""
        s = self._state
        self._hyper = Hyper(s.lr, None)
        after_cut = -1 if s.last_drop is None else s.last_drop + self._cooldown
        self._next_decision = max(self._first_decision, after_cut)

    # -- public views of the state ----------------------------------------------------
    @property
    def should_stop(self) -> bool:
        """True once ``stop_patience`` cut decisions found no gain with the lr at ``lr_min``."""
        return self._stop_patience is not None and self._state.below_min >= self._stop_patience

    @property
    def decisions(self) -> list[Decision]:
        """The cut decisions so far (a copy), oldest first."""
        return list(self._state.decisions)

    @property
    def skipped(self) -> list[int]:
        """Step-call indices whose NaN/inf metric was ignored (``nan_policy="skip"``)."""
        return list(self._state.skipped)

    @property
    def evaluations(self) -> int:
        """How many metrics have been accepted so far."""
        return self._state.evaluations

    # -- description and state ---------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            "lr_max": self._lr_max,
            "lr_min": self._lr_min,
            "min_gain": self._min_gain,
            "factor": self._factor,
            "window": self._window,
            "cooldown": self._cooldown_arg,
            "warmup": self._warmup_arg,
            "mode": self._mode,
            "gain": self._gain,
            "stop_patience": self._stop_patience,
            "nan_policy": self._nan_policy,
        }

    def _get_state(self) -> dict[str, Any]:
        s = self._state
        return {
            "lr": s.lr,
            "history": list(s.history),
            "evaluations": s.evaluations,
            "last_drop": s.last_drop,
            "below_min": s.below_min,
            "skipped": list(s.skipped),
            "decisions": [list(d) for d in s.decisions],
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        expect_keys(
            "state",
            state,
            required={
                "lr",
                "history",
                "evaluations",
                "last_drop",
                "below_min",
                "skipped",
                "decisions",
            },
        )
        lr = _state_real("lr", state["lr"])
        if not self._lr_min <= lr <= self._lr_max:
            raise ValueError(
                f"state['lr'] must be in [lr_min, lr_max] = [{self._lr_min}, {self._lr_max}], "
                f"got {lr!r}"
            )
        evaluations = _state_int("evaluations", state["evaluations"], lo=0)
        history = state["history"]
        if not isinstance(history, list):
            raise ValueError(f"state['history'] must be a list, got {history!r}")
        history = [_state_real("history[]", v, finite=True) for v in history]
        if len(history) != min(evaluations, self._needed):
            raise ValueError(
                f"state['history'] must hold min(evaluations, {self._needed}) = "
                f"{min(evaluations, self._needed)} values, got {len(history)}"
            )
        last_drop = state["last_drop"]
        if last_drop is not None:
            last_drop = _state_int("last_drop", last_drop, lo=0)
            if last_drop >= evaluations:
                raise ValueError(
                    f"state['last_drop'] must be < evaluations ({evaluations}), got {last_drop}"
                )
        below_min = _state_int("below_min", state["below_min"], lo=0)
        skipped = state["skipped"]
        if not isinstance(skipped, list):
            raise ValueError(f"state['skipped'] must be a list, got {skipped!r}")
        skipped = [_state_int("skipped[]", i, lo=0) for i in skipped]
        decisions = state["decisions"]
        if not isinstance(decisions, list):
            raise ValueError(f"state['decisions'] must be a list, got {decisions!r}")
        parsed = []
        for d in decisions:
            if not isinstance(d, list) or len(d) != 4:
                raise ValueError(f"state['decisions'] entries must be 4-lists, got {d!r}")
            parsed.append(
                Decision(
                    _state_int("decisions[][0]", d[0], lo=0),
                    _state_real("decisions[][1]", d[1]),
                    _state_real("decisions[][2]", d[2]),
                    _state_real("decisions[][3]", d[3]),
                )
            )
        if (last_drop is None) != (not parsed) or (parsed and parsed[-1].evaluation != last_drop):
            raise ValueError(
                f"state['last_drop'] ({last_drop!r}) must be the last decision's evaluation"
            )
        if below_min > len(parsed):
            raise ValueError(
                f"state['below_min'] ({below_min}) cannot exceed the number of decisions"
            )
        self._state = AccelATState(
            lr=lr,
            history=deque(history, maxlen=self._needed),
            evaluations=evaluations,
            last_drop=last_drop,
            below_min=below_min,
            skipped=skipped,
            decisions=parsed,
        )
        self._sync()


def _state_real(name: str, value: Any, *, finite: bool = False) -> float:
    v = math.nan
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        try:
            v = float(value)
        except OverflowError:
            v = math.nan
    if math.isnan(v) or (finite and math.isinf(v)):
        kind = "finite number" if finite else "number"
        raise ValueError(f"state['{name}'] must be a {kind}, got {value!r}")
    return v


def _state_int(name: str, value: Any, *, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"state['{name}'] must be an integer >= {lo}, got {value!r}")
    return value
