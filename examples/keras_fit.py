"""Keras ``fit`` on scikit-learn's digits with accelat policies (offline, under a minute).

Two runs of the same small MLP:

1. **AccelAT** via ``PolicyCallback`` on ``val_accuracy``: one policy step per epoch;
   the lr is cut by ``factor`` whenever validation accuracy gained less than ``min_gain``
   over ``window`` epochs, and training stops once cuts at ``min_lr`` stop helping.
2. **OneCycle with momentum** via ``PolicyCallback(interval="batch")`` and
   ``accelat_keras.SGD``, whose momentum lives in a variable so the cycled momentum
   reaches the compiled update.

Run: ``python examples/keras_fit.py [--epochs 20]`` on any backend
(``KERAS_BACKEND=tensorflow``, ``torch`` or ``jax``).
"""

from __future__ import annotations

import argparse
import math

import keras
import numpy as np
from sklearn.datasets import load_digits

import accelat_keras
from accelat_core import AccelAT, OneCycle


def digits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Digits scaled to [0, 1], int64 labels, a fixed 80/20 split."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    y = y.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(0.8 * len(x))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def mlp(optimizer: keras.Optimizer) -> keras.Model:
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    (x, y), validation = digits()
    results = {}

    policy = AccelAT(lr_max=0.1, min_lr=0.001, min_gain=0.01, factor=0.5, window=2,
                     stop_patience=2)  # fmt: skip
    model = mlp(accelat_keras.SGD(momentum=0.9))
    history = model.fit(
        x, y, validation_data=validation, epochs=args.epochs, batch_size=args.batch_size,
        verbose=0, callbacks=[accelat_keras.PolicyCallback(policy, monitor="val_accuracy")],
    )  # fmt: skip
    h = history.history
    print("AccelAT on val_accuracy:")
    for epoch, (lr, acc) in enumerate(zip(h["learning_rate"], h["val_accuracy"], strict=True)):
        print(f"  epoch {epoch:2d}  lr {lr:.4g}  val_accuracy {acc:.3f}")
    print(f"  cuts: {[(d.evaluation, d.new_lr) for d in policy.decisions]}")
    results["accelat_val_accuracy"] = h["val_accuracy"][-1]

    steps = args.epochs * math.ceil(len(x) / args.batch_size)
    cycle = OneCycle(lr_max=0.2, total_steps=steps, momentum=(0.85, 0.95))
    model = mlp(accelat_keras.SGD(momentum=0.9))
    history = model.fit(
        x, y, validation_data=validation, epochs=args.epochs, batch_size=args.batch_size,
        verbose=0, callbacks=[accelat_keras.PolicyCallback(cycle, interval="batch")],
    )  # fmt: skip
    h = history.history
    print("OneCycle (lr and momentum per batch):")
    for epoch, (lr, mu, acc) in enumerate(
        zip(h["learning_rate"], h["momentum"], h["val_accuracy"], strict=True)
    ):
        print(f"  epoch {epoch:2d}  last lr {lr:.4g}  momentum {mu:.3f}  val_accuracy {acc:.3f}")
    results["onecycle_val_accuracy"] = h["val_accuracy"][-1]
    return results


if __name__ == "__main__":
    main()
