"""The one rule for evaluating a fixed-shape policy inside a compiled step: a table.

``value(step) = table[min(step, n - 1)]`` with ``table[t] = policy.at(t)`` for
``t = 0 .. n - 1`` and ``n = steps + 1``. A framework looks the step up in the table
(after rounding it to float32), so an in-graph schedule holds no formula of its own and
cannot drift from ``at(t)``: ``accelat_keras.PolicySchedule`` and
``accelat_optax.schedule`` / ``momentum_schedule`` read the same table.

>>> from accelat_core import Constant
>>> tabulate(Constant(0.1), owner="PolicySchedule").lrs
[0.1]
"""

from __future__ import annotations

import math
from typing import NamedTuple

from accelat_core.policy import Policy, Schedule

#: Largest table accepted (4 bytes per step and value): a bigger one is almost surely a mistake.
MAX_TABLE_STEPS = 50_000_000


class Table(NamedTuple):
    """``policy.at(t)`` for ``t = 0 .. steps``, one list per field.

    ``momenta[t]`` is ``None`` where the policy drives no momentum at ``t``.
    """

    steps: int
    lrs: list[float]
    momenta: list[float | None]

    def drives_momentum(self) -> bool:
        """True when the policy emits a momentum at any tabulated step."""
        return any(m is not None for m in self.momenta)

    def first_without_momentum(self) -> int | None:
        """The first ``t`` whose momentum is ``None``, or ``None`` if every ``t`` has one."""
        return next((t for t, m in enumerate(self.momenta) if m is None), None)


def tabulate(policy: Policy, steps: int | None = None, *, owner: str) -> Table:
    """Tabulate ``policy.at(t)`` for ``t = 0 .. steps``; past ``steps`` the value holds.

    Args:
        policy: a fixed-shape policy (an ``accelat_core.Schedule``); only read, never stepped.
        steps: the last step tabulated. Defaults to ``policy.horizon`` and is required when
            the policy has none (an unending shape such as a cycle).
        owner: the caller's name for the errors (``"PolicySchedule"``).

    Raises ``TypeError`` for a policy that is not a ``Schedule``, ``ValueError`` for a
    missing or out-of-range ``steps`` and for a non-finite or negative lr.

    >>> from accelat_core import StepDecay
    >>> tabulate(StepDecay(0.1, milestones=[2], factor=0.5), steps=3, owner="x").lrs
    [0.1, 0.1, 0.05, 0.05]
    """
    if not isinstance(policy, Schedule):
        raise TypeError(
            f"{owner} needs a fixed-shape policy (an accelat_core.Schedule), got "
            f"{policy!r} ({type(policy).__name__})"
        )
    if steps is None:
        steps = policy.horizon
        if steps is None:
            raise ValueError(
                f"{policy.policy_name} has no horizon (its shape never ends), so "
                f"{owner} needs steps=<number of optimizer updates to tabulate>"
            )
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps < MAX_TABLE_STEPS:
        raise ValueError(f"steps must be an integer in [0, {MAX_TABLE_STEPS}), got {steps!r}")
    lrs: list[float] = []
    momenta: list[float | None] = []
    for t in range(steps + 1):
        lr, momentum = policy.at(t)
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"{policy!r} emitted lr={lr!r} at t={t}")
        lrs.append(lr)
        momenta.append(momentum)
    return Table(steps, lrs, momenta)
