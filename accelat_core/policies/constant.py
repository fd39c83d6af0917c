"""Constant learning rate."""

from __future__ import annotations

from typing import Any

from accelat_core._validate import positive
from accelat_core.config import register
from accelat_core.hyper import Hyper
from accelat_core.policy import Schedule


@register
class Constant(Schedule):
    """``lr(t) = lr`` for every t.

    Args:
        lr: the learning rate at every step (> 0).

    >>> Constant(0.01).at(1000)
    Hyper(lr=0.01, momentum=None)
    """

    def __init__(self, lr: float) -> None:
        self._lr = positive("lr", lr)
        self._value = Hyper(self._lr, None)
        super().__init__()

    def at(self, t: int) -> Hyper:
        return self._value

    @property
    def horizon(self) -> int:
        return 0

    def get_config(self) -> dict[str, Any]:
        return {"lr": self._lr}
