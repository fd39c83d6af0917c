"""What a policy emits: the learning rate and, optionally, the momentum for the next unit."""

from __future__ import annotations

from typing import NamedTuple


class Hyper(NamedTuple):
    """Immutable hyperparameters for one unit of training (a batch or an epoch).

    A NamedTuple rather than a frozen dataclass: a policy builds one per ``step()``,
    and tuple construction is several times cheaper (see docs/benchmarks.md).

    ``momentum`` is ``None`` when the policy does not drive momentum; an adapter then
    leaves the optimizer's momentum alone.

    Attributes:
        lr: the learning rate for the unit (>= 0).
        momentum: the momentum for the unit, in [0, 1] (SGD's ``momentum``, Adam's
            ``beta_1`` / optax's ``b1``), or ``None`` (default) when the policy does not drive it.

    >>> Hyper(0.1, 0.9).lr
    0.1
    """

    lr: float
    momentum: float | None = None


#: ``new_hyper(Hyper, (lr, momentum))`` builds a Hyper without NamedTuple's Python-level
#: ``__new__`` (about 130 ns instead of 220 ns here), for the per-step paths whose budget
#: is 1 µs. Arguments are not checked: only policies that computed both values use it.
new_hyper = tuple.__new__
