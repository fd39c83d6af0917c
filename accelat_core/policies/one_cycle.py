"""The 1cycle policy (Smith & Topin), step for step the same as torch's ``OneCycleLR``."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from math import cos, pi
from typing import Any

from accelat_core._validate import MAX_STEPS, choice, integer, momentum_pair, positive, real
from accelat_core.config import register
from accelat_core.hyper import Hyper, new_hyper
from accelat_core.policy import Schedule


@register
class OneCycle(Schedule):
    """Up from ``lr_max / div_factor`` to ``lr_max``, then down to ``initial / final_div_factor``.

    ``t`` counts steps of the caller's clock. With ``initial = lr_max / div_factor`` and
    ``floor = initial / final_div_factor``, the phases end at steps (as in torch)

    * two phases: ``e1 = pct_start * total_steps - 1`` (initial -> lr_max),
      ``e2 = total_steps - 1`` (lr_max -> floor);
    * three phases: ``e1`` as above, ``e2 = 2 * pct_start * total_steps - 2``
      (lr_max -> initial), ``e3 = total_steps - 1`` (initial -> floor);

    and within a phase ``(s, e]`` (``s`` is the previous phase's end, 0 for the first,
    and a step belongs to the first phase whose end it does not pass), ``p = (t - s) / (e - s)``,
    ``lr(t) = anneal(start, end, p)``: ``end + (start - end) / 2 * (cos(pi p) + 1)`` for
    ``anneal="cos"``, ``start + (end - start) * p`` for ``"linear"``. Momentum moves the
    opposite way between ``momentum = (low, high)``: high -> low -> high (three phases:
    high -> low -> high -> high). The value holds from ``t = total_steps - 1`` on, where
    torch would raise. A zero-length phase (``pct_start * total_steps == 1``, where torch
    divides by zero) takes its end value.

    This is torch's ``OneCycleLR(max_lr=lr_max, total_steps, pct_start, anneal_strategy=
    anneal, cycle_momentum=momentum is not None, base_momentum=low, max_momentum=high,
    div_factor, final_div_factor, three_phase)``, operation for operation, except that
    the lr never goes below ``floor`` (torch's linear form can round a few ulps under it).
    ``div_factor`` and ``final_div_factor`` are >= 1; ``pct_start`` is in [0, 1], and
    <= 0.5 with three phases, where torch's phases would overlap and leave
    ``[floor, lr_max]``.

    Args:
        lr_max: the peak lr, torch's ``max_lr`` (> 0).
        total_steps: the steps of the whole cycle (>= 1), in the caller's unit (normally
            batches: torch's ``OneCycleLR`` is stepped once per batch).
        pct_start: the fraction of ``total_steps`` spent rising to ``lr_max``, in [0, 1]
            (in [0, 0.5] with ``three_phase``; default 0.3).
        div_factor: the lr starts at ``initial = lr_max / div_factor`` (>= 1, default 25).
        final_div_factor: the lr ends at ``initial / final_div_factor`` (>= 1, default 1e4).
        three_phase: ``True`` to come back down to ``initial`` symmetrically before the final
            fall to ``floor``; ``False`` (default): two phases.
        anneal: ``"cos"`` (default) or ``"linear"``: the shape of each phase, torch's
            ``anneal_strategy``.
        momentum: ``(low, high)``, with 0 <= low <= high <= 1, the momentum moves between,
            opposite the lr (default ``(0.85, 0.95)``, torch's ``base_momentum`` /
            ``max_momentum``), or ``None`` to leave the optimizer's momentum alone.

    >>> OneCycle(0.1, total_steps=100).at(29).lr
    0.1
    """

    def __init__(
        self,
        lr_max: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        anneal: str = "cos",
        momentum: Sequence[float] | None = (0.85, 0.95),
    ) -> None:
        self._lr_max = positive("lr_max", lr_max)
        self._total_steps = integer("total_steps", total_steps, lo=1, hi=MAX_STEPS)
        if not isinstance(three_phase, bool):
            raise TypeError(f"three_phase must be a bool, got {three_phase!r}")
        self._three_phase = three_phase
        self._pct_start = real("pct_start", pct_start, lo=0.0, hi=0.5 if three_phase else 1.0)
        self._div_factor = real("div_factor", div_factor, lo=1.0)
        self._final_div_factor = real("final_div_factor", final_div_factor, lo=1.0)
        self._anneal = choice("anneal", anneal, ("cos", "linear"))
        self._momentum = momentum_pair("momentum", momentum)

        initial = self._lr_max / self._div_factor
        floor = initial / self._final_div_factor
        if floor <= 0.0:
            raise ValueError(
                f"lr_max / div_factor / final_div_factor underflows to 0 (lr_max={lr_max!r}, "
                f"div_factor={div_factor!r}, final_div_factor={final_div_factor!r})"
            )
        low, high = self._momentum if self._momentum is not None else (0.0, 0.0)
        total = self._total_steps
        phases: list[tuple[float, float, float, float, float]]  # (end, lr0, lr1, m0, m1)
        if three_phase:
            phases = [
                (float(self._pct_start * total) - 1, initial, self._lr_max, high, low),
                (float(2 * self._pct_start * total) - 2, self._lr_max, initial, low, high),
                (total - 1, initial, floor, high, high),
            ]
        else:
            phases = [
                (float(self._pct_start * total) - 1, initial, self._lr_max, high, low),
                (total - 1, self._lr_max, floor, low, high),
            ]
        # Each phase as (start, span, lr0, lr1, m0, m1), its start being the previous phase's
        # end, exactly as torch walks them. ``at`` finds the first phase with t <= end by
        # bisecting the running maximum of the ends (a phase whose end lies before an
        # earlier end is never reached, as in torch's linear scan).
        self._phases: list[tuple[float, float, float, float, float, float]] = []
        self._search_ends: list[float] = []
        start, reach = 0.0, -math.inf
        for end, lr0, lr1, m0, m1 in phases:
            s = start if end != start else end - 1.0  # zero-length: p = 1 at its only step
            self._phases.append((s, end - s, lr0, lr1, m0, m1))
            reach = max(reach, end)
            self._search_ends.append(reach)
            start = end
        self._floor = floor
        self._cos = self._anneal == "cos"
        self._drives_momentum = self._momentum is not None
        # The value at the last step is the formula's; from then on it holds (torch raises).
        self._last = total
        self._final = self.at(total - 1)
        self._last = total - 1
        super().__init__()

    @classmethod
    def paper(cls, lr_max: float, total_steps: int) -> OneCycle:
        """The AccelAT paper's one-cycle: a linear triangle, then a linear tail.

        ``lr_max / 10`` up to ``lr_max`` and back to ``lr_max / 10`` over the first 90% of
        ``total_steps``, then down to ``lr_max / 1000`` over the last 10%; momentum
        0.95 -> 0.85 -> 0.95 over the first 90%, then held at 0.95. It is the three-phase
        ``OneCycle(lr_max, total_steps, pct_start=0.45, div_factor=10, final_div_factor=100,
        three_phase=True, anneal="linear", momentum=(0.85, 0.95))``, so its config is that.

        >>> OneCycle.paper(0.2, total_steps=1000).at(0).lr
        0.02
        """
        return cls(
            lr_max,
            total_steps,
            pct_start=0.45,
            div_factor=10.0,
            final_div_factor=100.0,
            three_phase=True,
            anneal="linear",
            momentum=(0.85, 0.95),
        )

    def at(self, t: int) -> Hyper:
        if t >= self._last:
            return self._final
        # Operation for operation as torch's OneCycleLR.get_lr, so the floats agree.
        start, span, lr0, lr1, m0, m1 = self._phases[bisect_left(self._search_ends, t)]
        pct = (t - start) / span
        if self._cos:
            c = cos(pi * pct) + 1
            lr = lr1 + (lr0 - lr1) / 2.0 * c
            m = m1 + (m0 - m1) / 2.0 * c if self._drives_momentum else None
        else:
            lr = (lr1 - lr0) * pct + lr0
            m = (m1 - m0) * pct + m0 if self._drives_momentum else None
        # torch's forms lose the low digits of a small end value next to a large start one
        # (linear, p = 1 can land ulps below the floor, or at 0): never go below the floor.
        return new_hyper(Hyper, (lr if lr >= self._floor else self._floor, m))

    @property
    def horizon(self) -> int:
        return self._last

    def get_config(self) -> dict[str, Any]:
        return {
            "lr_max": self._lr_max,
            "total_steps": self._total_steps,
            "pct_start": self._pct_start,
            "div_factor": self._div_factor,
            "final_div_factor": self._final_div_factor,
            "three_phase": self._three_phase,
            "anneal": self._anneal,
            "momentum": None if self._momentum is None else list(self._momentum),
        }
