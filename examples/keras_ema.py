"""Keras' own EMA of the weights (``use_ema=True``) beside AccelAT's ``PolicyCallback``.

    KERAS_BACKEND=tensorflow python examples/keras_ema.py [--horizon-epochs 1]

What Keras 3's EMA does (``keras.optimizers.Optimizer(use_ema=True, ema_momentum=...)``,
which ``accelat_keras.SGD`` / ``Adam`` / ``AdamW`` pass through unchanged):

* After every update the optimizer keeps, per **trainable** variable, ``average =
  ema_momentum * average + (1 - ema_momentum) * variable``; the first update copies.
  Non-trainable variables are not averaged: ``BatchNormalization``'s moving mean and
  variance stay the live model's (unlike torch's ``AveragedModel(use_buffers=True)``).
* The model's variables hold the live weights during ``fit``. The averages replace
  them only (a) in ``optimizer.finalize_variable_values``, which ``fit`` calls once,
  after its last epoch (also after an early stop): the model you hold after ``fit`` is
  the average, and the live weights are gone; or (b) every ``ema_overwrite_frequency``
  updates if that is set, which restarts training from the average (left unset here).
* So the ``val_accuracy`` of an epoch is the *live* weights' unless
  ``keras.callbacks.SwapEMAWeights()`` is in the callbacks: it swaps the averages in
  for every evaluation and back afterwards (on TensorFlow by additions, so a swap may
  move a weight by a rounding error). With it, as here, AccelAT reads the averaged
  model's accuracy, as in ``examples/torch_ema.py``.
* ``ema_momentum`` from a horizon in epochs: ``1 - 1 / (horizon_epochs * steps_per_epoch)``.

Synthetic data, a few seconds on CPU. The last line reads
``final val_accuracy=<acc> lr=<lr> cuts=<n>``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

import accelat_keras
from accelat_core import AccelAT

Data = tuple[np.ndarray, np.ndarray]
BATCH_SIZE = 64


@dataclass
class Run:
    ema_momentum: float
    history: dict[str, list[float]]  # learning_rate and val_accuracy, one per epoch
    model: keras.Model
    policy: AccelAT


def blobs() -> tuple[Data, Data]:
    """Training and validation sets of four overlapping Gaussian classes in 20-d."""
    rng = np.random.default_rng(0)
    centers = 0.6 * rng.standard_normal((4, 20))
    y = rng.integers(0, 4, 2048 + 1024)
    x = (centers[y] + rng.standard_normal((len(y), 20))).astype("float32")
    return (x[:2048], y[:2048]), (x[2048:], y[2048:])


def train(
    epochs: int = 12,
    horizon_epochs: float = 1.0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> Run:
    keras.utils.set_random_seed(0)
    (x, y), validation = blobs()
    ema_momentum = 1 - 1 / (horizon_epochs * math.ceil(len(x) / BATCH_SIZE))
    optimizer = accelat_keras.SGD(0.1, momentum=0.9, use_ema=True, ema_momentum=ema_momentum)
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4)]
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    policy = AccelAT(lr_max=0.1, min_lr=0.001, min_gain=0.005, factor=0.5, window=2)
    history = model.fit(
        x, y, validation_data=validation, epochs=epochs, batch_size=BATCH_SIZE, verbose=0,
        callbacks=[
            keras.callbacks.SwapEMAWeights(),  # evaluate (so feed AccelAT) the average
            accelat_keras.PolicyCallback(policy, monitor="val_accuracy"),
            *callbacks,
        ],
    )  # fmt: skip
    return Run(ema_momentum, history.history, model, policy)


def main(argv: list[str] | None = None) -> Run:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--horizon-epochs", type=float, default=1.0)
    args = parser.parse_args(argv)
    run = train(args.epochs, args.horizon_epochs)
    h = run.history
    for epoch, (lr, acc) in enumerate(zip(h["learning_rate"], h["val_accuracy"], strict=True)):
        print(f"epoch {epoch}: lr={lr:.6g} val_accuracy={acc:.4f}")  # the averaged model's
    print(f"ema_momentum={run.ema_momentum!r}")
    cuts = len(run.policy.decisions)
    print(f"final val_accuracy={h['val_accuracy'][-1]:.4f} lr={run.policy.lr:.6g} cuts={cuts}")
    return run


if __name__ == "__main__":
    main()
