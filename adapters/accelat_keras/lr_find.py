"""The learning-rate range test on a compiled Keras model, leaving model and optimizer untouched.

:func:`lr_find` trains for up to ``num_steps`` batches while ``accelat_core.RangeTest``
raises the lr from ``start_lr`` to ``end_lr``, records ``(lr, loss)`` per batch, stops
when the loss diverges, restores every model and optimizer variable bit for bit, and
returns ``accelat_core.suggest``'s reading of the curve.

>>> result = accelat_keras.lr_find(model, x_train, y_train, batch_size=64)  # doctest: +SKIP
>>> result.suggestion.lr_max, result.suggestion.lr_min  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from accelat_core.finder import LRFindResult, RangeTest, RangeTestLog, cycle_batches


def lr_find(
    model: keras.Model,
    x: Any,
    y: Any = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    *,
    batch_size: int = 32,
    mode: str = "exp",
    method: str = "paper",
    smooth: float = 0.98,
) -> LRFindResult:
    """Run the lr range test on a compiled ``model`` and return the suggested lr range.

    Each of up to ``num_steps`` batches is one ``model.train_on_batch`` at
    ``lr = RangeTest(start_lr, end_lr, num_steps, mode).at(i).lr``, recording that batch's
    loss. ``x`` and ``y`` are arrays, cut into consecutive batches of ``batch_size``
    (cycled when shorter than ``num_steps`` batches); with ``y=None``, ``x`` is any
    iterable of ``(inputs, targets)`` batches (a ``tf.data.Dataset``, a generator), cycled
    by iterating it again.

    The test stops early once the loss is NaN/inf or its debiased exponential average
    (factor ``smooth``) exceeds 4 times the best average so far (while that is positive):
    the same cut :func:`accelat_core.suggest` applies to the curve. Momentum is not
    touched. Afterwards every model variable (weights and non-trainable state) and every
    optimizer variable (slots, iteration counter, learning rate) holds exactly its value
    from before the call; the compiled metrics are reset.

    Args:
        model: a compiled ``keras.Model`` whose optimizer has a float ``learning_rate``.
        x: the inputs (an array), or with ``y=None`` an iterable of ``(inputs, targets)``
            batches, as ``fit`` takes them.
        y: the targets (an array as long as ``x``), or ``None`` (default).
        start_lr: the lr of the first batch (> 0, default 1e-7).
        end_lr: the lr of the last batch (> ``start_lr``, default 10).
        num_steps: the most batches the test trains on (>= 2, default 100).
        batch_size: the batch size with arrays (>= 1, default 32); ignored with ``y=None``.
        mode: ``"exp"`` (default) or ``"linear"``: how the lr grows
            (:class:`accelat_core.RangeTest`).
        method: how :func:`accelat_core.suggest` reads the curve: ``"paper"`` (default),
            ``"minimum"``, ``"steepest"`` or ``"valley"``.
        smooth: the factor of the loss's exponential moving average, in [0, 1) (default
            0.98).

    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int32")
    >>> weights = model.get_weights()
    >>> result = lr_find(model, x, y, num_steps=30, batch_size=8, method="minimum")
    >>> result.suggestion.lr_min < result.suggestion.lr_max, len(result.lrs) <= 30
    (True, True)
    >>> all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))  # restored
    True
    """
    log = RangeTestLog(smooth)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError("lr_find needs a compiled model: call model.compile(optimizer, loss)")
    if not isinstance(optimizer.learning_rate, keras.Variable):
        raise ValueError(
            "lr_find sets the learning rate batch by batch, but this optimizer's learning_rate "
            "is a schedule; compile the model with an optimizer built with a float learning_rate"
        )
    policy = RangeTest(start_lr, end_lr, num_steps, mode)
    batches = _array_batches(x, y, batch_size) if y is not None else cycle_batches(x, name="x")

    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    saved_model = [np.array(v.numpy(), copy=True) for v in model.variables]
    saved_optimizer = [np.array(v.numpy(), copy=True) for v in optimizer.variables]
    try:
        model.reset_metrics()
        for _ in range(num_steps):
            optimizer.learning_rate.assign(policy.lr)
            inputs, targets = next(batches)
            logs = model.train_on_batch(inputs, targets, return_dict=True)
            if not log.add(policy.lr, float(logs["loss"])):
                break
            policy.step()
    finally:
        for variable, value in zip(model.variables, saved_model, strict=True):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, saved_optimizer, strict=True):
            variable.assign(value)
        model.reset_metrics()
    return log.result(method)


def _array_batches(x: Any, y: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
    """Consecutive ``(x, y)`` slices of ``batch_size``, wrapping around at the end."""
    n = len(x)
    if n == 0 or len(y) != n:
        raise ValueError(f"x and y must be non-empty and equally long, got {n} and {len(y)}")
    start = 0
    while True:
        stop = min(start + batch_size, n)
        yield x[start:stop], y[start:stop]
        start = 0 if stop == n else stop
