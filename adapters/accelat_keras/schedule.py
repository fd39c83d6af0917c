"""``PolicySchedule``: a fixed-shape policy as a Keras ``LearningRateSchedule``.

The schedule is evaluated inside the compiled train step from the optimizer's own
``iterations`` counter, so it needs no callback. It holds no formula of its own: it
tabulates ``policy.at(t).lr`` for ``t = 0 .. n - 1`` once (:func:`accelat_tables.tabulate`,
the table ``accelat_optax.schedule`` reads too), in float32, and looks the step up in that
table (``lr(step) = table[min(step, n - 1)]``), so it cannot drift from ``at(t)``.

>>> import keras, accelat_core, accelat_keras
>>> policy = accelat_core.Constant(0.1)
>>> optimizer = keras.optimizers.SGD(learning_rate=accelat_keras.PolicySchedule(policy))
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

import accelat_core
from accelat_core import Policy, Schedule
from accelat_core.tables import tabulate


@keras.saving.register_keras_serializable(package="accelat")
class PolicySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``lr(step) = policy.at(min(step, n - 1)).lr`` with ``n = steps + 1``, in float32.

    Args:
        policy: a fixed-shape policy (an ``accelat_core.Schedule``) that emits no
            momentum. Metric-driven policies and momentum need :class:`PolicyCallback`.
        steps: the last step tabulated; after it the value holds. Defaults to
            ``policy.horizon`` and is required when the policy has none (an unending
            shape such as a cycle): pass the number of optimizer updates you will run.

    ``step`` is the optimizer's ``iterations``: the number of updates already applied, so
    update ``k`` (from 0) uses ``policy.at(k).lr``, the same value ``PolicyCallback(policy,
    interval="batch")`` would set. The policy object is only read, never stepped.

    >>> lr = PolicySchedule(accelat_core.StepDecay(0.1, milestones=[2], factor=0.5), steps=4)
    >>> [round(float(lr(k)), 6) for k in range(6)]  # k: the optimizer's iterations
    [0.1, 0.1, 0.05, 0.05, 0.05, 0.05]
    """

    def __init__(self, policy: Policy, steps: int | None = None) -> None:
        if not isinstance(policy, Schedule):
            raise TypeError(_not_fixed_shape(policy))
        table = tabulate(policy, steps, owner="PolicySchedule")
        if table.drives_momentum():
            t, momentum = next((t, m) for t, m in enumerate(table.momenta) if m is not None)
            raise ValueError(
                f"{policy!r} schedules momentum (momentum={momentum} at t={t}), "
                "which a LearningRateSchedule cannot carry. Use PolicyCallback(policy, "
                "interval='batch') with accelat_keras.SGD / Adam / AdamW instead, or build "
                "the policy without momentum (e.g. OneCycle(..., momentum=None))."
            )
        self.policy = policy
        self.steps = table.steps
        self._table = np.asarray(table.lrs, dtype="float32")

    def __call__(self, step: Any) -> Any:
        table = ops.convert_to_tensor(self._table)
        # Clamp before narrowing, so a huge step cannot wrap around in int32.
        index = ops.cast(ops.minimum(step, len(self._table) - 1), "int32")
        return ops.take(table, index)

    def get_config(self) -> dict[str, Any]:
        return {"policy": self.policy.to_config(), "steps": self.steps}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PolicySchedule:
        return cls(accelat_core.from_config(config["policy"]), steps=config["steps"])


def _not_fixed_shape(policy: Any) -> str:
    if isinstance(policy, Policy) and policy.needs_metric:
        return (
            f"{policy.policy_name} is metric-driven: its learning rate depends on metrics "
            "that a LearningRateSchedule never sees. Use PolicyCallback(policy, "
            "monitor=...) with an optimizer built with a float learning_rate instead."
        )
    return (
        f"PolicySchedule needs a fixed-shape policy (an accelat_core.Schedule), got "
        f"{policy!r} ({type(policy).__name__}); use PolicyCallback for any other policy"
    )
