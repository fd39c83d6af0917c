"""A final anneal: the lr falls from its current value to (near) zero over a fixed span."""

from __future__ import annotations

import math
from typing import Any

from accelat_core._validate import MAX_STEPS, choice, integer, positive, real
from accelat_core.config import register
from accelat_core.hyper import Hyper
from accelat_core.policy import Schedule

#: The anneal's shapes s(x) for the progress x in [0, 1]: each falls from 1 to 0.
ANNEAL_SHAPES = ("linear", "sqrt", "cosine")


def anneal_factor(shape: str, progress: float) -> float:
    """``s(x)``: ``1 - x`` (linear), ``1 - sqrt(x)`` (sqrt), ``(1 + cos(pi x)) / 2`` (cosine),
    for ``x = progress`` clamped to [0, 1].

    >>> anneal_factor("sqrt", 0.25), anneal_factor("cosine", 0.5), anneal_factor("linear", 2)
    (0.5, 0.5, 0.0)
    """
    x = min(max(progress, 0.0), 1.0)
    if shape == "linear":
        return 1.0 - x
    if shape == "sqrt":
        return 1.0 - math.sqrt(x)
    return 0.5 * (1.0 + math.cos(math.pi * x))


def annealed_lr(lr_start: float, lr_end: float, shape: str, t: int, total_steps: int) -> float:
    """The closed form: ``lr_end + (lr_start - lr_end) * s(t / total_steps)``."""
    return lr_end + (lr_start - lr_end) * anneal_factor(shape, t / total_steps)


@register
class Anneal(Schedule):
    r"""Anneal the lr from ``lr_start`` to ``lr_end`` over ``total_steps`` steps.

    .. math:: lr(t) = lr_\text{end} + (lr_\text{start} - lr_\text{end})\,
        s\bigl(\min(t, T) / T\bigr)

    with :math:`T` = ``total_steps`` and :math:`s` the ``shape``: ``"linear"`` :math:`1 - x`,
    ``"sqrt"`` :math:`1 - \sqrt{x}` (the cooldown of warmup-stable-decay schedules,
    Hägele et al. 2024), ``"cosine"`` :math:`(1 + \cos \pi x) / 2`. The value holds at
    ``lr_end`` from ``t = T`` on. This is the shape :class:`~accelat_core.AccelAT` hands
    over to when its rule finds the metric has stopped rising (``anneal=``).

    Args:
        lr_start: the lr at ``t = 0`` (> 0).
        total_steps: :math:`T`, the steps of the anneal (>= 1), in the caller's unit.
        shape: ``"linear"``, ``"sqrt"`` or ``"cosine"``.
        lr_end: the lr it ends at, in ``[0, lr_start]``.

    >>> Anneal(0.1, total_steps=4, shape="sqrt").at(1).lr  # 0.1 * (1 - sqrt(1/4))
    0.05
    >>> [Anneal(0.1, total_steps=2, shape="linear").at(t).lr for t in range(4)]
    [0.1, 0.05, 0.0, 0.0]
    """

    def __init__(
        self, lr_start: float, total_steps: int, shape: str = "sqrt", lr_end: float = 0.0
    ) -> None:
        self._lr_start = positive("lr_start", lr_start)
        self._total_steps = integer("total_steps", total_steps, lo=1, hi=MAX_STEPS)
        self._shape = choice("shape", shape, ANNEAL_SHAPES)
        self._lr_end = real("lr_end", lr_end, lo=0.0, hi=self._lr_start)
        super().__init__()

    def at(self, t: int) -> Hyper:
        return Hyper(annealed_lr(self._lr_start, self._lr_end, self._shape, t, self._total_steps))

    @property
    def horizon(self) -> int:
        return self._total_steps

    def get_config(self) -> dict[str, Any]:
        return {
            "lr_start": self._lr_start,
            "total_steps": self._total_steps,
            "shape": self._shape,
            "lr_end": self._lr_end,
        }
