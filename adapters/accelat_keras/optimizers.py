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

    ``m = momentum * m - learning_rate * g``; ``w += m`` (Nesterov: ``w += momentum * m -
    learning_rate * g``), Keras' rule. The momentum buffers are always created (even when
    ``momentum=0`` at the start), because a schedule may raise it later.

    Args:
        learning_rate: a float (default 0.01; ``PolicyCallback`` needs one, which it
            overwrites) or a ``LearningRateSchedule`` such as ``PolicySchedule``.
        momentum: in [0, 1] (default 0.0), held in ``momentum_variable``: the value a
            policy's momentum is written to, read by the compiled update at every batch.
        nesterov: ``True`` for Nesterov momentum (default ``False``).
        weight_decay: decoupled weight decay (default ``None``: none).
        {keras_arguments}

    >>> opt = SGD(learning_rate=0.1, momentum=0.9)
    >>> isinstance(opt.momentum, keras.Variable), round(float(opt.momentum), 6)
    (True, 0.9)
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
    """``keras.optimizers.Adam`` with ``beta_1`` (its momentum) held in a variable.

    Keras' Adam update, with the bias correction ``1 - beta_1 ** t`` computed from the
    current ``beta_1``, as PyTorch's Adam does when a scheduler cycles ``betas[0]``.

    Args:
        learning_rate: a float (default 0.001; ``PolicyCallback`` needs one, which it
            overwrites) or a ``LearningRateSchedule`` such as ``PolicySchedule``.
        beta_1: the first moment's decay rate, in [0, 1] (default 0.9), held in
            ``momentum_variable``: the value a policy's momentum is written to.
        beta_2: the second moment's decay rate (default 0.999).
        epsilon: added to the denominator for numerical stability (default 1e-7).
        amsgrad: ``True`` for the AMSGrad variant (default ``False``).
        weight_decay: decoupled weight decay (default ``None``: none).
        {keras_arguments}

    >>> opt = Adam(learning_rate=1e-3, beta_1=0.95)
    >>> isinstance(opt.beta_1, keras.Variable), round(float(opt.beta_1), 6)
    (True, 0.95)
    """

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

    The variable-backed ``beta_1`` comes from :class:`Adam`; the update is Keras' AdamW:
    Adam's, then ``w -= learning_rate * weight_decay * w``.

    Args:
        learning_rate: a float (default 0.001; ``PolicyCallback`` needs one, which it
            overwrites) or a ``LearningRateSchedule`` such as ``PolicySchedule``.
        weight_decay: the decoupled weight decay (default 0.004).
        beta_1: the first moment's decay rate, in [0, 1] (default 0.9), held in
            ``momentum_variable``: the value a policy's momentum is written to.
        beta_2: the second moment's decay rate (default 0.999).
        epsilon: added to the denominator for numerical stability (default 1e-7).
        amsgrad: ``True`` for the AMSGrad variant (default ``False``).
        {keras_arguments}

    >>> opt = AdamW(learning_rate=1e-3, weight_decay=0.01, beta_1=0.85)
    >>> round(float(opt.beta_1), 6), opt.weight_decay
    (0.85, 0.01)
    """


#: The arguments every Keras optimizer takes, written once for the three classes above (Keras'
#: own docstrings share theirs the same way, through ``{{base_optimizer_keyword_args}}``).
_KERAS_ARGUMENTS = """clipnorm: clip each weight's gradient to this norm (default ``None``: no
            clipping).
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]`` (default ``None``).
        global_clipnorm: clip all the gradients together to this global norm (default
            ``None``). At most one of the three clips may be set.
        use_ema: ``True`` to keep an exponential moving average of the weights (default
            ``False``).
        ema_momentum: that average's momentum, in [0, 1] (default 0.99), with ``use_ema``.
        ema_overwrite_frequency: the updates between overwriting the weights with their
            average, with ``use_ema`` (default ``None``: once, at the end of ``fit``).
        loss_scale_factor: a constant the loss is multiplied by and the gradients divided by,
            against underflow in mixed precision (default ``None``).
        gradient_accumulation_steps: update every this many batches (>= 2) with the averaged
            gradients (default ``None``: every batch).
        name: the optimizer's name (default ``None``: from the class's).
        **kwargs: Keras' deprecated ``decay`` (ignored, with a warning); any other is an
            error."""

for _optimizer in (SGD, Adam, AdamW):
    _optimizer.__doc__ = (_optimizer.__doc__ or "").replace("{keras_arguments}", _KERAS_ARGUMENTS)
