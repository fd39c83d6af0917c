"""An optax training loop on scikit-learn's digits with accelat policies (offline, seconds).

Two runs of the same small MLP, in plain JAX:

1. **AccelAT** via ``accelat_optax.Controller`` on validation accuracy: one policy step
   per epoch, on the host; the controller writes the lr into the ``inject_hyperparams``
   state that the jitted update reads, and training stops once cuts at ``min_lr`` stop
   helping.
2. **OneCycle with momentum** via ``accelat_optax.schedule`` and ``momentum_schedule``:
   both evaluated inside the jitted update from optax's step count.

Run: ``python examples/optax_loop.py [--epochs 20]``.
"""

from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

from accelat_core import AccelAT, OneCycle
from accelat_optax import Controller, momentum_schedule, schedule


def digits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Digits scaled to [0, 1], int32 labels, a fixed 80/20 split."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    y = y.astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(0.8 * len(x))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def init_mlp(key: jax.Array) -> dict[str, jax.Array]:
    """A 64-64-10 MLP, He-initialised."""
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (64, 64)) * math.sqrt(2 / 64),
        "b1": jnp.zeros(64),
        "w2": jax.random.normal(k2, (64, 10)) * math.sqrt(2 / 64),
        "b2": jnp.zeros(10),
    }


def logits(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def loss(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()


def accuracy(params: dict[str, jax.Array], x: np.ndarray, y: np.ndarray) -> float:
    return float((logits(params, x).argmax(-1) == y).mean())


def train_epoch(update, params, state, x, y, batch_size, rng):
    """One shuffled pass over ``(x, y)`` with the jitted ``update``."""
    order = rng.permutation(len(x))
    for start in range(0, len(x) - batch_size + 1, batch_size):  # full batches: one shape
        rows = order[start : start + batch_size]
        params, state = update(params, state, x[rows], y[rows])
    return params, state


def make_update(optimizer: optax.GradientTransformation):
    @jax.jit
    def update(params, state, x, y):
        grads = jax.grad(loss)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return update


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    (x, y), (xv, yv) = digits()
    results = {}

    # 1. AccelAT on validation accuracy: the controller writes the lr between epochs.
    controller = Controller(AccelAT(lr_max=0.1, min_lr=0.001, min_gain=0.01, factor=0.5,
                                    window=2, stop_patience=2))  # fmt: skip
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
    params = init_mlp(jax.random.key(0))
    state = controller.apply(optimizer.init(params))
    update, rng = make_update(optimizer), np.random.default_rng(0)
    print("AccelAT on val_accuracy:")
    for epoch in range(args.epochs):
        lr = float(state.hyperparams["learning_rate"])
        params, state = train_epoch(update, params, state, x, y, args.batch_size, rng)
        val_accuracy = accuracy(params, xv, yv)
        print(f"  epoch {epoch:2d}  lr {lr:.4g}  val_accuracy {val_accuracy:.3f}")
        state = controller.step(state, val_accuracy)
        if controller.should_stop:
            break
    print(f"  cuts: {[(d.evaluation, d.new_lr) for d in controller.policy.decisions]}")
    results["accelat_val_accuracy"] = val_accuracy

    # 2. OneCycle: lr and momentum from the step count, inside the jitted update.
    steps = args.epochs * (len(x) // args.batch_size)
    cycle = OneCycle(lr_max=0.2, total_steps=steps, momentum=(0.85, 0.95))
    optimizer = optax.inject_hyperparams(optax.sgd)(
        learning_rate=schedule(cycle), momentum=momentum_schedule(cycle)
    )
    params = init_mlp(jax.random.key(0))
    state = optimizer.init(params)
    update, rng = make_update(optimizer), np.random.default_rng(0)
    print("OneCycle (lr and momentum per update):")
    for epoch in range(args.epochs):
        params, state = train_epoch(update, params, state, x, y, args.batch_size, rng)
        # hyperparams hold the values the epoch's last update used
        lr, mu = (float(state.hyperparams[k]) for k in ("learning_rate", "momentum"))
        val_accuracy = accuracy(params, xv, yv)
        print(f"  epoch {epoch:2d}  last lr {lr:.4g}  momentum {mu:.3f}  "
              f"val_accuracy {val_accuracy:.3f}")  # fmt: skip
    results["onecycle_val_accuracy"] = val_accuracy
    return results


if __name__ == "__main__":
    main()
