"""AccelAT's named rules: the trainer's (:data:`ANYTIME`) and the released code's (:data:`PAPER`).

>>> ANYTIME.anneal, PAPER.window
(0.3, 5)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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

    def arguments(self, lr_max: float) -> dict[str, Any]:
        """The :class:`~accelat_core.AccelAT` keyword arguments of this rule for ``lr_max``."""
        rule = {k: v for k, v in asdict(self).items() if k != "min_lr_ratio"}
        return {"min_lr": lr_max * self.min_lr_ratio, **rule}


#: The trainer's rule, :meth:`AccelAT.anytime`: chosen by ablation on development seeds
#: (docs/benchmarks.md); the trainer's flags take their defaults from it.
ANYTIME = Preset(1 / 8, 0.005, 0.5, window=2, stop_patience=2, z=1.0, anneal=0.3)
#: The released code's rule, :meth:`AccelAT.paper`.
PAPER = Preset(1 / 1000, 0.005, 0.8, window=5)
