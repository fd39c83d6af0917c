"""Step decay: multiply the learning rate by a factor at fixed milestones."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from accelat_core._validate import MAX_STEPS, integer, positive, real
from accelat_core.config import register
from accelat_core.hyper import Hyper
from accelat_core.policy import Schedule


@register
class StepDecay(Schedule):
    """``lr(t) = lr * factor ** (number of milestones <= t)``, ``t`` in steps of the caller's clock.

    The same trajectory as torch's ``MultiStepLR(milestones, gamma=factor)``: the new value
    applies from the milestone step itself. Keras' ``PiecewiseConstantDecay`` expresses it
    with ``boundaries = [m - 1 for m in milestones]``. Constant after the last milestone.
    ``milestones`` are strictly increasing positive integers (none: a constant);
    ``factor`` is in (0, 1].

    Args:
        lr: the lr before the first milestone (> 0).
        milestones: the steps at which the lr is multiplied by ``factor``: strictly
            increasing integers >= 1, in the caller's unit (torch's ``MultiStepLR`` counts
            epochs); empty for a constant.
        factor: the multiplier at each milestone, torch's ``gamma``, in (0, 1] (default 0.1).

    >>> [StepDecay(0.5, milestones=[10, 20], factor=0.5).at(t).lr for t in (9, 10, 20)]
    [0.5, 0.25, 0.125]
    """

    def __init__(self, lr: float, milestones: Sequence[int], factor: float = 0.1) -> None:
        self._lr = positive("lr", lr)
        self._factor = real("factor", factor, lo=0.0, hi=1.0, lo_open=True)
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
            raise TypeError(
                f"milestones must be a sequence of increasing integers, got {milestones!r}"
            )
        marks = [
            integer(f"milestones[{i}]", m, lo=1, hi=MAX_STEPS) for i, m in enumerate(milestones)
        ]
        for i in range(1, len(marks)):
            if marks[i] <= marks[i - 1]:
                raise ValueError(
                    f"milestones must be strictly increasing, got {list(milestones)!r} "
                    f"(milestones[{i}]={marks[i]} <= milestones[{i - 1}]={marks[i - 1]})"
                )
        self._milestones = marks
        values = [self._lr * self._factor**k for k in range(len(marks) + 1)]
        if values[-1] <= 0.0:
            raise ValueError(
                f"lr * factor ** {len(marks)} underflows to 0 (lr={lr!r}, factor={factor!r}); "
                "use a larger factor or fewer milestones"
            )
        self._values = [Hyper(v, None) for v in values]
        super().__init__()

    @classmethod
    def free_at(cls, lr: float = 0.1, total_steps: int = 80000) -> StepDecay:
        """The Free-AT paper's schedule: ``lr``, ``lr/10`` from 50% and ``lr/100`` from 75%.

        With the defaults: 0.1, then 0.01 from step 40000, then 0.001 from step 60000.

        >>> StepDecay.free_at().get_config()["milestones"]
        [40000, 60000]
        """
        total_steps = integer("total_steps", total_steps, lo=3, hi=MAX_STEPS)
        return cls(lr, milestones=[total_steps // 2, total_steps * 3 // 4], factor=0.1)

    def at(self, t: int) -> Hyper:
        return self._values[bisect_right(self._milestones, t)]

    @property
    def horizon(self) -> int:
        return self._milestones[-1] if self._milestones else 0

    def get_config(self) -> dict[str, Any]:
        return {"lr": self._lr, "milestones": list(self._milestones), "factor": self._factor}
