"""Cyclical learning rates (Smith), step for step the same as torch's ``CyclicLR``."""

from __future__ import annotations

from collections.abc import Sequence
from math import floor
from typing import Any

from accelat_core._validate import (
    MAX_STEPS,
    choice,
    integer,
    lr_range,
    momentum_pair,
    positive,
    real,
)
from accelat_core.config import register
from accelat_core.hyper import Hyper, new_hyper
from accelat_core.policy import Schedule


@register
class Cyclical(Schedule):
    """A triangle between ``lr_min`` and ``lr_max``, repeated for ever.

    ``t`` counts steps of the caller's clock. With ``L = step_size_up + step_size_down``,
    ``r = step_size_up / L``, ``cycle = floor(1 + t / L)`` and ``x = 1 + t / L - cycle``:
    ``h = x / r`` if ``x <= r`` else ``(x - 1) / (r - 1)``, and
    ``lr(t) = lr_min + (lr_max - lr_min) * h * s``, where the scale ``s`` is 1
    (``"triangular"``), ``1 / 2 ** (cycle - 1)`` (``"triangular2"``) or ``gamma ** t``
    (``"exp_range"``; ``gamma`` is ignored by the other modes). Momentum, if driven,
    moves the opposite way: ``high - (high - low) * h * s`` for ``momentum = (low, high)``.

    This is exactly torch's ``CyclicLR(base_lr=lr_min, max_lr=lr_max, step_size_up,
    step_size_down, mode, gamma, cycle_momentum=momentum is not None, base_momentum=low,
    max_momentum=high)``.

    Args:
        lr_min: the bottom of the triangle, torch's ``base_lr`` (> 0, <= ``lr_max``).
        lr_max: its top, torch's ``max_lr`` (> 0).
        step_size_up: the steps from ``lr_min`` up to ``lr_max`` (>= 1), in the caller's unit
            (normally batches: torch's ``CyclicLR`` is stepped once per batch).
        step_size_down: the steps back down (>= 1; default ``None``: ``step_size_up``).
        mode: ``"triangular"`` (default), ``"triangular2"`` (each cycle's height halves) or
            ``"exp_range"`` (the height is scaled by ``gamma ** t``).
        gamma: the per-step scale of ``"exp_range"``, in (0, 1] (default 1.0); ignored by
            the other modes.
        momentum: ``(low, high)``, with 0 <= low <= high <= 1, the momentum cycles between,
            opposite the lr (default ``(0.8, 0.9)``, torch's ``base_momentum`` /
            ``max_momentum``), or ``None`` to leave the optimizer's momentum alone.

    >>> round(Cyclical(0.01, 0.1, step_size_up=10).at(5).lr, 12)
    0.055
    """

    def __init__(
        self,
        lr_min: float,
        lr_max: float,
        step_size_up: int,
        step_size_down: int | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        momentum: Sequence[float] | None = (0.8, 0.9),
    ) -> None:
        self._lr_min = positive("lr_min", lr_min)
        self._lr_max = positive("lr_max", lr_max)
        lr_range("lr_min", self._lr_min, "lr_max", self._lr_max)
        self._step_size_up = integer("step_size_up", step_size_up, lo=1, hi=MAX_STEPS)
        self._step_size_down = (
            None
            if step_size_down is None
            else integer("step_size_down", step_size_down, lo=1, hi=MAX_STEPS)
        )
        self._mode = choice("mode", mode, ("triangular", "triangular2", "exp_range"))
        self._gamma = real("gamma", gamma, lo=0.0, hi=1.0, lo_open=True)
        self._momentum = momentum_pair("momentum", momentum)

        up = float(self._step_size_up)
        down = float(self._step_size_down) if self._step_size_down is not None else up
        self._total_size = up + down
        self._step_ratio = up / self._total_size
        self._lr_height = self._lr_max - self._lr_min
        low, high = self._momentum if self._momentum is not None else (0.0, 0.0)
        self._m_high = high
        self._m_height = high - low
        self._mode_id = ("triangular", "triangular2", "exp_range").index(self._mode)
        self._drives_momentum = self._momentum is not None
        super().__init__()

    def at(self, t: int) -> Hyper:
        # Operation for operation as torch's CyclicLR.get_lr, so the floats agree.
        u = t / self._total_size
        cycle = floor(1 + u)
        x = 1.0 + u - cycle
        r = self._step_ratio
        h = x / r if x <= r else (x - 1) / (r - 1)
        mode = self._mode_id
        # 0.5 ** k is torch's 1 / 2.0 ** k exactly, but underflows to 0 where 2.0 ** k
        # would raise OverflowError (after 1024 cycles).
        s = 1.0 if mode == 0 else 0.5 ** (cycle - 1) if mode == 1 else self._gamma**t
        lr = self._lr_min + self._lr_height * h * s
        m = self._m_high - self._m_height * h * s if self._drives_momentum else None
        return new_hyper(Hyper, (lr, m))

    def get_config(self) -> dict[str, Any]:
        return {
            "lr_min": self._lr_min,
            "lr_max": self._lr_max,
            "step_size_up": self._step_size_up,
            "step_size_down": self._step_size_down,
            "mode": self._mode,
            "gamma": self._gamma,
            "momentum": None if self._momentum is None else list(self._momentum),
        }
