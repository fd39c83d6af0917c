"""A metric-driven policy's record of its decisions, and the check of a saved one.

>>> Decision(evaluation=5, gain=0.0, old_lr=0.1, new_lr=0.05).new_lr
0.05
"""

from __future__ import annotations

from typing import Any, NamedTuple

from accelat_core._validate import integer, real, saved


class Decision(NamedTuple):
    """One decision that found too little gain: at ``evaluation`` the ``gain`` was below the
    threshold and the lr went from ``old_lr`` to ``new_lr``.

    ``new_lr == old_lr`` when the lr already sat at its floor. :class:`~accelat_core.AccelAT`
    and :class:`~accelat_core.Plateau` record their decisions as these.

    Attributes:
        evaluation: the index of the metric the decision was taken at.
        gain: the gain it found (AccelAT), or the change over the best (Plateau).
        old_lr: the lr before the decision.
        new_lr: the lr after it (``max(old_lr * factor, floor)``).
    """

    evaluation: int
    gain: float
    old_lr: float
    new_lr: float


def saved_decisions(
    decisions: Any, min_lr: float, lr_max: float, min_lr_name: str = "min_lr"
) -> list[Decision]:
    """``state['decisions']`` checked and parsed into :class:`Decision` tuples.

    Each is a 4-list whose lrs lie in ``[min_lr, lr_max]`` and never rise (``new_lr <=
    old_lr``); anything else raises ``ValueError`` naming the field and the value (and the
    lower bound as ``min_lr_name``).
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
            if not min_lr <= lr <= lr_max:
                raise ValueError(
                    f"state['decisions[][{i}]'] ({name}) must be in [{min_lr_name}, lr_max] = "
                    f"[{min_lr}, {lr_max}], got {lr!r}"
                )
        if new > old:
            raise ValueError(
                f"state['decisions[][3]'] (new_lr) must be <= the decision's old_lr ({old!r}): "
                f"the lr never rises, got {new!r}"
            )
        parsed.append(Decision(evaluation, gain, old, new))
    return parsed
