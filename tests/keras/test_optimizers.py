"""Variable-backed momentum really reaches the update, on every backend, jit or not.

A one-weight model under a constant gradient ``g`` makes the weight trajectory the
optimizer's update rule alone, so it can be checked against the recurrence computed by
hand with the policy's ``(lr_t, momentum_t)``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras_helpers import GRADIENT, Recorder, one_weight_model, ones

import accelat_keras
from accelat_core import OneCycle

BATCHES = 8
#: A cycle of BATCHES steps: lr up then down, momentum down then up, all different.
POLICY_ARGS = {"lr_max": 0.2, "total_steps": BATCHES, "pct_start": 0.5, "momentum": (0.5, 0.95)}

# Keras' torch backend compiles with torch.compile (tens of seconds on CPU): one case only.
JIT_CASES = [False, True]


def _fit(optimizer: keras.Optimizer, jit_compile: bool) -> Recorder:
    model = one_weight_model(optimizer, jit_compile=jit_compile)
    recorder = Recorder()
    callback = accelat_keras.PolicyCallback(OneCycle(**POLICY_ARGS), interval="batch")
    x, y = ones(BATCHES)
    model.fit(
        x, y, batch_size=1, epochs=1, shuffle=False, verbose=0, callbacks=[callback, recorder]
    )
    return recorder


def _sgd_trajectory(lrs, momenta, nesterov=False):
    f = np.float32
    w, m, out = f(1.0), f(0.0), []
    for lr, mu in zip(lrs, momenta, strict=True):
        step = f(GRADIENT) * f(lr)
        m = f(mu) * m - step
        w = w + (f(mu) * m - step if nesterov else m)
        out.append(float(w))
    return out


def _adam_trajectory(lrs, beta_1s, beta_2=0.999, epsilon=1e-7):
    f = np.float32
    w, m, v, out = f(1.0), f(0.0), f(0.0), []
    g = f(GRADIENT)
    for k, (lr, b1) in enumerate(zip(lrs, beta_1s, strict=True)):
        t = f(k + 1)
        alpha = f(lr) * np.sqrt(f(1) - f(beta_2) ** t) / (f(1) - f(b1) ** t)
        m = m + (g - m) * (f(1) - f(b1))
        # Keras computes 1 - beta_2 from the Python float (it is not a variable).
        v = v + (g * g - v) * f(1 - beta_2)
        w = w - m * alpha / (np.sqrt(v) + f(epsilon))
        out.append(float(w))
    return out


def _schedule():
    policy = OneCycle(**POLICY_ARGS)
    hypers = [policy.at(t) for t in range(BATCHES)]
    return [h.lr for h in hypers], [h.momentum for h in hypers]


@pytest.mark.parametrize("jit_compile", JIT_CASES)
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_weight_follows_scheduled_momentum_batch_by_batch(jit_compile, nesterov):
    if nesterov and jit_compile and keras.backend.backend() == "torch":
        pytest.skip("one torch.compile case is enough (each costs ~25 s on CPU)")
    lrs, momenta = _schedule()
    recorder = _fit(accelat_keras.SGD(momentum=0.9, nesterov=nesterov), jit_compile)
    # The optimizer held the policy's values at every batch...
    np.testing.assert_allclose(recorder.lrs, lrs, rtol=1e-6)
    np.testing.assert_allclose(recorder.momenta, momenta, rtol=1e-6)
    # ...and the update used them: the weights follow the hand-computed recurrence.
    expected = _sgd_trajectory(lrs, momenta, nesterov)
    np.testing.assert_allclose(recorder.weights, expected, rtol=1e-6, atol=1e-7)
    # The momentum schedule matters here: a momentum fixed at its first value gives
    # another trajectory, so the check above cannot pass by accident.
    frozen = _sgd_trajectory(lrs, [momenta[0]] * BATCHES, nesterov)
    assert np.max(np.abs(np.subtract(frozen, expected))) > 1e-3


@pytest.mark.parametrize(
    "jit_compile", [False] if keras.backend.backend() == "torch" else JIT_CASES
)
@pytest.mark.parametrize("optimizer_class", [accelat_keras.Adam, accelat_keras.AdamW])
def test_adam_weight_follows_scheduled_beta_1_batch_by_batch(jit_compile, optimizer_class):
    lrs, beta_1s = _schedule()
    # weight_decay=0 makes AdamW's update Adam's, so one recurrence checks both.
    extra = {"weight_decay": 0.0} if optimizer_class is accelat_keras.AdamW else {}
    recorder = _fit(optimizer_class(beta_1=0.9, **extra), jit_compile)
    np.testing.assert_allclose(recorder.momenta, beta_1s, rtol=1e-6)
    expected = _adam_trajectory(lrs, beta_1s)
    np.testing.assert_allclose(recorder.weights, expected, rtol=1e-6)
    frozen = _adam_trajectory(lrs, [beta_1s[0]] * BATCHES)
    assert np.max(np.abs(np.subtract(frozen, expected))) > 1e-3


def test_sgd_with_fixed_momentum_matches_keras_sgd_exactly():
    x, y = ones(5)
    trajectories = []
    for optimizer in (
        keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
        accelat_keras.SGD(learning_rate=0.1, momentum=0.9),
    ):
        model = one_weight_model(optimizer)
        recorder = Recorder()
        model.fit(x, y, batch_size=1, shuffle=False, verbose=0, callbacks=[recorder])
        trajectories.append(recorder.weights)
    assert trajectories[0] == trajectories[1]


def test_momentum_variable_is_saved_and_in_config(tmp_path):
    optimizer = accelat_keras.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    model = one_weight_model(optimizer)
    x, y = ones(3)
    model.fit(x, y, batch_size=1, verbose=0)
    optimizer.momentum_variable.assign(0.25)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, accelat_keras.SGD)
    assert float(loaded.optimizer.momentum_variable) == 0.25
    assert loaded.optimizer.get_config()["momentum"] == 0.25
    assert loaded.optimizer.get_config()["nesterov"] is True
    for saved, restored in zip(optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(saved), keras.ops.convert_to_numpy(restored)
        )


@pytest.mark.parametrize("momentum", [-0.1, 1.5])
def test_momentum_outside_unit_interval_is_rejected(momentum):
    with pytest.raises(ValueError, match="momentum"):
        accelat_keras.SGD(momentum=momentum)
    optimizer = accelat_keras.Adam()
    with pytest.raises(ValueError, match=r"beta_1 must be in \[0, 1\]"):
        optimizer.beta_1 = momentum
    assert float(optimizer.momentum_variable) == pytest.approx(0.9)
