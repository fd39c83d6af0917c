"""One policy, three frameworks (and optax): the core, accelat_torch, accelat_keras and
accelat_optax emit the same learning-rate and momentum sequence for every kind of policy.

Each example draws a random valid policy of one kind (and, for metric-driven ones, a
random metric history), builds identical copies from its config, and steps them:
the bare core policy, ``accelat_torch.PolicyScheduler`` on a real ``torch.optim.SGD``
(reading ``param_groups[0]``), and ``accelat_keras.PolicyCallback`` on a real
``accelat_keras.SGD`` (reading ``optimizer.learning_rate`` and its momentum variable),
driven through the callback's own epoch hooks (no ``fit``, for speed), and
``accelat_optax.Controller`` on the state of ``optax.inject_hyperparams(optax.sgd)``
(reading ``hyperparams``; the in-graph ``accelat_optax.schedule`` of every fixed shape is
checked in ``tests/optax/test_optax_schedule.py``). Keras runs on the backend this
process imported (TensorFlow unless ``KERAS_BACKEND`` says otherwise; ``tests/keras/
test_other_backend.py`` runs this file again on JAX), the float32 values compared to 1e-6
relative.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent / "core"))
from strategies_fixed import FIXED_SHAPES
from strategies_metric import (
    accelat_policies,
    base_policies,
    joins,
    metric_histories,
    plateau_policies,
    range_tests,
    warmups,
)

import accelat_keras
import accelat_optax
from accelat_core import Policy, from_config
from accelat_torch import scheduler_for

# Keras' own NumPy 2 warning (see tests/keras/conftest.py).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"
)

KINDS = {
    **FIXED_SHAPES,
    "RangeTest": range_tests(),
    "AccelAT": accelat_policies(),
    "Plateau": plateau_policies(),
    "Warmup": warmups(base_policies()),
    "Join": joins(base_policies()),
}
STEPS = 50
#: The momentum every optimizer starts with; it stays while a policy emits none.
START_MOMENTUM = 0.5
#: Examples per kind: fewer in the other-backend rerun, which only checks the Keras writes.
EXAMPLES = 8 if os.environ.get("ACCELAT_KERAS_OTHER_BACKEND_RUN") else 30


@pytest.fixture(scope="module")
def keras_model() -> keras.Model:
    """One compiled model reused by every example: PolicyCallback.on_train_begin writes
    the policy's current values over whatever the previous example left."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=accelat_keras.SGD(learning_rate=1.0, momentum=START_MOMENTUM))
    return model


def _core(policy: Policy, metrics: list[float]) -> list[tuple[float, float]]:
    out, momentum = [], START_MOMENTUM
    for i in range(STEPS + 1):
        if i:
            policy.step(metrics[i - 1] if policy.needs_metric else None)
        momentum = policy.momentum if policy.momentum is not None else momentum
        out.append((policy.lr, momentum))
    return out


def _torch(policy: Policy, metrics: list[float]) -> list[tuple[float, float]]:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.5)
    scheduler = scheduler_for(optimizer, policy)
    group = optimizer.param_groups[0]
    out = [(group["lr"], group["momentum"])]
    for i in range(STEPS):
        if policy.needs_metric:
            scheduler.step(metrics[i])
        else:
            scheduler.step()
        out.append((group["lr"], group["momentum"]))
    return out


def _keras(policy: Policy, metrics: list[float], model: keras.Model) -> list[tuple[float, float]]:
    optimizer = model.optimizer
    optimizer.momentum_variable.assign(START_MOMENTUM)
    callback = accelat_keras.PolicyCallback(policy, monitor="metric", interval="epoch")
    callback.set_model(model)
    callback.on_train_begin()

    def read() -> tuple[float, float]:
        return float(optimizer.learning_rate), float(optimizer.momentum_variable)

    out = [read()]
    for i in range(STEPS):
        callback.on_epoch_end(i, {"metric": metrics[i]})
        out.append(read())
    return out


def _optax(policy: Policy, metrics: list[float]) -> list[tuple[float, float]]:
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0, momentum=START_MOMENTUM)
    controller = accelat_optax.Controller(policy)
    state = controller.apply(optimizer.init(jnp.zeros(1)))

    def read() -> tuple[float, float]:
        return float(state.hyperparams["learning_rate"]), float(state.hyperparams["momentum"])

    out = [read()]
    for i in range(STEPS):
        state = controller.step(state, metrics[i])
        out.append(read())
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_core_torch_and_keras_emit_the_same_lr_and_momentum_sequence(kind, keras_model):
    # Each example drives four frameworks; 30 per kind keeps the test to a few seconds
    # whatever the Hypothesis profile.
    @settings(max_examples=EXAMPLES)
    @given(policy=KINDS[kind], metrics=metric_histories(STEPS, STEPS) | st.just([0.0] * STEPS))
    def check(policy: Policy, metrics: list[float]) -> None:
        config = policy.to_config()
        core = _core(from_config(config), metrics)
        via_torch = _torch(from_config(config), metrics)
        via_keras = _keras(from_config(config), metrics, keras_model)
        np.testing.assert_array_equal(via_torch, core)  # torch keeps Python floats
        np.testing.assert_allclose(via_keras, np.float32(core), rtol=1e-6, atol=0)
        via_optax = _optax(from_config(config), metrics)
        np.testing.assert_allclose(via_optax, np.float32(core), rtol=1e-6, atol=0)

    check()
