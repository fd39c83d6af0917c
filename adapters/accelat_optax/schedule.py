"""A fixed-shape policy as an ``optax.Schedule``: a jit-able lookup in the policy's table.

``schedule(policy)(count) = float32(policy.at(min(count, n - 1)).lr)`` with ``n = steps + 1``:
the table is :func:`accelat_tables.tabulate`'s, the one ``accelat_keras.PolicySchedule``
reads, so the two adapters cannot drift from ``at(t)`` or from each other.
``momentum_schedule`` reads the same table's momentum column.

>>> import optax
>>> from accelat_core import OneCycle
>>> policy = OneCycle(0.1, total_steps=100, momentum=(0.85, 0.95))
>>> optimizer = optax.inject_hyperparams(optax.sgd)(
...     learning_rate=schedule(policy), momentum=momentum_schedule(policy)
... )
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

from accelat_core import Policy, Schedule
from accelat_core.tables import Table, tabulate


def schedule(policy: Policy, steps: int | None = None) -> optax.Schedule:
    """``lr(count) = float32(policy.at(min(count, steps)).lr)``: the policy as an optax schedule.

    Args:
        policy: a fixed-shape policy (an ``accelat_core.Schedule``), only read. Its
            momentum, if any, is left to :func:`momentum_schedule`.
        steps: the last step tabulated; after it the value holds. Defaults to
            ``policy.horizon`` and is required for an unending shape (a cycle): pass the
            number of updates you will run.

    ``count`` is optax's update count (``inject_hyperparams`` passes the number of updates
    already applied), so update ``k`` (from 0) uses ``policy.at(k).lr``.

    >>> from accelat_core import StepDecay
    >>> lr = schedule(StepDecay(0.1, milestones=[2], factor=0.5), steps=4)
    >>> [round(float(lr(k)), 6) for k in range(4)]
    [0.1, 0.1, 0.05, 0.05]
    """
    return _lookup(_table(policy, steps, "schedule").lrs)


def momentum_schedule(policy: Policy, steps: int | None = None) -> optax.Schedule:
    """``momentum(count) = float32(policy.at(min(count, steps)).momentum)``, as :func:`schedule`.

    Pass it as ``momentum`` to ``optax.sgd`` or as ``b1`` to the Adam family, inside
    ``optax.inject_hyperparams``. A policy that emits no momentum at some step is an error.

    Args:
        policy: a fixed-shape policy (an ``accelat_core.Schedule``) that emits a momentum at
            every step (``OneCycle``, ``Cyclical``), only read.
        steps: the last step tabulated; after it the value holds. Defaults to
            ``policy.horizon`` and is required for an unending shape (a cycle): pass the
            number of updates you will run.

    >>> from accelat_core import OneCycle
    >>> mu = momentum_schedule(OneCycle(0.1, total_steps=10, momentum=(0.85, 0.95)))
    >>> round(float(mu(0)), 6), round(float(mu(9)), 6)
    (0.95, 0.95)
    """
    table = _table(policy, steps, "momentum_schedule")
    missing = table.first_without_momentum()
    if missing is not None:
        raise ValueError(
            f"{policy!r} emits no momentum (momentum=None at t={missing}), so there is no "
            "momentum schedule: give the optimizer a fixed momentum, or build the policy "
            "with one (e.g. OneCycle(..., momentum=(0.85, 0.95)))"
        )
    return _lookup(table.momenta)


def _table(policy: Policy, steps: int | None, owner: str) -> Table:
    if isinstance(policy, Policy) and not isinstance(policy, Schedule) and policy.needs_metric:
        raise TypeError(
            f"{policy.policy_name} is metric-driven: its values depend on metrics that an "
            "optax schedule (a function of the step count) never sees. Build the optimizer "
            "with inject_hyperparams and a float learning_rate, and drive it with "
            "accelat_optax.Controller(policy).step(opt_state, metric)."
        )
    return tabulate(policy, steps, owner=f"accelat_optax.{owner}")


def _lookup(values: list[float] | list[float | None]) -> optax.Schedule:
    table = jnp.asarray(np.asarray(values, dtype=np.float32))
    last = len(values) - 1

    def value(count: jnp.ndarray | int) -> jnp.ndarray:
        # Clamp first: past the table the value holds, and a negative count cannot wrap.
        return table[jnp.clip(jnp.asarray(count), 0, last)]

    return value
