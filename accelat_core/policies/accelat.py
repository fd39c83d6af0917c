"""AccelAT: cut the learning rate when the monitored metric stops gaining (Nikfam et al. 2022).

A small state machine: the constructor's arguments (its config), a state that is one
dataclass (:class:`~accelat_core.AccelATState`) and one update, :meth:`AccelAT.step`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from accelat_core import _validate as v
from accelat_core.config import register
from accelat_core.decisions import Decision
from accelat_core.gains import GAINS, gain_of, gain_weights, noise_sigma, threshold, values_read
from accelat_core.hyper import Hyper
from accelat_core.policies.accelat_state import AccelATState, parse_state, state_json
from accelat_core.policies.anneal import ANNEAL_SHAPES, annealed_lr
from accelat_core.policy import Policy

#: Windows are counted in evaluations (epochs); a larger one is a units mistake.
MAX_WINDOW = 10_000


@dataclass(frozen=True)
class Preset:
    """A named AccelAT rule: its knobs, with the floor as a fraction of ``lr_max``."""

    min_lr_ratio: float
    min_gain: float
    factor: float
    window: int
    stop_patience: int | None = None
    z: float = 1.0
    anneal: float | None = None
    anneal_shape: str = "sqrt"


#: The trainer's rule, :meth:`AccelAT.anytime`: chosen by ablation on development seeds
#: (docs/benchmarks.md); the trainer's flags take their defaults from it.
ANYTIME = Preset(1 / 8, 0.005, 0.5, window=2, stop_patience=2, z=1.0, anneal=0.3)
#: The released code's rule, :meth:`AccelAT.paper`.
PAPER = Preset(1 / 1000, 0.005, 0.8, window=5)


@register
class AccelAT(Policy):
    r"""Multiply the lr by ``factor`` whenever the metric gained less than ``min_gain``.

    One ``step(metric)`` per evaluation (normally per epoch); the lr it returns applies to the
    next epoch. With :math:`e` the index of the metric just given, a *decision* is taken when
    :math:`e \ge` ``warmup`` and :math:`e - e_\text{last decision} \ge` ``cooldown``: if the
    gain :math:`g(e)` (:mod:`accelat_core.gains`) is below the threshold,

    .. math:: lr \leftarrow \max(lr \cdot \text{factor}, \text{min\_lr}), \qquad
        \text{threshold} = \text{min\_gain} + z\,\sigma_g

    and the decision is recorded in :attr:`decisions` (also when the lr already sat at
    ``min_lr``). :math:`\sigma_g = 0` unless ``noise`` or ``samples`` gives each value's
    standard error: without them this is the rule of the paper and its released code.
    Once the lr sits at ``min_lr`` and ``stop_patience`` further decisions found too little
    gain, the rule has nothing left to try: :attr:`should_stop` turns true, or with ``anneal``
    the lr first anneals from its value to 0 over ``anneal`` times the evaluations so far
    (:class:`~accelat_core.Anneal`'s shape; per update through :meth:`between`), then stops.

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

    >>> p = AccelAT(lr_max=0.1, min_lr=0.001, min_gain=0.01, factor=0.5, window=2)
    >>> [p.step(acc).lr for acc in [0.5, 0.6, 0.7, 0.75, 0.75, 0.75]]
    [0.1, 0.1, 0.1, 0.1, 0.1, 0.05]
    >>> p.decisions
    [Decision(evaluation=5, gain=0.0, old_lr=0.1, new_lr=0.05)]
    """

    needs_metric = True

    def __init__(
        self, lr_max: float, min_lr: float | None = None, min_gain: float = 0.005,
        factor: float = 0.5, window: int = 2, cooldown: int | None = None,
        warmup: int | None = None, mode: str = "max", gain: str = "endpoint",
        stop_patience: int | None = None, nan_policy: str = "raise", noise: float | None = None,
        samples: int | None = None, z: float = 1.0, anneal: float | None = None,
        anneal_shape: str = "sqrt", budget: int | None = None, *, lr_min: float | None = None,
    ) -> None:  # fmt: skip
        if lr_min is not None:
            warnings.warn("AccelAT(lr_min=...) is deprecated since 0.3 and goes in 0.4: use "
                          "min_lr", DeprecationWarning, stacklevel=2)  # fmt: skip
            if min_lr is not None:
                raise TypeError("give min_lr or its old name lr_min, not both")
            min_lr = lr_min
        self._lr_max = v.positive("lr_max", lr_max)
        floor = self._lr_max / 1000 if min_lr is None else min_lr
        self._min_lr = v.real("min_lr", floor, lo=0.0, lo_open=True, hi=self._lr_max)
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
        self._sign = 1.0 if mode == "max" else -1.0
        self._needed = values_read(gain, w)
        self._weights = gain_weights(gain, w, self._sign)
        self._first_decision = max(w + 1 if warmup is None else warmup, self._needed - 1)
        self._spacing = w if cooldown is None else cooldown
        norm = noise_sigma(self._weights, 1.0)  # sigma_g / noise; with samples every sigma <= 1/2
        bound = self._noise if self._noise is not None else 0.5 if samples else 0.0
        if not math.isfinite(abs(self._min_gain) + abs(self._z) * bound * norm):
            raise ValueError(
                f"min_gain + z * sigma_g overflows (min_gain={min_gain!r}, {z=!r}, {noise=!r}): "
                f"keep |min_gain| + |z| * noise * {norm:.6g} below 1.8e308"
            )
        self._load(AccelATState(lr=self._lr_max))

    @classmethod
    def paper(cls, lr_max: float, **changes: Any) -> AccelAT:
        """The released code's rule (:data:`PAPER`): ``min_gain=0.005``, ``factor=0.8``,
        ``window=5``, ``min_lr = lr_max / 1000``, no stop, no anneal; ``changes`` override."""
        return cls._preset(PAPER, lr_max, changes)

    @classmethod
    def anytime(cls, lr_max: float, **changes: Any) -> AccelAT:
        """The trainer's rule (:data:`ANYTIME`), for a run of any length: cuts to
        ``lr_max / 8``, then after 2 more decisions without gain a ``1 - sqrt`` anneal over
        0.3 of the evaluations so far, then stop; ``changes`` override (``budget``, ``samples``).

        >>> AccelAT.anytime(0.1, budget=20).get_config()["anneal"]
        0.3
        """
        return cls._preset(ANYTIME, lr_max, changes)

    @classmethod
    def _preset(cls, preset: Preset, lr_max: float, changes: dict[str, Any]) -> AccelAT:
        rule = {k: v for k, v in asdict(preset).items() if k != "min_lr_ratio"}
        return cls(lr_max, **{"min_lr": lr_max * preset.min_lr_ratio, **rule, **changes})

    # -- the rule --------------------------------------------------------------------------
    def step(self, metric: float | None = None) -> Hyper:
        """Feed the metric of the evaluation just finished; return the lr for the next epoch."""
        value = metric if type(metric) is float and math.isfinite(metric) else self._admit(metric)
        if value is None:
            return self._hyper
        s = self._state
        e = s.evaluations
        history = [*s.history, value][-self._needed :]
        if s.anneal_start is None and e >= self._next_decision:
            g = gain_of(self._gain, self._weights, self._sign, history)
            if not math.isfinite(g):  # the values span more than the float range
                return self._refuse(g, history)
            noise, samples = self._noise, self._samples
            t = threshold(
                self._min_gain, self._z, self._weights, history, noise=noise, samples=samples
            )
            if g < t:
                self._decide(e, g)
        s.history, s.evaluations = history, e + 1
        if s.anneal_start is None and self._anneal is not None:
            self._maybe_anneal(e)
        if s.anneal_start is not None:
            self._hyper = Hyper(self._annealed(e - s.anneal_start, 1))
        return self._hyper

    def _decide(self, e: int, g: float) -> None:
        """A decision that found too little gain: cut (clamped at min_lr), maybe anneal."""
        s = self._state
        if s.lr == self._min_lr:
            s.at_floor += 1
        new = max(s.lr * self._factor, self._min_lr)
        s.decisions.append(Decision(e, g, s.lr, new))
        s.lr, s.last_drop = new, e
        self._load(s)

    def _exhausted(self, s: AccelATState) -> bool:
        return self._stop_patience is not None and s.at_floor >= self._stop_patience

    def threshold(self, history: list[float] | None = None) -> float:
        """``min_gain + z * sigma_g`` for ``history``, the values the gain reads (default: the
        current ones): :func:`accelat_core.gains.threshold`."""
        current = self._state.history if history is None else history
        values = [v.real("history[]", a) for a in current]
        if len(values) != self._needed:
            raise ValueError(
                f"history must hold the {self._needed} values the gain reads, got {len(values)}"
            )
        noise, samples = self._noise, self._samples
        return threshold(
            self._min_gain, self._z, self._weights, values, noise=noise, samples=samples
        )

    # -- the anneal ----------------------------------------------------------------------
    def between(self, update: int, updates: int) -> Hyper:
        """The hyperparameters ``update`` weight updates after the newest evaluation, when
        ``updates`` separate two evaluations: during the anneal the closed form at
        ``(k * updates + update) / (length * updates)`` of the way; else :attr:`hyper`."""
        s = self._state
        if s.anneal_start is None or self.should_stop:
            return self._hyper
        k = s.evaluations - 1 - s.anneal_start
        return Hyper(self._annealed(k * updates + update, updates))

    def _maybe_anneal(self, e: int) -> None:
        """Start the anneal after evaluation ``e`` when the rule is exhausted, or when it must
        start now to end within the ``budget``: over ``anneal`` times the evaluations so far,
        cut to the evaluations the budget leaves."""
        assert self._anneal is not None
        length = max(1, math.floor(self._anneal * (e + 1) + 0.5))
        left = length if self._budget is None else self._budget - (e + 1)
        due = self._budget is not None and left <= length
        if left >= 1 and (due or self._exhausted(self._state)):
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
        s = self._state
        if s.anneal_start is None:
            return self._anneal is None and self._exhausted(s)
        return s.evaluations - 1 - s.anneal_start >= s.anneal_length

    # -- bad metrics -------------------------------------------------------------------------
    def _admit(self, metric: Any) -> float | None:
        """A metric that is not a finite float: converted, or skipped (None), or refused."""
        call = self._state.evaluations + len(self._state.skipped)
        value = v.metric_value("AccelAT", metric, call)
        if math.isfinite(value):
            return value
        self._skip_or_refuse(f"metric must be finite, got {metric!r} at evaluation {call}")
        return None

    def _refuse(self, gain: float, values: list[float]) -> Hyper:
        """A finite metric whose gain overflows: skipped, or refused with the state as it was."""
        call = self._state.evaluations + len(self._state.skipped)
        self._skip_or_refuse(f"the gain at evaluation {call} overflows to {gain!r}: the values "
                             f"{values!r} span more than the float range")  # fmt: skip
        return self._hyper

    def _skip_or_refuse(self, problem: str) -> None:
        if self._nan_policy != "skip":
            raise ValueError(f"{problem} (pass nan_policy='skip' to ignore such evaluations)")
        self._state.skipped.append(self._state.evaluations + len(self._state.skipped))

    # -- views, config and state -------------------------------------------------------------
    @property
    def decisions(self) -> list[Decision]:
        """The decisions that found too little gain (a copy), oldest first."""
        return list(self._state.decisions)

    @property
    def skipped(self) -> list[int]:
        """Step-call indices whose NaN/inf metric was ignored (``nan_policy="skip"``)."""
        return list(self._state.skipped)

    @property
    def evaluations(self) -> int:
        """How many metrics have been accepted so far."""
        return self._state.evaluations

    def get_config(self) -> dict[str, Any]:
        optional = {"noise": self._noise, "samples": self._samples, "anneal": self._anneal,
                    "budget": self._budget}  # fmt: skip
        return {
            "lr_max": self._lr_max, "min_lr": self._min_lr, "min_gain": self._min_gain,
            "factor": self._factor, "window": self._window, "cooldown": self._cooldown,
            "warmup": self._warmup, "mode": self._mode, "gain": self._gain,
            "stop_patience": self._stop_patience, "nan_policy": self._nan_policy,
            # Options appear only when given: the paper rule's config is as it was.
            **{key: value for key, value in optional.items() if value is not None},
            **({} if self._z == 1.0 else {"z": self._z}),
            **({} if self._anneal_shape == "sqrt" else {"anneal_shape": self._anneal_shape}),
        }  # fmt: skip

    @staticmethod
    def upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
        """A config saved by 0.2 (``lr_min``) in today's names (``min_lr``)."""
        if "lr_min" in config and "min_lr" not in config:
            config = {("min_lr" if k == "lr_min" else k): x for k, x in config.items()}
        return config

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
        k = None if state.anneal_start is None else state.evaluations - 1 - state.anneal_start
        self._hyper = Hyper(state.lr if k is None else self._annealed(k, 1))
