"""Keras optimizers whose momentum lives in a variable, so a schedule can change it.

Keras' own ``SGD`` keeps ``momentum`` (and ``Adam`` keeps ``beta_1``) as a Python float
that is baked into the traced train step: assigning a new value from a callback either
fails or never reaches the compiled update. These subclasses hold it in a non-trainable
``keras.Variable`` (``optimizer.momentum_variable``) read inside ``update_step``, so a
new value takes effect at the next batch on every backend, with or without
``jit_compile``. Everything else is Keras' own update rule:

* :class:`SGD`: ``m = momentum * m - lr * g``; ``w += m`` (Nesterov:
  ``w += momentum * m - lr * g``).
* :class:`Adam` / :class:`AdamW`: ``beta_1`` is the momentum; the bias correction uses
  the current ``beta_1``, as PyTorch's Adam does when a scheduler cycles ``betas[0]``.

The variable is saved with the optimizer's other variables (``model.save`` restores it).

>>> import accelat_keras
>>> opt = accelat_keras.SGD(learning_rate=0.1, momentum=0.9)
>>> opt.momentum_variable.assign(0.85)  # what PolicyCallback does  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


class VariableMomentum:
    """Mixin: the optimizer's momentum hyperparameter is ``self.momentum_variable``.

    ``PolicyCallback`` writes a policy's momentum into any optimizer that has this mixin.
    """

    momentum_variable: keras.Variable

    def _set_momentum_value(self, name: str, value: Any) -> None:
        # Called by the property setters; Keras' __init__ assigns the float first.
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if "momentum_variable" in self.__dict__:
            self.momentum_variable.assign(value)
            return
        with keras.name_scope(self.name, caller=self):  # type: ignore[attr-defined]
            # Attribute assignment makes the optimizer's tracker record the variable, so it
            # is part of optimizer.variables and saved with the model.
            self.momentum_variable = keras.Variable(
                value,
                name=name,
                dtype=keras.config.floatx(),
                trainable=False,
                aggregation="only_first_replica",
            )


@keras.saving.register_keras_serializable(package="accelat")
class SGD(VariableMomentum, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` with ``momentum`` held in a variable (same arguments).

    The momentum buffers are always created (even when ``momentum=0`` at the start),
    because a schedule may raise it later.
    """

    @property
    def momentum(self) -> keras.Variable:
        return self.momentum_variable

    @momentum.setter
    def momentum(self, value: float) -> None:
        self._set_momentum_value("momentum", value)

    def build(self, variables: list[keras.Variable]) -> None:
        if self.built:
            return
        # Skip keras SGD.build, which creates the buffers only when momentum != 0.
        keras.optimizers.Optimizer.build(self, variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient: Any, variable: keras.Variable, learning_rate: Any) -> None:
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        momentum = ops.cast(self.momentum_variable, variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        step = ops.multiply(gradient, learning_rate)
        self.assign(m, ops.subtract(ops.multiply(m, momentum), step))
        if self.nesterov:
            self.assign_add(variable, ops.subtract(ops.multiply(m, momentum), step))
        else:
            self.assign_add(variable, m)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": float(self.momentum_variable)}


@keras.saving.register_keras_serializable(package="accelat")
class Adam(VariableMomentum, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with ``beta_1`` (its momentum) held in a variable."""

    @property
    def beta_1(self) -> keras.Variable:
        return self.momentum_variable

    @beta_1.setter
    def beta_1(self, value: float) -> None:
        self._set_momentum_value("beta_1", value)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": float(self.momentum_variable)}


@keras.saving.register_keras_serializable(package="accelat")
class AdamW(Adam, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` with ``beta_1`` (its momentum) held in a variable.

    The variable-backed ``beta_1`` comes from :class:`Adam`; the update is Keras' AdamW.
    """
