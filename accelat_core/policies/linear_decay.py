"""Linear interpolation between two learning rates over a fixed number of steps."""

from __future__ import annotations

from typing import Any

from accelat_core._validate import MAX_STEPS, integer, positive
from accelat_core.config import register
from accelat_core.hyper import Hyper, new_hyper
from accelat_core.policy import Schedule


@register
class LinearDecay(Schedule):
    """``lr(t) = lr_start + (lr_end - lr_start) * min(t, total_steps) / total_steps``.

    ``t`` counts steps of the caller's clock; the value holds at ``lr_end`` from
    ``t = total_steps`` on. ``lr_end`` may exceed ``lr_start`` (a linear ramp up). Both
    must be > 0 (a fall to 0 is :class:`~accelat_core.Anneal`'s ``lr_end=0``).

    Args:
        lr_start: the lr at ``t = 0`` (> 0).
        lr_end: the lr from ``t = total_steps`` on (> 0; above ``lr_start`` for a ramp up).
        total_steps: the steps of the line (>= 1), in the caller's unit (batches or epochs).

    >>> LinearDecay(0.1, 0.01, total_steps=10).at(5).lr
    0.055
    """

    def __init__(self, lr_start: float, lr_end: float, total_steps: int) -> None:
        self._lr_start = positive("lr_start", lr_start)
        self._lr_end = positive("lr_end", lr_end)
        self._total_steps = integer("total_steps", total_steps, lo=1, hi=MAX_STEPS)
        self._slope = (self._lr_end - self._lr_start) / self._total_steps
        self._end = Hyper(self._lr_end, None)
        super().__init__()

    def at(self, t: int) -> Hyper:
        if t >= self._total_steps:
            return self._end
        return new_hyper(Hyper, (self._lr_start + self._slope * t, None))

    @property
    def horizon(self) -> int:
        return self._total_steps

    def get_config(self) -> dict[str, Any]:
        return {
            "lr_start": self._lr_start,
            "lr_end": self._lr_end,
            "total_steps": self._total_steps,
        }
