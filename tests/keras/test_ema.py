"""Keras' weight EMA (``use_ema=True``) with accelat_keras: kept by the variable-momentum
optimizers, and in examples/keras_ema.py beside a PolicyCallback that still drives the lr.

The averages are checked against the EMA recurrence computed here in float64 from the
live weights recorded after each update (the first update copies, then
``e = m * e + (1 - m) * w``), to a float32 rounding bound computed from the values.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import keras
import numpy as np
import pytest
from keras_helpers import Recorder, one_weight_model, ones

import accelat_keras
from accelat_core import OneCycle, from_config

ROOT = Path(__file__).resolve().parents[2]
EPS32 = float(np.finfo(np.float32).eps)


def hand_ema(live: list[list[np.ndarray]], momentum: float) -> list[np.ndarray]:
    ema = [w.astype(np.float64) for w in live[0]]
    for weights in live[1:]:
        ema = [momentum * e + (1 - momentum) * w for e, w in zip(ema, weights, strict=True)]
    return ema


def rounding_bound(live: list[list[np.ndarray]]) -> float:
    """A few float32 ulps of the largest magnitude per update, accumulated."""
    return 4 * len(live) * EPS32 * max(float(np.abs(w).max()) for ws in live for w in ws)


def numpy(variables: list[keras.Variable]) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v).astype(np.float64) for v in variables]


@pytest.mark.parametrize("make", [accelat_keras.SGD, accelat_keras.Adam, accelat_keras.AdamW])
def test_variable_momentum_optimizer_keeps_keras_ema_and_fit_ends_on_the_average(make):
    optimizer = make(learning_rate=0.1, use_ema=True, ema_momentum=0.6)
    config = make.from_config(optimizer.get_config()).get_config()
    assert (config["use_ema"], config["ema_momentum"]) == (True, 0.6)

    model = one_weight_model(optimizer)
    recorder = Recorder()  # the live weight after each update
    policy = OneCycle(0.2, total_steps=8, momentum=(0.5, 0.95))
    callback = accelat_keras.PolicyCallback(policy, interval="batch")
    x, y = ones(8)
    model.fit(
        x, y, batch_size=1, epochs=1, shuffle=False, verbose=0, callbacks=[callback, recorder]
    )

    live = [[np.array(w)] for w in recorder.weights]
    assert recorder.lrs == [
        float(np.float32(policy.at(t).lr)) for t in range(8)
    ]  # a float32 variable
    (average,) = hand_ema(live, 0.6)
    final = keras.ops.convert_to_numpy(model.layers[0].kernel).astype(np.float64)
    # fit swapped the average in at its end (finalize_variable_values)
    np.testing.assert_allclose(final.ravel(), average, rtol=0, atol=rounding_bound(live))
    assert abs(float(average) - recorder.weights[-1]) > 100 * rounding_bound(live)


def load_example(name: str) -> ModuleType:
    qualified = f"accelat_examples_{name}"
    spec = importlib.util.spec_from_file_location(qualified, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules[qualified] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Snapshots(keras.callbacks.Callback):
    """Live weights and EMA averages after the first updates and at each epoch's last
    update, and the weights the model holds while it is evaluated and right after."""

    def __init__(self, first: int) -> None:
        super().__init__()
        self.first = first
        self.live: list[list[np.ndarray]] = []
        self.averages: list[list[np.ndarray]] = []
        self.epoch_end: list[tuple[list[np.ndarray], list[np.ndarray]]] = []
        self.evaluated: list[list[np.ndarray]] = []
        self.after_evaluation: list[list[np.ndarray]] = []
        self.updates = 0

    def _pair(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        # _model_variables_moving_average: where Keras keeps the averages (its own
        # SwapEMAWeights reads them there too)
        optimizer = self.model.optimizer
        return numpy(self.model.trainable_variables), numpy(
            optimizer._model_variables_moving_average
        )

    def on_train_batch_end(self, batch, logs=None):
        self.updates += 1
        if self.updates <= self.first:
            live, averages = self._pair()
            self.live.append(live)
            self.averages.append(averages)
        if batch == self.params["steps"] - 1:
            self.epoch_end.append(self._pair())

    def on_test_begin(self, logs=None):  # after SwapEMAWeights.on_test_begin
        self.evaluated.append(numpy(self.model.trainable_variables))

    def on_test_end(self, logs=None):  # after SwapEMAWeights.on_test_end
        self.after_evaluation.append(numpy(self.model.trainable_variables))


def assert_close_all(got: list[np.ndarray], want: list[np.ndarray], atol: float) -> None:
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=atol)


def swap_bound(live: list[np.ndarray], averages: list[np.ndarray]) -> float:
    """What one additive swap (a += b; b = a - b; a -= b) may move a value: a few ulps."""
    return 4 * EPS32 * max(float(np.abs(w).max()) for w in [*live, *averages])


def max_gap(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


@pytest.mark.skipif(
    bool(os.environ.get("ACCELAT_KERAS_OTHER_BACKEND_RUN")),
    reason="the example is run once, on the main run's backend",
)
def test_keras_ema_example_evaluates_the_average_and_policy_callback_drives_the_lr():
    example = load_example("keras_ema")
    snapshots = Snapshots(first=5)
    run = example.train(epochs=6, horizon_epochs=1.0, callbacks=[snapshots])
    optimizer = run.model.optimizer

    steps = snapshots.params["steps"]
    assert optimizer.use_ema and run.ema_momentum == 1 - 1 / (1.0 * steps) == 1 - 1 / 32
    assert float(optimizer.ema_momentum) == run.ema_momentum
    # the averages are the EMA of the live weights, update by update
    for k in range(snapshots.first):
        live = snapshots.live[: k + 1]
        assert_close_all(
            snapshots.averages[k], hand_ema(live, run.ema_momentum), rounding_bound(live)
        )

    # every evaluation (so every val_accuracy AccelAT read) saw the averages, and training
    # went on from the live weights; SwapEMAWeights swaps by additions on TensorFlow
    assert len(snapshots.evaluated) == len(snapshots.epoch_end) == 6
    for (live, averages), seen, after in zip(
        snapshots.epoch_end, snapshots.evaluated, snapshots.after_evaluation, strict=True
    ):
        swap = swap_bound(live, averages)
        assert_close_all(seen, averages, swap)
        assert_close_all(after, live, swap)
        assert max_gap(live, averages) > 100 * swap

    # PolicyCallback drove the lr from those val_accuracy values, as a fresh AccelAT would
    reference = from_config(run.policy.to_config())
    replay = [reference.step(acc).lr for acc in run.history["val_accuracy"]]
    assert run.history["learning_rate"] == [0.1, *replay[:-1]]
    assert reference.decisions == run.policy.decisions and reference.decisions
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(
        replay[-1], rel=1e-7
    )
    # and fit ended on the average of the last update (swapped twice since: the last
    # evaluation's swap in and out)
    last_live, last_averages = snapshots.epoch_end[-1]
    final = numpy(run.model.trainable_variables)
    swap = swap_bound(last_live, last_averages)
    assert_close_all(final, last_averages, 2 * swap)
    assert max_gap(final, last_live) > 100 * swap
