"""Annealing with warm restarts (SGDR, Loshchilov & Hutter) and its linear / trapezoid kin."""

from __future__ import annotations

import math
from math import cos, pi
from typing import Any

from accelat_core._validate import choice, lr_range, positive, real
from accelat_core.config import register
from accelat_core.hyper import Hyper, new_hyper
from accelat_core.policy import Schedule


@register
class WarmRestarts(Schedule):
    """Anneal from a peak to ``lr_min`` over each period, then restart at a (lower) peak.

    ``t`` counts steps of the caller's clock. Restart ``i`` (from 0) starts at
    ``S_i = period * (period_mult ** i - 1) / (period_mult - 1)`` (``period * i`` when
    ``period_mult == 1``) and lasts ``T_i = period * period_mult ** i`` steps, a continuous
    clock, so ``period`` (>= 1) and ``period_mult`` (in [1, 1000]) may be fractional. With
    ``f = (t - S_i) / T_i`` in [0, 1) (computed on the clock in periods, ``t / period``,
    as Keras does, so that a restart due at a step lands on it):

        lr(t) = lr_min + (lr_max - lr_min) * peak_decay ** i * shape(f)

    where ``shape(f)`` is ``(1 + cos(pi f)) / 2`` (``"cosine"``), ``1 - f`` (``"linear"``)
    or ``min(1, 2 (1 - f))`` (``"trapezoid"``: the peak held for the first half of each
    period, then a linear ramp down to ``lr_min`` over the second half). The shape never
    ends (``horizon`` is None) and drives no momentum.

    ``lr_min`` may be 0 (SGDR's usual floor): this is the one policy that can emit a zero
    learning rate, and then only at ``lr_min = 0``.

    Equivalences (cosine shape): torch's ``CosineAnnealingWarmRestarts(T_0=period,
    T_mult=period_mult, eta_min=lr_min)`` with base lr ``lr_max``, for integer
    ``period`` / ``period_mult`` and ``peak_decay = 1``; Keras' ``CosineDecayRestarts(
    initial_learning_rate=lr_max, first_decay_steps=period, t_mul=period_mult,
    m_mul=peak_decay, alpha=lr_min / lr_max)``: Keras' ``m_mul`` scales only the
    ``(1 - alpha)`` part, i.e. the amplitude ``lr_max - lr_min``, as ``peak_decay`` (in
    (0, 1]) does. Keras finds the restart with a logarithm that can land one restart early
    exactly at a restart step (``period=1, t_mul=3`` at step 1); here, as in torch, the
    restart happens at its step.

    Args:
        lr_max: the first period's peak, torch's base lr (> 0).
        period: the first period's length, torch's ``T_0`` (>= 1; may be fractional), in
            the caller's unit (batches or epochs).
        lr_min: the floor each period falls to, torch's ``eta_min`` (>= 0, <= ``lr_max``;
            default 0).
        period_mult: each period's length over the one before, torch's ``T_mult``, in
            [1, 1000] (default 1: equal periods).
        peak_decay: each restart's amplitude ``lr_max - lr_min`` over the one before, Keras'
            ``m_mul``, in (0, 1] (default 1: every peak at ``lr_max``).
        shape: ``"cosine"`` (default), ``"linear"`` or ``"trapezoid"``: the fall within a
            period.

    >>> round(WarmRestarts(0.1, period=10, lr_min=0.01, shape="linear").at(15).lr, 12)
    0.055
    """

    def __init__(
        self,
        lr_max: float,
        period: float,
        lr_min: float = 0.0,
        period_mult: float = 1.0,
        peak_decay: float = 1.0,
        shape: str = "cosine",
    ) -> None:
        self._lr_max = positive("lr_max", lr_max)
        self._period = real("period", period, lo=1.0)
        self._lr_min = real("lr_min", lr_min, lo=0.0)
        lr_range("lr_min", self._lr_min, "lr_max", self._lr_max)
        # Bounded so that no restart start reachable from an int64 step overflows a float.
        self._period_mult = real("period_mult", period_mult, lo=1.0, hi=1000.0)
        self._peak_decay = real("peak_decay", peak_decay, lo=0.0, hi=1.0, lo_open=True)
        self._shape = choice("shape", shape, ("cosine", "linear", "trapezoid"))
        self._shape_id = ("cosine", "linear", "trapezoid").index(self._shape)
        self._amplitude = self._lr_max - self._lr_min
        self._log_mult = math.log(self._period_mult)
        self._geometric = self._period_mult != 1.0
        # The restart that ``at`` saw last, in units of ``period`` (start, end, length,
        # amplitude): consecutive steps nearly always fall in it, which spares the
        # logarithm and the powers.
        self._cycle_cache = (0.0, 0.0, 1.0, 0.0)
        super().__init__()

    def _cycle_start(self, i: int) -> float:
        """``S_i / period``: exact for integer ``period_mult``, and 1.0 for ``i = 1``."""
        if not self._geometric:
            return float(i)
        m = self._period_mult
        return (m**i - 1) / (m - 1)

    def _enter_cycle(self, u: float) -> tuple[float, float, float, float]:
        """Find and cache the restart ``i`` with ``S_i <= u * period < S_(i+1)``."""
        if self._geometric:
            m = self._period_mult
            i = int(math.log1p(u * (m - 1)) / self._log_mult)
            # The logarithm can land one off at a restart boundary; settle it exactly.
            while self._cycle_start(i + 1) <= u:
                i += 1
            while i > 0 and self._cycle_start(i) > u:
                i -= 1
        else:
            i = int(u)
        cache = (
            self._cycle_start(i),
            self._cycle_start(i + 1),
            self._period_mult**i,
            self._amplitude * self._peak_decay**i,
        )
        self._cycle_cache = cache
        return cache

    def at(self, t: int) -> Hyper:
        # The clock in periods, rounded once as Keras does, so that a restart due at a
        # step lands on it (period 1.1: restart 10 at step 11, although 11 // 1.1 == 9.0).
        u = t / self._period
        start, end, length, amplitude = self._cycle_cache
        if not start <= u < end:
            start, end, length, amplitude = self._enter_cycle(u)
        f = (u - start) / length
        shape = self._shape_id
        if shape == 0:
            # (1 + cos) / 2 as torch writes it, so the floats agree.
            lr = self._lr_min + amplitude * (1 + cos(pi * f)) / 2
        elif shape == 1:
            # Rounding in (u - start) / length can put f an ulp past 1 on a fractional
            # clock; the clamps keep the line from dipping below lr_min (below 0 at 0).
            x = 1.0 - f
            lr = self._lr_min + amplitude * (x if x > 0.0 else 0.0)
        else:
            x = 2.0 * (1.0 - f)
            lr = self._lr_min + amplitude * (1.0 if x >= 1.0 else x if x > 0.0 else 0.0)
        return new_hyper(Hyper, (lr, None))

    def get_config(self) -> dict[str, Any]:
        return {
            "lr_max": self._lr_max,
            "period": self._period,
            "lr_min": self._lr_min,
            "period_mult": self._period_mult,
            "peak_decay": self._peak_decay,
            "shape": self._shape,
        }
