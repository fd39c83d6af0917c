"""``PolicyCallback``: drive a Keras optimizer's learning rate (and momentum) from a policy.

>>> import keras, accelat_core, accelat_keras
>>> policy = accelat_core.AccelAT(lr_max=0.1, min_lr=1e-3, min_gain=0.01, factor=0.5, window=2)
>>> callback = accelat_keras.PolicyCallback(policy, monitor="val_accuracy")
>>> model.compile(optimizer=accelat_keras.SGD(momentum=0.9), loss=loss)  # doctest: +SKIP
>>> model.fit(x, y, validation_data=(xv, yv), epochs=30, callbacks=[callback])  # doctest: +SKIP

Per-batch cost: one policy step and one variable assignment for each value that changed
(about 17 microseconds on TensorFlow). For a fixed-shape lr schedule stepped every batch of
a very small model, :class:`accelat_keras.PolicySchedule` does the same inside the compiled
step for free.
"""

from __future__ import annotations

from typing import Any

import keras

import accelat_core
from accelat_core import Hyper, Policy
from accelat_keras.optimizers import VariableMomentum

_INTERVALS = ("epoch", "batch")
_MODES = ("min", "max")


class PolicyCallback(keras.callbacks.Callback):
    """Write ``policy``'s learning rate (and momentum) into ``model.optimizer`` during ``fit``.

    One ``policy.step()`` per unit: an epoch (``interval="epoch"``) or a training batch
    (``interval="batch"``). A metric-driven policy (``policy.needs_metric``, e.g. AccelAT)
    gets ``logs[monitor]`` with each step; validation metrics (``val_*``) exist only at
    the end of an epoch, so pair them with ``interval="epoch"``.

    * At the start of ``fit`` the optimizer gets the policy's current values, and after
      each step the new ones. The policy is never reset: a second ``fit`` continues its
      clock (unlike Keras' ``ReduceLROnPlateau``, which resets on ``on_train_begin``).
    * ``logs["learning_rate"]`` (and ``logs["momentum"]`` when the policy drives it) hold
      the value used during the unit being logged, so ``History``, ``CSVLogger`` and
      ``TensorBoard`` record it; list this callback before the latter two.
    * ``model.stop_training`` is set once ``policy.should_stop`` is true.
    * A momentum needs an optimizer that holds it in a variable: :class:`accelat_keras.SGD`,
      :class:`accelat_keras.Adam` (``beta_1``) or :class:`accelat_keras.AdamW` (also
      inside a ``LossScaleOptimizer``); any other optimizer is an error before training.
    * With ``interval="batch"`` a policy that reads no metric takes the step for batch
      ``b`` when batch ``b + 1`` begins (or the epoch ends): the same values reach the same
      batches, and the callback has no batch-end hook, whose mere presence makes Keras
      convert every batch's logs synchronously instead of in its background thread.
      A callback that reads the lr when a batch begins sees the new value if it is listed
      after this one.
    * The learning rate must be a variable (a float ``learning_rate``): a
      ``LearningRateSchedule``, ``PolicySchedule`` included, is an error.
    * With ``interval="epoch"`` a metric-driven policy whose lr moves within an epoch
      (AccelAT's final anneal, ``anneal=``) is followed batch by batch: when batch ``b``
      begins the optimizer gets ``policy.between(b, steps)``, ``steps`` the batches of an
      epoch (``fit``'s ``steps``, or those of the last epoch).

    Args:
        policy: any ``accelat_core`` policy; it decides every value.
        monitor: the ``logs`` key a metric-driven policy reads (default
            ``"val_accuracy"``); ignored otherwise.
        interval: ``"epoch"`` (default) or ``"batch"``: what one policy step is.
        mode: ``None`` (default) or ``"min"`` / ``"max"``. Only a check: the policy
            decides what counts as an improvement, so a ``mode`` that disagrees with a
            metric-driven policy's own ``mode`` is an error, and ``mode`` with a policy
            that reads no metric is an error too.

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    >>> callback = PolicyCallback(accelat_core.StepDecay(0.1, milestones=[2], factor=0.5))
    >>> history = model.fit(np.zeros((4, 2)), np.zeros(4), epochs=3, callbacks=[callback],
    ...                     verbose=0)
    >>> [round(lr, 6) for lr in history.history["learning_rate"]]  # one step per epoch
    [0.1, 0.1, 0.05]
    """

    def __init__(
        self,
        policy: Policy,
        monitor: str = "val_accuracy",
        interval: str = "epoch",
        mode: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(policy, Policy):
            raise TypeError(
                f"policy must be an accelat_core Policy, got {policy!r} ({type(policy).__name__})"
            )
        if interval not in _INTERVALS:
            raise ValueError(f"interval must be one of {_INTERVALS}, got {interval!r}")
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be a non-empty logs key, got {monitor!r}")
        if mode is not None:
            _check_mode(policy, mode)
        self.policy = policy
        self.monitor = monitor
        self.interval = interval
        self.mode = mode
        # What the optimizer holds now, and what it held during the last finished unit
        # (the values a unit's logs report).
        self._in_use: Hyper = policy.hyper
        self._last_used: Hyper = policy.hyper
        # interval="batch", no metric: a batch ran at _in_use and its step is still due.
        self._step_due = False
        self._batches = 0  # batches begun in this epoch, and in the last whole one
        self._per_epoch = 0
        if interval == "batch" and policy.needs_metric:
            self.on_train_batch_end = self._step_on_batch_end  # needs that batch's logs

    # -- Keras hooks ------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        _check_optimizer(self.model.optimizer, self.policy.hyper)
        self._write(self.policy.hyper, force=True)
        self._step_due = False

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.interval == "batch" and not self.policy.needs_metric:
            if self._step_due:
                self._advance(None, "batch")
            self._step_due = True
        elif self.interval == "epoch" and self.policy.needs_metric:
            self._batches = batch + 1
            steps = (self.params or {}).get("steps") or self._per_epoch
            if steps:
                self._write(self.policy.between(batch, steps))

    def _step_on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._advance(logs, "batch")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.interval == "epoch":
            self._per_epoch = self._batches or self._per_epoch
            self._advance(logs, "epoch")
            return
        if self._step_due:
            self._step_due = False
            self._advance(None, "batch")
        if logs is not None:
            _log(logs, self._last_used)

    # -- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The policy's ``state_dict()`` (the callback holds no other state)."""
        return self.policy.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the policy; ``ValueError`` if ``state_dict`` is from another policy."""
        self.policy.load_state_dict(state_dict)
        self._in_use = self._last_used = self.policy.hyper

    def get_config(self) -> dict[str, Any]:
        return {
            "policy": self.policy.to_config(),
            "monitor": self.monitor,
            "interval": self.interval,
            "mode": self.mode,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PolicyCallback:
        """Rebuild from ``get_config()``: a fresh policy (its state is not in the config)."""
        return cls(**{**config, "policy": accelat_core.from_config(config["policy"])})

    # -- translation ---------------------------------------------------------------------
    def _advance(self, logs: dict[str, Any] | None, unit: str) -> None:
        if self.policy.needs_metric:
            hyper = self.policy.step(self._metric(logs, unit))
        else:
            hyper = self.policy.step()
        self._last_used = self._in_use
        if logs is not None:
            _log(logs, self._last_used)
        self._write(hyper)
        if self.policy.should_stop:
            self.model.stop_training = True

    def _metric(self, logs: dict[str, Any] | None, unit: str) -> float:
        logs = logs or {}
        if self.monitor not in logs:
            hint = ""
            if self.monitor.startswith("val_") and unit == "batch":
                hint = " Validation metrics exist only at epoch end: use interval='epoch'."
            elif self.monitor.startswith("val_"):
                hint = " Pass validation_data (or validation_split) to fit."
            raise ValueError(
                f"PolicyCallback(monitor={self.monitor!r}): {self.policy.policy_name} "
                f"needs this metric at each {unit} end, but logs have only "
                f"{sorted(logs)}.{hint}"
            )
        return float(logs[self.monitor])

    def _write(self, hyper: Hyper, *, force: bool = False) -> None:
        # A variable assignment costs tens of microseconds on TensorFlow: write only what
        # changed since the last write (everything at the start of fit). On JAX, fit carries
        # the variables through the jitted step as state: reading self.model (not
        # self._model) syncs that state into the variables first, so the jitted step reads
        # this write instead of the stale copy overwriting it.
        optimizer = self.model.optimizer
        if force or hyper.lr != self._in_use.lr:
            _assign(optimizer.learning_rate, hyper.lr)
        momentum = hyper.momentum
        if momentum is not None and (force or momentum != self._in_use.momentum):
            holder = _momentum_holder(optimizer)
            if holder is None:
                raise TypeError(_momentum_error(optimizer))
            _assign(holder.momentum_variable, momentum)
        self._in_use = hyper


def _assign(variable: keras.Variable, value: float) -> None:
    # keras.Variable.assign converts and shape-checks in Python (~40-60 us on TensorFlow);
    # a Python float into a float32 scalar needs neither, and the raw op takes ~17 us. A
    # distributed (mirrored) variable takes the long way, which updates every replica.
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        raw = variable.value
        if raw.dtype == tf.float32 and not isinstance(raw, tf.distribute.DistributedValues):
            tf.raw_ops.AssignVariableOp(resource=raw.handle, value=value)
            return
    variable.assign(value)


def _log(logs: dict[str, Any], hyper: Hyper) -> None:
    logs["learning_rate"] = hyper.lr
    if hyper.momentum is not None:
        logs["momentum"] = hyper.momentum


def _check_mode(policy: Policy, mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be None, 'min' or 'max', got {mode!r}")
    if not policy.needs_metric:
        raise ValueError(
            f"mode={mode!r} was given, but {policy.policy_name} reads no metric; drop mode"
        )
    own = policy.get_config().get("mode")
    if own is not None and own != mode:
        raise ValueError(
            f"mode={mode!r} disagrees with the policy's mode={own!r}; the policy decides what "
            f"counts as an improvement: build it with mode={mode!r}, or drop mode here"
        )


def _check_optimizer(optimizer: Any, hyper: Hyper) -> None:
    from accelat_keras.schedule import PolicySchedule

    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, PolicySchedule):
        raise ValueError(
            "the optimizer's learning_rate is already a PolicySchedule, and PolicyCallback "
            "would fight it for the learning rate: use one or the other. Keep PolicySchedule "
            "for a fixed-shape policy evaluated inside the compiled step, or build the "
            "optimizer with a float learning_rate and let PolicyCallback drive it (needed for "
            "a metric-driven policy or a momentum schedule)."
        )
    if not isinstance(optimizer.learning_rate, keras.Variable):
        raise ValueError(
            f"the optimizer's learning_rate is a {type(schedule).__name__}, not a variable, so "
            "PolicyCallback cannot set it. Build the optimizer with a float learning_rate "
            "(e.g. SGD(learning_rate=0.1)); the policy then decides every value."
        )
    if hyper.momentum is not None and _momentum_holder(optimizer) is None:
        raise TypeError(_momentum_error(optimizer))


def _momentum_holder(optimizer: Any) -> VariableMomentum | None:
    """The optimizer holding a momentum variable, looking inside a LossScaleOptimizer."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return inner if isinstance(inner, VariableMomentum) else None


def _momentum_error(optimizer: Any) -> str:
    return (
        f"the policy schedules momentum, but {type(optimizer).__module__}."
        f"{type(optimizer).__name__} keeps its momentum as a Python float baked into the "
        "compiled train step, where a new value never arrives. Use accelat_keras.SGD, "
        "accelat_keras.Adam or accelat_keras.AdamW (same arguments; momentum / beta_1 "
        "held in a variable), or a policy without momentum."
    )
