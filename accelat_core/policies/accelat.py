"""AccelAT: cut the learning rate when the validation metric stops gaining.

The rule of Nikfam et al. (IEEE Access 2022), as in their released code, is a tiny
state machine whose whole state is one dataclass (:class:`AccelATState`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import mul
from typing import Any, NamedTuple

from accelat_core._validate import (
    MAX_STEPS,
    choice,
    integer,
    metric_value,
    positive,
    real,
    saved,
)
from accelat_core.config import register
from accelat_core.hyper import Hyper
from accelat_core.policy import Policy, expect_keys

_GAINS = ("endpoint", "windows", "slope")
#: Windows are counted in evaluations (epochs); a larger one is a units mistake.
MAX_WINDOW = 10_000


class Decision(NamedTuple):
    """One cut decision: at ``evaluation`` the ``gain`` was below ``min_gain``.

    ``new_lr == old_lr`` when the lr was already at ``lr_min`` (the cut was clamped away).
    :class:`~accelat_core.Plateau` records its reductions as these too.
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
    appended to :attr:`skipped`; ``None`` and non-numbers still raise. So is a finite
    metric whose gain overflows (inf or NaN: the values it reads span more than the float
    range): it raises ``ValueError`` naming the evaluation and the values, leaving the
    state as it was, or with ``nan_policy="skip"`` it is skipped like a NaN.

    **A noisy monitor** (opt-in). Write the gain as a weighted sum of the history it
    reads, :math:`g = \sum_i c_i a_i` (``"endpoint"``: :math:`c = \pm(-1, 0, \dots, 0, 1)`).
    Given the standard error of one metric value, either ``noise`` (:math:`\sigma_i =`
    ``noise``, absolute units, >= 0) or ``samples`` (:math:`n` >= 2, for an accuracy in
    [0, 1]: :math:`\sigma_i = \sqrt{p_i (1 - p_i) / n}` with :math:`p_i` the value
    clamped to :math:`[1/n, 1 - 1/n]`), a decision cuts when

    .. math:: g < \text{min\_gain} + z\,\sigma_g, \qquad
        \sigma_g = \sqrt{\textstyle\sum_i c_i^2 \sigma_i^2}

    (``noise``: computed as :math:`\text{noise} \cdot \sqrt{\sum_i c_i^2}`, a constant).
    ``z`` (default 1) is any finite real; a negative one cuts less often than the paper
    rule. With neither ``noise`` nor ``samples``, :math:`\sigma_g = 0` and the rule is
    the paper's, bit for bit; :meth:`threshold` gives the right-hand side.

    >>> q = AccelAT(lr_max=0.1, lr_min=0.001, min_gain=0.01, factor=0.5, window=2, noise=0.01)
    >>> round(q.threshold([0.5, 0.6, 0.7]), 6)  # 0.01 + 1 * 0.01 * sqrt(2)
    0.024142
    >>> [q.step(acc).lr for acc in [0.5, 0.6, 0.7, 0.8, 0.72]]  # last gain 0.02 < 0.0241
    [0.1, 0.1, 0.1, 0.1, 0.05]

    (the paper rule, ``noise=None``, keeps 0.1: 0.02 >= ``min_gain``).

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
        noise: float | None = None,
        samples: int | None = None,
        z: float = 1.0,
    ) -> None:
        self._lr_max = positive("lr_max", lr_max)
        self._lr_min = real("lr_min", lr_min, lo=0.0, lo_open=True, hi=self._lr_max)
        self._min_gain = real("min_gain", min_gain)
        self._factor = real("factor", factor, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        self._window = integer("window", window, lo=1, hi=MAX_WINDOW)
        self._cooldown_arg = (
            None if cooldown is None else integer("cooldown", cooldown, lo=0, hi=MAX_STEPS)
        )
        self._warmup_arg = None if warmup is None else integer("warmup", warmup, lo=0, hi=MAX_STEPS)
        self._mode = choice("mode", mode, ("max", "min"))
        self._gain = choice("gain", gain, _GAINS)
        self._stop_patience = (
            None
            if stop_patience is None
            else integer("stop_patience", stop_patience, lo=1, hi=MAX_STEPS)
        )
        self._nan_policy = choice("nan_policy", nan_policy, ("raise", "skip"))

        w = self._window
        self._cooldown = w if self._cooldown_arg is None else self._cooldown_arg
        self._warmup = w + 1 if self._warmup_arg is None else self._warmup_arg
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
        else:  # "endpoint" is computed as a difference; its weights serve the noise only
            self._weights = (-self._sign,) + (0.0,) * (w - 1) + (self._sign,)
        self._set_noise(noise, samples, z)
        self._state = AccelATState(lr=self._lr_max, history=deque(maxlen=self._needed))
        self._sync()

    def _set_noise(self, noise: Any, samples: Any, z: Any) -> None:
        """Validate the noise options and set the threshold the hot path compares with."""
        self._noise = None if noise is None else real("noise", noise, lo=0.0)
        self._samples = None if samples is None else integer("samples", samples, lo=2, hi=MAX_STEPS)
        self._z = real("z", z)
        if self._noise is not None and self._samples is not None:
            raise ValueError(
                f"give at most one of noise and samples, got noise={noise!r}, samples={samples!r}"
            )
        self._c2 = tuple(c * c for c in self._weights)
        # sigma_g / noise, and an upper bound of sigma_g for samples (every sigma_i <= 1/2).
        norm = math.sqrt(math.fsum(self._c2))
        scale = self._noise if self._noise is not None else 0.5 if self._samples else 0.0
        if not math.isfinite(abs(self._min_gain) + abs(self._z) * scale * norm):
            raise ValueError(
                f"min_gain + z * sigma_g overflows (min_gain={self._min_gain!r}, z={z!r}, "
                f"noise={noise!r}): keep |min_gain| + |z| * noise * {norm:.6g} below 1.8e308"
            )
        if self._samples is not None:
            # Decided per evaluation by _sample_threshold: the hot path's test never passes.
            self._threshold = math.inf
        elif self._noise is not None:
            self._threshold = self._min_gain + self._z * (self._noise * norm)
        else:
            self._threshold = self._min_gain  # the paper's rule, exactly

    # -- the hot path -------------------------------------------------------------
    def step(self, metric: float | None = None) -> Hyper:
        """Feed the metric of the evaluation just finished; return the lr for the next epoch."""
        # Finite floats take the fast path: x - x is 0.0 for them and NaN for NaN/inf.
        if metric.__class__ is not float or metric - metric != 0.0:
            metric = self._admit(metric)
            if metric is None:
                return self._hyper
        s = self._state
        h = s.history
        e = s.evaluations
        if e < self._next_decision:
            h.append(metric)
            s.evaluations = e + 1
            return self._hyper
        oldest = h[0]  # kept to undo the append should the gain overflow
        h.append(metric)
        s.evaluations = e + 1
        if self._gain == "endpoint":
            g = self._sign * (h[-1] - h[0])
        else:
            g = sum(map(mul, self._weights, h))
        if g - g != 0.0:  # inf or NaN: the values span more than the float range
            return self._refuse(g, oldest)
        if g >= self._threshold:
            return self._hyper
        if self._samples is not None and g >= self._sample_threshold(h):
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
        value = metric_value("AccelAT", metric, call)
        if math.isfinite(value):
            return value
        if self._nan_policy == "skip":
            s.skipped.append(call)
            return None
        raise ValueError(
            f"metric must be finite, got {metric!r} at evaluation {call} "
            "(pass nan_policy='skip' to ignore such evaluations)"
        )

    def _refuse(self, gain: float, oldest: float) -> Hyper:
        """Undo the append of a metric whose gain overflowed; then skip it or raise."""
        s = self._state
        h = s.history
        values = list(h)
        h.pop()
        s.evaluations -= 1
        if len(h) < min(s.evaluations, self._needed):
            h.appendleft(oldest)
        call = s.evaluations + len(s.skipped)
        if self._nan_policy == "skip":
            s.skipped.append(call)
            return self._hyper
        raise ValueError(
            f"the gain at evaluation {call} overflows to {gain!r}: the values {values!r} span "
            "more than the float range (pass nan_policy='skip' to ignore such evaluations)"
        )

    def _sample_threshold(self, history: Sequence[float]) -> float:
        """``min_gain + z * sigma_g`` with ``sigma_i**2 = p_i (1 - p_i) / samples``."""
        n = self._samples
        assert n is not None
        lo = 1.0 / n
        hi = 1.0 - lo
        var = 0.0
        for c2, a in zip(self._c2, history, strict=True):
            p = lo if a < lo else hi if a > hi else a
            var += c2 * (p * (1.0 - p))
        return self._min_gain + self._z * math.sqrt(var / n)

    def threshold(self, history: Sequence[float] | None = None) -> float:
        """The gain below which a decision on ``history`` cuts: ``min_gain + z * sigma_g``.

        ``history`` is the gain's input, oldest first (as many values as the gain reads:
        ``window + 1``, or ``2 * window`` for ``"windows"``); by default the current one.
        Without ``noise`` and ``samples`` this is ``min_gain``.
        """
        values = list(self._state.history if history is None else history)
        if len(values) != self._needed:
            raise ValueError(
                f"history must hold the {self._needed} values the gain reads, got {len(values)}"
            )
        if self._samples is None:
            return self._threshold
        return self._sample_threshold([real("history[]", v) for v in values])

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
            # The noise options appear only when given: the paper rule's config is as it was.
            **({} if self._noise is None else {"noise": self._noise}),
            **({} if self._samples is None else {"samples": self._samples}),
            **({} if self._z == 1.0 else {"z": self._z}),
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
        lr = saved(real, "lr", state["lr"])
        if not self._lr_min <= lr <= self._lr_max:
            raise ValueError(
                f"state['lr'] must be in [lr_min, lr_max] = [{self._lr_min}, {self._lr_max}], "
                f"got {lr!r}"
            )
        evaluations = saved(integer, "evaluations", state["evaluations"], lo=0, hi=MAX_STEPS)
        history = state["history"]
        if not isinstance(history, list):
            raise ValueError(f"state['history'] must be a list, got {history!r}")
        history = [saved(real, "history[]", v) for v in history]
        if len(history) != min(evaluations, self._needed):
            raise ValueError(
                f"state['history'] must hold min(evaluations, {self._needed}) = "
                f"{min(evaluations, self._needed)} values, got {len(history)}"
            )
        last_drop = state["last_drop"]
        if last_drop is not None:
            last_drop = saved(integer, "last_drop", last_drop, lo=0)
            if last_drop >= evaluations:
                raise ValueError(
                    f"state['last_drop'] must be < evaluations ({evaluations}), got {last_drop}"
                )
        below_min = saved(integer, "below_min", state["below_min"], lo=0)
        skipped = state["skipped"]
        if not isinstance(skipped, list):
            raise ValueError(f"state['skipped'] must be a list, got {skipped!r}")
        skipped = [saved(integer, "skipped[]", i, lo=0, hi=MAX_STEPS) for i in skipped]
        parsed = saved_decisions(state["decisions"], self._lr_min, self._lr_max)
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


def saved_decisions(
    decisions: Any, lr_min: float, lr_max: float, lr_min_name: str = "lr_min"
) -> list[Decision]:
    """``state['decisions']`` checked and parsed into :class:`Decision` tuples.

    Each is a 4-list whose lrs lie in ``[lr_min, lr_max]`` and never rise (``new_lr <=
    old_lr``); anything else raises ``ValueError`` naming the field and the value (and
    the lower bound as ``lr_min_name``: Plateau calls it ``min_lr``).
    """
    if not isinstance(decisions, list):
        raise ValueError(f"state['decisions'] must be a list, got {decisions!r}")
    parsed = []
    for d in decisions:
        if not isinstance(d, list) or len(d) != 4:
            raise ValueError(f"state['decisions'] entries must be 4-lists, got {d!r}")
        evaluation = saved(integer, "decisions[][0]", d[0], lo=0)
        # A gain saved before gains were bounded may be ±inf: still loadable.
        gain = saved(real, "decisions[][1]", d[1], finite=False)
        old, new = (saved(real, f"decisions[][{i}]", d[i]) for i in (2, 3))
        for i, name, lr in ((2, "old_lr", old), (3, "new_lr", new)):
            if not lr_min <= lr <= lr_max:
                raise ValueError(
                    f"state['decisions[][{i}]'] ({name}) must be in [{lr_min_name}, lr_max] = "
                    f"[{lr_min}, {lr_max}], got {lr!r}"
                )
        if new > old:
            raise ValueError(
                f"state['decisions[][3]'] (new_lr) must be <= the decision's old_lr ({old!r}): "
                f"the lr never rises, got {new!r}"
            )
        parsed.append(Decision(evaluation, gain, old, new))
    return parsed
