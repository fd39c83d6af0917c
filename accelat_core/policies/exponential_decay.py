"""Exponential decay, with Keras' ``ExponentialDecay`` semantics."""

from __future__ import annotations

import sys
from typing import Any

from accelat_core._validate import MAX_STEPS, integer, positive, real
from accelat_core.config import register
from accelat_core.hyper import Hyper, new_hyper
from accelat_core.policy import Schedule

#: The smallest positive normal float: where ``lr * rate**p`` would underflow to 0 the
#: schedule holds this value instead, so it never emits a zero learning rate.
LR_FLOOR = sys.float_info.min


@register
class ExponentialDecay(Schedule):
    """``lr(t) = lr * rate ** (t / decay_steps)``, or ``floor(t / decay_steps)`` if ``staircase``.

    ``t`` counts steps of the caller's clock. ``rate`` is in (0, 1]: a decay, so the value
    stays in (0, lr]; it is floored at the smallest positive normal float (``LR_FLOOR``)
    rather than underflow to 0. Equals ``keras.optimizers.schedules.ExponentialDecay(lr,
    decay_steps, rate, staircase)`` (which, on TensorFlow, returns 0 there instead).

    Args:
        lr: the lr at ``t = 0``, Keras' ``initial_learning_rate`` (> 0).
        rate: the factor applied every ``decay_steps`` steps, Keras' ``decay_rate``, in (0, 1]
            (1: a constant).
        decay_steps: the steps over which the lr falls by ``rate`` (>= 1, default 1), in the
            caller's unit (Keras counts optimizer updates).
        staircase: ``True`` to decay at whole multiples of ``decay_steps`` only (a step
            function); ``False`` (default) decays smoothly.

    >>> ExponentialDecay(0.1, rate=0.5, decay_steps=10).at(20).lr
    0.025
    """

    def __init__(
        self, lr: float, rate: float, decay_steps: int = 1, staircase: bool = False
    ) -> None:
        self._lr = positive("lr", lr)
        self._rate = real("rate", rate, lo=0.0, hi=1.0, lo_open=True)
        self._decay_steps = integer("decay_steps", decay_steps, lo=1, hi=MAX_STEPS)
        if not isinstance(staircase, bool):
            raise TypeError(f"staircase must be a bool, got {staircase!r}")
        self._staircase = staircase
        super().__init__()

    def at(self, t: int) -> Hyper:
        p = t // self._decay_steps if self._staircase else t / self._decay_steps
        v = self._lr * self._rate**p
        return new_hyper(Hyper, (v if v >= LR_FLOOR else LR_FLOOR, None))

    @property
    def horizon(self) -> int | None:
        return 0 if self._rate == 1.0 else None

    def get_config(self) -> dict[str, Any]:
        return {
            "lr": self._lr,
            "rate": self._rate,
            "decay_steps": self._decay_steps,
            "staircase": self._staircase,
        }
