"""AccelAT: cut the lr when the monitored metric stops gaining (Nikfam et al. 2022): the
arguments, a state that is one dataclass (:class:`~accelat_core.AccelATState`), one update."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from accelat_core import _validate as v
from accelat_core.config import register
from accelat_core.decisions import Decision
from accelat_core.gains import GAINS, check_threshold, gain_of, gain_weights, threshold, values_read
from accelat_core.hyper import Hyper
from accelat_core.policies.accelat_presets import ANYTIME, PAPER
from accelat_core.policies.accelat_state import (
    AccelATState,
    admit,
    overflow,
    parse_state,
    state_json,
)
from accelat_core.policies.anneal import ANNEAL_SHAPES, annealed_lr
from accelat_core.policy import MetricPolicy

MAX_WINDOW = 10_000  #: windows count evaluations (epochs): a larger one is a units mistake


@register
class AccelAT(MetricPolicy):
    r"""Multiply the lr by ``factor`` whenever the metric gained less than ``min_gain``.

    One ``step(metric)`` per evaluation (normally per epoch); the lr it returns applies to the
    next epoch. A *decision* is taken at the metric :math:`e` when :math:`e \ge` ``warmup``
    and :math:`e - e_\text{last decision} \ge` ``cooldown``; if the gain :math:`g(e)`
    (:mod:`accelat_core.gains`) is below the threshold, it is recorded in :attr:`decisions` and

    .. math:: lr \leftarrow \max(lr \cdot \text{factor}, \text{min\_lr}), \qquad
        \text{threshold} = \text{min\_gain} + z\,\sigma_g

    (:math:`\sigma_g = 0` without ``noise`` and ``samples``: the paper's rule). Once the lr
    sits at ``min_lr`` and ``stop_patience`` more decisions found too little gain,
    :attr:`should_stop` turns true; with ``anneal`` the lr first anneals from there to 0 over
    ``anneal`` times the evaluations so far (:class:`~accelat_core.Anneal`'s closed form, per
    update through :meth:`between`), and then the rule stops.

    Args:
        lr_max: the lr it starts at.
        min_lr: the floor, in (0, lr_max] (default ``lr_max / 1000``; ``lr_min`` is its old
            name).
        min_gain: the gain a window must make (the metric's units).
        factor: the cut, in (0, 1).
        window: :math:`w`, in evaluations: the gain reads :math:`w + 1` values (``2w`` for
            ``gain="windows"``).
        cooldown: evaluations between decisions (default ``window``).
        warmup: the first evaluation that may decide (default ``window + 1``).
        mode: ``"max"`` (accuracy) or ``"min"`` (loss: the gain is the decrease).
        gain: ``"endpoint"`` (:math:`a_e - a_{e-w}`), ``"windows"`` or ``"slope"``.
        stop_patience: decisions at ``min_lr`` after which the rule stops (None: never).
        nan_policy: ``"raise"`` on a NaN/inf metric, or ``"skip"`` it.
        noise: the standard error of one metric value, in its units.
        samples: or the examples one accuracy averages over: :math:`\sigma_i^2 = p_i(1-p_i)/n`.
        z: standard errors of the gain added to ``min_gain``.
        anneal: the anneal's length as a fraction of the evaluations so far (None: no anneal).
        anneal_shape: ``"sqrt"`` (:math:`1 - \sqrt{x}`), ``"linear"`` or ``"cosine"``.
        budget: the most evaluations the run may have: the anneal then starts in time to end
            by the last one, if the rule has not started it before.
        lr_min: ``min_lr``'s old name, deprecated since 0.2 (goes in 0.4).

    >>> p = AccelAT(lr_max=0.1, min_lr=0.001, min_gain=0.01, factor=0.5, window=2)
    >>> [p.step(acc).lr for acc in [0.5, 0.6, 0.7, 0.75, 0.75, 0.75]]
    [0.1, 0.1, 0.1, 0.1, 0.1, 0.05]
    >>> p.decisions
    [Decision(evaluation=5, gain=0.0, old_lr=0.1, new_lr=0.05)]
    """

    _state: AccelATState
    #: Arguments renamed since 0.2: a saved config or state under the old name still loads.
    renamed: ClassVar[dict[str, str]] = {"lr_min": "min_lr"}

    def __init__(
        self, lr_max: float, min_lr: float | None = None, min_gain: float = 0.005,
        factor: float = 0.5, window: int = 2, cooldown: int | None = None,
        warmup: int | None = None, mode: str = "max", gain: str = "endpoint",
        stop_patience: int | None = None, nan_policy: str = "raise", noise: float | None = None,
        samples: int | None = None, z: float = 1.0, anneal: float | None = None,
        anneal_shape: str = "sqrt", budget: int | None = None, *, lr_min: float | None = None,
    ) -> None:  # fmt: skip
        min_lr = v.renamed("AccelAT", "lr_min", lr_min, "min_lr", min_lr)
        self._lr_max = top = v.positive("lr_max", lr_max)
        floor = top / 1000 if min_lr is None else min_lr
        self._min_lr = v.real("min_lr", floor, lo=0.0, lo_open=True, hi=top)
        self._min_gain = v.real("min_gain", min_gain)
        self._factor = v.real("factor", factor, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        self._window = w = v.integer("window", window, lo=1, hi=MAX_WINDOW)
        self._cooldown = v.optional(v.integer, "cooldown", cooldown, lo=0, hi=v.MAX_STEPS)
        self._warmup = v.optional(v.integer, "warmup", warmup, lo=0, hi=v.MAX_STEPS)
        self._mode = v.choice("mode", mode, ("max", "min"))
        self._gain = v.choice("gain", gain, GAINS)
        patience = v.optional(v.integer, "stop_patience", stop_patience, lo=1, hi=v.MAX_STEPS)
        self._stop_patience = patience
        self._nan_policy = v.choice("nan_policy", nan_policy, ("raise", "skip"))
        self._noise = v.optional(v.real, "noise", noise, lo=0.0)
        self._samples = v.optional(v.integer, "samples", samples, lo=2, hi=v.MAX_STEPS)
        self._z = v.real("z", z)
        self._anneal = v.optional(v.real, "anneal", anneal, lo=0.0, hi=100.0, lo_open=True)
        self._anneal_shape = v.choice("anneal_shape", anneal_shape, ANNEAL_SHAPES)
        self._budget = v.optional(v.integer, "budget", budget, lo=1, hi=v.MAX_STEPS)
        if noise is not None and samples is not None:
            raise ValueError(f"give at most one of noise and samples, got {noise=!r}, {samples=!r}")
        if anneal is not None and stop_patience is None:
            raise ValueError(f"anneal needs stop_patience (the decisions at min_lr that start "
                             f"it), got {anneal=!r} with stop_patience=None")  # fmt: skip
        sign = 1.0 if mode == "max" else -1.0
        self._needed, self._weights = values_read(gain, w), gain_weights(gain, w, sign)
        self._sign = sign
        check_threshold(self._min_gain, self._z, self._weights, noise=noise, samples=samples)
        self._first_decision = max(w + 1 if warmup is None else warmup, self._needed - 1)
        self._spacing = w if cooldown is None else cooldown
        self._load(AccelATState(lr=top))

    @classmethod
    def paper(cls, lr_max: float, **changes: Any) -> AccelAT:
        """The released code's rule (:data:`PAPER`): ``min_gain=0.005``, ``factor=0.8``,
        ``window=5``, ``min_lr = lr_max / 1000``, no stop, no anneal; ``changes`` override."""
        return cls(lr_max, **{**PAPER.arguments(lr_max), **changes})

    @classmethod
    def anytime(cls, lr_max: float, **changes: Any) -> AccelAT:
        """The trainer's rule (:data:`ANYTIME`), for a run of any length: cuts to
        ``lr_max / 8``, then after 2 more decisions without gain a ``1 - sqrt`` anneal over
        0.3 of the evaluations so far, then stop; ``changes`` override (``budget``, ``samples``)."""
        return cls(lr_max, **{**ANYTIME.arguments(lr_max), **changes})

    # -- the rule --------------------------------------------------------------------------
    def step(self, metric: float | None = None) -> Hyper:
        """Feed the metric of the evaluation just finished; return the lr for the next epoch."""
        fine = type(metric) is float and math.isfinite(metric)
        value = metric if fine else admit(self._state, metric, self._nan_policy)
        if value is None:
            return self._hyper
        s = self._state
        e = s.evaluations
        history = [*s.history, value][-self._needed :]
        if s.anneal_start is None and e >= self._next_decision:
            g = gain_of(self._gain, self._weights, self._sign, history)
            if not math.isfinite(g):  # the values span more than the float range
                overflow(s, g, history, self._nan_policy)
                return self._hyper
            if g < self._threshold(history):
                self._decide(e, g)
        s.history, s.evaluations = history, e + 1
        if s.anneal_start is None and self._anneal is not None:
            self._maybe_anneal(e, self._anneal)
        if s.anneal_start is not None:
            self._hyper = Hyper(self._annealed(e - s.anneal_start, 1))
        return self._hyper

    def _decide(self, e: int, g: float) -> None:
        """A decision that found too little gain: cut the lr, clamped at ``min_lr``."""
        s, floor = self._state, self._min_lr
        if s.lr == floor:
            s.at_floor += 1
        new = max(s.lr * self._factor, floor)
        s.decisions.append(Decision(e, g, s.lr, new))
        s.lr, s.last_drop = new, e
        self._load(s)

    def _threshold(self, values: list[float]) -> float:
        return threshold(self._min_gain, self._z, self._weights, values, self._noise, self._samples)

    def _exhausted(self) -> bool:
        return self._stop_patience is not None and self._state.at_floor >= self._stop_patience

    def threshold(self, history: list[float] | None = None) -> float:
        """``min_gain + z * sigma_g`` for ``history``, the values the gain reads (default: the
        current ones): :func:`accelat_core.gains.threshold`."""
        current = self._state.history if history is None else history
        values = [v.real("history[]", a) for a in current]
        if len(values) != self._needed:
            raise ValueError(
                f"history must hold the {self._needed} values the gain reads, got {len(values)}"
            )
        return self._threshold(values)

    # -- the anneal ----------------------------------------------------------------------
    def between(self, update: int, updates: int) -> Hyper:
        """The lr ``update`` of the ``updates`` weight updates after evaluation ``k`` of the
        anneal: its closed form at ``(k * updates + update) / (length * updates)``."""
        k = self._state.anneal_step()
        if k is None or self.should_stop:
            return self._hyper
        return Hyper(self._annealed(k * updates + update, updates))

    def _maybe_anneal(self, e: int, fraction: float) -> None:
        """Start the anneal after evaluation ``e``, over ``fraction`` of the evaluations so far:
        when the rule is exhausted, or to end within the ``budget`` (cut to what it leaves)."""
        budget = self._budget
        length = max(1, math.floor(fraction * (e + 1) + 0.5))
        left = length if budget is None else budget - (e + 1)
        if left >= 1 and ((budget is not None and left <= length) or self._exhausted()):
            self._state.anneal_start, self._state.anneal_length = e, min(length, left)

    def _annealed(self, t: int, updates: int) -> float:
        """The anneal's lr ``t`` of its ``length * updates`` steps in."""
        total = self._state.anneal_length * updates
        return annealed_lr(self._state.lr, 0.0, self._anneal_shape, t, total)

    @property
    def annealing(self) -> bool:
        """True while the lr anneals (the rule's last phase)."""
        return self._state.anneal_start is not None and not self.should_stop

    @property
    def should_stop(self) -> bool:
        """True once the rule has nothing left to try (and the anneal, if any, has ended)."""
        k = self._state.anneal_step()
        if k is None:
            return self._anneal is None and self._exhausted()
        return k >= self._state.anneal_length

    # -- views, config and state -------------------------------------------------------------
    @property
    def skipped(self) -> list[int]:
        """Step-call indices whose NaN/inf metric was ignored (``nan_policy="skip"``)."""
        return list(self._state.skipped)

    def get_config(self) -> dict[str, Any]:
        """The arguments; the options a rule may leave out (the noise, the anneal and its
        budget) only when given, so that the paper rule's config is as it was."""
        left_out = {"noise": None, "samples": None, "z": 1.0, "anneal": None,
                    "anneal_shape": "sqrt", "budget": None}  # fmt: skip
        names = ("lr_max", "min_lr", "min_gain", "factor", "window", "cooldown", "warmup",
                 "mode", "gain", "stop_patience", "nan_policy", *left_out)  # fmt: skip
        config = {name: getattr(self, f"_{name}") for name in names}
        return {k: x for k, x in config.items() if k not in left_out or x != left_out[k]}

    def _get_state(self) -> dict[str, Any]:
        return state_json(self._state, anneal=self._anneal is not None)

    def _set_state(self, state: dict[str, Any]) -> None:
        anneal = self._anneal is not None
        self._load(parse_state(state, self._min_lr, self._lr_max, self._needed, anneal=anneal))

    def _load(self, state: AccelATState) -> None:
        """Adopt ``state`` and what follows from it: the emitted lr, the next decision."""
        self._state = state
        after = -1 if state.last_drop is None else state.last_drop + self._spacing
        self._next_decision = max(self._first_decision, after)
        k = state.anneal_step()
        self._hyper = Hyper(state.lr if k is None else self._annealed(k, 1))
