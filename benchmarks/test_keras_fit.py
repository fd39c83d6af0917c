"""Cost of ``PolicyCallback(interval="batch")`` in a Keras ``fit``.

Run: ``pytest benchmarks/test_keras_fit.py --benchmark-only --benchmark-columns=min,median``
(``KERAS_BACKEND`` picks the backend; TensorFlow by default).

``fit`` of a 64-64-10 MLP on scikit-learn's digits (1437 train images, batch 32: 45
batches per epoch) for 5 epochs:

* ``plain``: no callback;
* ``callback_lr_momentum``: ``PolicyCallback(OneCycle(...), interval="batch")`` on
  ``accelat_keras.SGD``: one policy step and two variable assignments per batch;
* ``callback_lr``: the same with ``momentum=None``: one assignment per batch;
* ``schedule``: ``PolicySchedule(OneCycle(..., momentum=None))``, looked up inside the
  compiled step: no per-batch Python work at all.

``test_callback_work_per_batch`` times what the callback adds to one batch (a policy step
and its variable assignments) outside ``fit``, where ``fit``'s run-to-run noise (often
±15 % on two cores) does not drown it.

Target: the callback adds <= 5 % to a batch. Model and optimizer are built and traced once
before timing; each round re-fits the same compiled model. On a model this small, where a
batch takes ~1.5 ms, the ``schedule`` variant is the way to schedule the lr per batch at
no cost.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import accelat_keras
from accelat_core import OneCycle

EPOCHS = 5
BATCH = 32


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32")[:1437], y.astype("int64")[:1437]


def _model(learning_rate) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(
        optimizer=accelat_keras.SGD(learning_rate=learning_rate, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


VARIANTS = ["plain", "callback_lr_momentum", "callback_lr", "schedule"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_fit_five_epochs(benchmark, digits, variant):
    x, y = digits
    steps = EPOCHS * int(np.ceil(len(x) / BATCH))
    learning_rate = 0.05
    if variant == "schedule":
        learning_rate = accelat_keras.PolicySchedule(OneCycle(0.1, steps, momentum=None))
    model = _model(learning_rate)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # trace the train step

    def callbacks():
        if not variant.startswith("callback"):
            return []
        momentum = (0.85, 0.95) if variant == "callback_lr_momentum" else None
        policy = OneCycle(0.1, total_steps=steps, momentum=momentum)
        return [accelat_keras.PolicyCallback(policy, interval="batch")]

    history = benchmark.pedantic(
        lambda: model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=callbacks()),
        rounds=21,
        warmup_rounds=1,
    )
    assert len(history.history["loss"]) == EPOCHS
    assert ("learning_rate" in history.history) is variant.startswith("callback")


@pytest.mark.parametrize("momentum", [(0.85, 0.95), None], ids=["lr_momentum", "lr"])
def test_callback_work_per_batch(benchmark, digits, momentum):
    """What the callback adds to one batch: a policy step and its assignments.

    Timed outside ``fit``, so the figure is free of ``fit``'s own run-to-run noise; divide
    by a batch's time in the ``plain`` variant for the share it adds.
    """
    model = _model(0.05)
    model.fit(*digits, batch_size=BATCH, epochs=1, verbose=0)
    policy = OneCycle(0.1, total_steps=10**9, momentum=momentum)
    callback = accelat_keras.PolicyCallback(policy, interval="batch")
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_train_batch_begin(0)  # from here on, every call takes one step
    benchmark(callback.on_train_batch_begin, 1)
    assert float(model.optimizer.learning_rate) == pytest.approx(policy.at(policy.t - 1).lr)
