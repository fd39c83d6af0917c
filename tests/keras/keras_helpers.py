"""Tiny models for the Keras adapter tests (imported by the tests in this folder)."""

from __future__ import annotations

import keras
import numpy as np

#: The constant gradient dloss/dw of :func:`one_weight_model` (loss = GRADIENT * w).
GRADIENT = 0.5


@keras.saving.register_keras_serializable(package="accelat_tests")
def constant_gradient_loss(y_true, y_pred):
    """``GRADIENT * y_pred``: its gradient with respect to ``y_pred`` is ``GRADIENT``."""
    return GRADIENT * y_pred


def one_weight_model(optimizer: keras.Optimizer, jit_compile: bool = False) -> keras.Model:
    """``y = w * x`` with ``w = 1`` and loss ``GRADIENT * y``: on input 1 the gradient is
    exactly ``GRADIENT`` at every step, so the weight trajectory is the optimizer's
    update rule and nothing else."""
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")]
    )
    model.compile(
        optimizer=optimizer,
        loss=constant_gradient_loss,
        jit_compile=jit_compile,
    )
    return model


def ones(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples of input 1 (and dummy targets) for :func:`one_weight_model`."""
    return np.ones((n, 1), "float32"), np.zeros((n, 1), "float32")


def weight(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.layers[0].kernel)[0, 0])


class Recorder(keras.callbacks.Callback):
    """Records, at each batch start, the optimizer's lr and momentum, and after each
    batch the weight of a :func:`one_weight_model`."""

    def __init__(self) -> None:
        super().__init__()
        self.lrs: list[float] = []
        self.momenta: list[float] = []
        self.weights: list[float] = []
        self.epoch_lrs: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_lrs.append(float(self.model.optimizer.learning_rate))

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        self.lrs.append(float(optimizer.learning_rate))
        if hasattr(optimizer, "momentum_variable"):
            self.momenta.append(float(optimizer.momentum_variable))

    def on_train_batch_end(self, batch, logs=None):
        if len(self.model.layers) == 1:
            self.weights.append(weight(self.model))


def small_classifier(optimizer: keras.Optimizer) -> keras.Model:
    """A 4-16-3 MLP for tests that need accuracy metrics."""
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def blobs(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three separable-ish Gaussian blobs in 4-D, int64 labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype("int64")
    x = (rng.normal(size=(n, 4)) + y[:, None]).astype("float32")
    return x, y
