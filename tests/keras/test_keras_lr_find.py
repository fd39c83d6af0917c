"""lr_find on Keras: follows RangeTest, stops at divergence, restores everything exactly."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras_helpers import blobs

import accelat_keras
from accelat_core import RangeTest, suggest


def _model(optimizer):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.BatchNormalization(),  # non-trainable state must come back too
            keras.layers.Dense(3),
        ]
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _snapshot(variables):
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def test_restores_model_and_optimizer_variables_bit_for_bit():
    keras.utils.set_random_seed(0)
    model = _model(accelat_keras.SGD(learning_rate=0.05, momentum=0.9))
    x, y = blobs(128)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # non-zero slots and counters
    model_before = _snapshot(model.variables)
    optimizer_before = _snapshot(model.optimizer.variables)
    result = accelat_keras.lr_find(model, x, y, start_lr=1e-4, end_lr=10.0, num_steps=30)
    assert len(result.lrs) >= 5
    for before, after in zip(model_before, _snapshot(model.variables), strict=True):
        np.testing.assert_array_equal(before, after)
    for before, after in zip(optimizer_before, _snapshot(model.optimizer.variables), strict=True):
        np.testing.assert_array_equal(before, after)


def test_lrs_follow_range_test_and_the_test_stops_at_divergence(tmp_path):
    keras.utils.set_random_seed(0)
    model = _model(keras.optimizers.SGD(learning_rate=0.01))
    x, y = blobs(96)
    result = accelat_keras.lr_find(model, x, y, start_lr=1e-3, end_lr=1e4, num_steps=60,
                                   batch_size=16, smooth=0.5)  # fmt: skip
    n = len(result.lrs)
    # an lr of 1e4 on cross-entropy diverges long before the last step
    assert 5 <= n < 60
    policy = RangeTest(1e-3, 1e4, 60)
    assert result.lrs == [policy.at(t).lr for t in range(n)]
    assert len(result.losses) == n and all(np.isfinite(result.losses))
    assert result.suggestion == suggest(result.lrs, result.losses, method="paper", smooth=0.5)
    assert result.plot(tmp_path / "lr.png").stat().st_size > 0


def test_iterable_of_batches_is_accepted_and_cycled():
    keras.utils.set_random_seed(0)
    model = _model(keras.optimizers.SGD(learning_rate=0.01))
    x, y = blobs(32)
    batches = [(x[:16], y[:16]), (x[16:], y[16:])]
    result = accelat_keras.lr_find(model, batches, start_lr=1e-4, end_lr=1e-1, num_steps=8,
                                   method="minimum", smooth=0.0)  # fmt: skip
    assert len(result.lrs) == 8


def test_uncompiled_model_and_scheduled_lr_are_rejected():
    x, y = blobs(16)
    bare = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="needs a compiled model"):
        accelat_keras.lr_find(bare, x, y)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    with pytest.raises(ValueError, match="float learning_rate"):
        accelat_keras.lr_find(_model(keras.optimizers.SGD(learning_rate=schedule)), x, y)
