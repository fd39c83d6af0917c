"""PolicySchedule: at(t) tabulated and looked up inside the compiled step."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras_helpers import GRADIENT, Recorder, one_weight_model, ones

import accelat_keras
from accelat_core import AccelAT, Constant, Cyclical, OneCycle, WarmRestarts, warmup


def _values(schedule, steps):
    return [float(keras.ops.convert_to_numpy(schedule(step))) for step in steps]


@pytest.mark.parametrize(
    ("policy", "steps"),
    [
        (OneCycle(0.3, total_steps=17, momentum=None), None),
        (warmup(OneCycle(0.3, total_steps=9, momentum=None), steps=3), None),
        (Cyclical(0.01, 0.1, step_size_up=4, momentum=None), 25),
        (Constant(0.05), None),
    ],
)
def test_every_step_equals_at_t_in_float32_and_holds_after_the_table(policy, steps):
    schedule = accelat_keras.PolicySchedule(policy, steps=steps)
    last = schedule.steps
    probe = [*range(last + 1), last + 1, last + 100]
    expected = [float(np.float32(policy.at(min(t, last)).lr)) for t in probe]
    assert _values(schedule, probe) == expected


def test_unending_policy_needs_steps_and_then_holds_its_last_value():
    policy = WarmRestarts(0.1, period=5)
    with pytest.raises(ValueError, match=r"has no horizon.*steps="):
        accelat_keras.PolicySchedule(policy)
    schedule = accelat_keras.PolicySchedule(policy, steps=7)
    assert _values(schedule, [7, 8, 1000]) == [float(np.float32(policy.at(7).lr))] * 3


@pytest.mark.parametrize("jit_compile", [False, True])
def test_compiled_step_uses_at_t_for_update_t(jit_compile):
    if jit_compile and keras.backend.backend() == "torch":
        pytest.skip("torch.compile of the train step is covered in test_optimizers")
    policy = OneCycle(0.3, total_steps=6, momentum=None)
    schedule = accelat_keras.PolicySchedule(policy)
    model = one_weight_model(keras.optimizers.SGD(learning_rate=schedule), jit_compile)
    recorder = Recorder()
    x, y = ones(8)
    model.fit(x, y, batch_size=1, shuffle=False, verbose=0, callbacks=[recorder])
    f = np.float32
    w, expected = f(1.0), []
    for t in range(8):
        w = w - f(GRADIENT) * f(policy.at(t).lr)
        expected.append(float(w))
    np.testing.assert_allclose(recorder.weights, expected, rtol=1e-6)


def test_saved_model_resumes_with_the_same_lr_at_the_same_step(tmp_path):
    policy = OneCycle(0.3, total_steps=10, momentum=None)
    model = one_weight_model(
        keras.optimizers.SGD(learning_rate=accelat_keras.PolicySchedule(policy))
    )
    x, y = ones(4)
    model.fit(x, y, batch_size=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    schedule = loaded.optimizer._learning_rate
    assert isinstance(schedule, accelat_keras.PolicySchedule)
    assert schedule.get_config() == {"policy": policy.to_config(), "steps": policy.horizon}
    assert int(loaded.optimizer.iterations) == 4
    assert float(loaded.optimizer.learning_rate) == float(np.float32(policy.at(4).lr))
    recorder = Recorder()
    loaded.fit(x, y, batch_size=1, verbose=0, callbacks=[recorder])
    model.fit(x, y, batch_size=1, verbose=0)
    assert recorder.weights[-1] == float(keras.ops.convert_to_numpy(model.layers[0].kernel)[0, 0])


def test_metric_driven_policy_is_rejected_with_the_alternative():
    policy = AccelAT(lr_max=0.1, min_lr=0.01, min_gain=0.01, factor=0.5, window=2)
    with pytest.raises(TypeError, match=r"metric-driven.*Use PolicyCallback"):
        accelat_keras.PolicySchedule(policy)


def test_momentum_policy_is_rejected_rather_than_dropping_momentum():
    with pytest.raises(ValueError, match=r"schedules momentum.*momentum=None"):
        accelat_keras.PolicySchedule(OneCycle(0.1, total_steps=10))


@pytest.mark.parametrize("steps", [-1, 1.5, True])
def test_bad_steps_is_rejected(steps):
    with pytest.raises(ValueError, match="steps must be an integer"):
        accelat_keras.PolicySchedule(Constant(0.1), steps=steps)
