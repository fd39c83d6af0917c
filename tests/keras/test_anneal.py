"""PolicyCallback follows AccelAT's final anneal batch by batch, and across a second fit."""

from __future__ import annotations

import keras
import numpy as np
from keras_helpers import Recorder, one_weight_model, ones

import accelat_keras
from accelat_core import AccelAT, Anneal

STEPS = 5  # batches per epoch


def policy() -> AccelAT:
    # Every decision finds too little gain (min_gain 1e9): a cut at evaluation 1 reaches the
    # floor 0.05, the decision at 2 finds it there and starts an anneal of round(1.0 * 3) = 3
    # epochs, ending after evaluation 5.
    return AccelAT(0.1, min_lr=0.05, min_gain=1e9, factor=0.5, window=1, warmup=0, cooldown=0,
                   mode="min", stop_patience=1, anneal=1.0, anneal_shape="sqrt")  # fmt: skip


def expected_lrs() -> list[float]:
    closed = Anneal(0.05, 3 * STEPS, shape="sqrt")
    per_batch = [0.1] * 2 * STEPS + [0.05] * STEPS + [closed.at(t).lr for t in range(3 * STEPS)]
    return [float(np.float32(v)) for v in per_batch]


def fit(model, callback, epochs: int) -> Recorder:
    recorder = Recorder()
    x, y = ones(STEPS * 2)
    model.fit(x, y, batch_size=2, epochs=epochs, verbose=0, callbacks=[callback, recorder])
    return recorder


def test_the_anneal_moves_every_batch_and_fit_stops_when_it_ends() -> None:
    model = one_weight_model(keras.optimizers.SGD(learning_rate=1.0))
    callback = accelat_keras.PolicyCallback(policy(), monitor="loss", mode="min")
    recorder = fit(model, callback, epochs=20)
    assert recorder.lrs == expected_lrs()
    assert callback.policy.should_stop and len(recorder.epoch_lrs) == 6


def test_a_second_fit_from_the_saved_state_continues_the_anneal_exactly() -> None:
    model = one_weight_model(keras.optimizers.SGD(learning_rate=1.0))
    first = accelat_keras.PolicyCallback(policy(), monitor="loss", mode="min")
    head = fit(model, first, epochs=4).lrs
    second = accelat_keras.PolicyCallback(policy(), monitor="loss", mode="min")
    second.load_state_dict(first.state_dict())
    tail = fit(model, second, epochs=20).lrs
    assert head + tail == expected_lrs()
