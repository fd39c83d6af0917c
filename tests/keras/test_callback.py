"""PolicyCallback: the policy decides every value; the callback writes it, logs it, and
keeps the policy's clock across fits."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras_helpers import GRADIENT, Recorder, blobs, one_weight_model, ones, small_classifier

import accelat_keras
from accelat_core import AccelAT, Constant, LinearDecay, OneCycle, StepDecay, from_config


def _f32(values):
    return [float(np.float32(v)) for v in values]


def _accelat(**overrides):
    args = {"lr_max": 0.1, "min_lr": 0.001, "min_gain": 0.5, "factor": 0.5, "window": 1}
    return AccelAT(**{**args, **overrides})


def test_epoch_interval_sets_at_t_for_each_epoch_and_history_records_it():
    policy = StepDecay(0.1, milestones=[2, 4], factor=0.5)
    model = one_weight_model(keras.optimizers.SGD(learning_rate=1.0))
    recorder = Recorder()
    x, y = ones(4)
    history = model.fit(
        x, y, batch_size=2, epochs=5, verbose=0,
        callbacks=[accelat_keras.PolicyCallback(policy), recorder],
    )  # fmt: skip
    expected = [policy.at(t).lr for t in range(5)]
    assert recorder.epoch_lrs == _f32(expected)
    # each batch of epoch e runs at at(e)
    assert recorder.lrs == _f32([lr for lr in expected for _ in range(2)])
    assert history.history["learning_rate"] == expected
    assert policy.t == 5


def test_batch_interval_steps_once_per_batch_and_second_fit_continues_the_clock():
    policy = LinearDecay(0.1, 0.01, total_steps=10)
    callback = accelat_keras.PolicyCallback(policy, interval="batch")
    model = one_weight_model(keras.optimizers.SGD(learning_rate=1.0))
    recorder = Recorder()
    x, y = ones(6)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[callback, recorder])
    # a second fit (a new CallbackList, on_train_begin again) must not reset the policy
    history = model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[callback, recorder])
    assert recorder.lrs == _f32(policy.at(t).lr for t in range(9))
    assert policy.t == 9
    # the epoch logs carry the lr of the epoch's last batch
    assert history.history["learning_rate"] == [policy.at(5).lr, policy.at(8).lr]


@pytest.mark.parametrize(
    ("policy", "interval", "monitor"),
    [
        (StepDecay(0.1, milestones=[1, 2], factor=0.5), "epoch", "loss"),
        (LinearDecay(0.1, 0.01, total_steps=5), "batch", "loss"),
        (_accelat(mode="min", min_gain=0.5, factor=0.25, warmup=0, cooldown=0), "epoch", "loss"),
    ],
    ids=["epoch", "batch", "accelat"],
)
def test_lr_written_by_the_callback_reaches_the_jit_compiled_train_step(policy, interval, monitor):
    # On JAX, fit carries the variables through the jitted step as state and syncs them
    # only when a callback touches self.model: a write that skipped the sync would be lost
    # (or overwritten by the stale state). PolicyCallback is the only callback here, and
    # the final weight is the hand-computed w -= GRADIENT * lr_k over every update k.
    if keras.backend.backend() == "torch":
        pytest.skip("torch.compile of the train step is covered in test_optimizers")
    replay = from_config(policy.to_config())
    model = one_weight_model(keras.optimizers.SGD(learning_rate=1.0), jit_compile=True)
    x, y = ones(6)
    callback = accelat_keras.PolicyCallback(policy, monitor=monitor, interval=interval)
    history = model.fit(x, y, batch_size=2, epochs=3, shuffle=False, verbose=0,
                        callbacks=[callback])  # fmt: skip
    if interval == "epoch":
        lrs = [replay.lr] + [replay.step(v).lr for v in history.history["loss"][:-1]]
        per_update = [lr for lr in lrs for _ in range(3)]
    else:
        per_update = [replay.at(t).lr for t in range(9)]
    assert len(set(per_update)) > 1
    f = np.float32
    w = f(1.0)
    for lr in per_update:
        w = w - f(GRADIENT) * f(lr)
    assert keras.ops.convert_to_numpy(model.layers[0].kernel)[0, 0] == pytest.approx(w, rel=1e-6)
    # the lr frozen at its first value is another weight, so the check above cannot pass
    # by a write that never arrived
    assert abs((f(1.0) - 9 * f(GRADIENT) * f(per_update[0])) - w) > 1e-3


class BatchLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


def test_batch_interval_metric_policy_steps_on_each_batch_logs():
    policy = _accelat(mode="min", min_gain=0.05)
    callback = accelat_keras.PolicyCallback(policy, monitor="loss", interval="batch")
    model = small_classifier(keras.optimizers.SGD(learning_rate=1.0))
    losses, recorder = BatchLosses(), Recorder()
    x, y = blobs(96)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback, losses, recorder])
    replay = _accelat(mode="min", min_gain=0.05)
    expected = [replay.lr] + [replay.step(loss).lr for loss in losses.losses[:-1]]
    assert len(expected) == 24 and recorder.lrs == _f32(expected)
    replay.step(losses.losses[-1])
    assert policy.state_dict() == replay.state_dict()
    assert len(set(expected)) > 1


def test_only_a_metric_driven_batch_policy_has_a_batch_end_hook():
    # Keras dispatches batch-end callbacks in a background thread only when no callback
    # overrides on_train_batch_end; a policy without a metric must not cost that.
    def hook(callback):
        return keras.src.utils.python_utils.is_default(callback.on_train_batch_end)

    assert hook(accelat_keras.PolicyCallback(OneCycle(0.1, 10), interval="batch"))
    assert hook(accelat_keras.PolicyCallback(_accelat(), interval="epoch"))
    assert not hook(accelat_keras.PolicyCallback(_accelat(), monitor="loss", interval="batch"))


def test_metric_driven_policy_gets_logs_monitor_and_its_lr_reaches_the_optimizer():
    policy = _accelat(mode="min")
    model = small_classifier(keras.optimizers.SGD(learning_rate=1.0))
    recorder = Recorder()
    x, y = blobs()
    history = model.fit(
        x, y, validation_data=blobs(48, seed=1), batch_size=32, epochs=6, verbose=0,
        callbacks=[accelat_keras.PolicyCallback(policy, monitor="val_loss"), recorder],
    )  # fmt: skip
    # Replaying the recorded val_loss into a fresh policy gives the lrs the optimizer had.
    replay = _accelat(mode="min")
    expected = [replay.lr]
    for value in history.history["val_loss"][:-1]:
        expected.append(replay.step(value).lr)
    assert recorder.epoch_lrs == _f32(expected)
    assert history.history["learning_rate"] == expected
    assert len(set(expected)) > 1, "min_gain=0.5 should have cut the lr at least once"


def test_should_stop_sets_stop_training():
    # window=1, warmup 0, cooldown 0: every evaluation that gains < 10 cuts the lr, and at
    # lr_min two such decisions trigger should_stop.
    policy = _accelat(min_gain=10.0, factor=0.1, min_lr=0.01, warmup=0, cooldown=0,
                      stop_patience=2)  # fmt: skip
    model = small_classifier(keras.optimizers.SGD(learning_rate=1.0))
    x, y = blobs()
    history = model.fit(
        x, y, batch_size=48, epochs=50, verbose=0,
        callbacks=[accelat_keras.PolicyCallback(policy, monitor="loss")],
    )  # fmt: skip
    assert policy.should_stop
    epochs_run = len(history.history["loss"])
    assert epochs_run == policy.state_dict()["state"]["evaluations"] < 50


def test_momentum_is_written_and_logged_with_csv_logger(tmp_path):
    policy = OneCycle(0.1, total_steps=3, momentum=(0.8, 0.9))
    model = one_weight_model(accelat_keras.SGD(learning_rate=1.0, momentum=0.5))
    recorder = Recorder()
    x, y = ones(2)
    path = tmp_path / "log.csv"
    model.fit(
        x, y, batch_size=2, epochs=3, verbose=0,
        callbacks=[accelat_keras.PolicyCallback(policy), keras.callbacks.CSVLogger(path),
                   recorder],
    )  # fmt: skip
    expected = [policy.at(t) for t in range(3)]
    assert recorder.momenta == _f32(h.momentum for h in expected)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([h.lr for h in expected])
    assert [float(r["momentum"]) for r in rows] == pytest.approx([h.momentum for h in expected])


def test_missing_monitor_lists_available_keys_and_hints_at_epoch_interval():
    model = small_classifier(keras.optimizers.SGD(learning_rate=1.0))
    x, y = blobs(32)
    callback = accelat_keras.PolicyCallback(_accelat(), monitor="val_accuracy", interval="batch")
    weights = model.get_weights()
    with pytest.raises(ValueError, match=r"logs have only \['accuracy', 'loss'\].*epoch end"):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[accelat_keras.PolicyCallback(_accelat())])
    assert callback.policy.state_dict()["state"]["evaluations"] == 0
    assert len(weights) == len(model.get_weights())


def test_momentum_policy_on_plain_keras_sgd_names_the_fix_and_trains_nothing():
    model = one_weight_model(keras.optimizers.SGD(learning_rate=0.1, momentum=0.9))
    x, y = ones(2)
    callback = accelat_keras.PolicyCallback(OneCycle(0.1, total_steps=5))
    with pytest.raises(TypeError, match=r"baked into the\s+compiled train step.*accelat_keras.SGD"):
        model.fit(x, y, verbose=0, callbacks=[callback])
    assert model.optimizer.iterations == 0
    assert callback.policy.t == 0


def test_optimizer_with_learning_rate_schedule_is_rejected():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    model = one_weight_model(keras.optimizers.SGD(learning_rate=schedule))
    x, y = ones(2)
    with pytest.raises(ValueError, match=r"ExponentialDecay, not a variable.*float learning_rate"):
        model.fit(x, y, verbose=0, callbacks=[accelat_keras.PolicyCallback(Constant(0.1))])


def test_policy_schedule_with_policy_callback_is_rejected():
    schedule = accelat_keras.PolicySchedule(Constant(0.1))
    model = one_weight_model(keras.optimizers.SGD(learning_rate=schedule))
    x, y = ones(2)
    callback = accelat_keras.PolicyCallback(_accelat(), monitor="loss")
    with pytest.raises(ValueError, match=r"already a PolicySchedule.*use one or the other"):
        model.fit(x, y, verbose=0, callbacks=[callback])


def test_mode_is_only_a_check_against_the_policy():
    assert accelat_keras.PolicyCallback(_accelat(mode="max"), mode="max").mode == "max"
    with pytest.raises(ValueError, match="disagrees with the policy's mode='max'"):
        accelat_keras.PolicyCallback(_accelat(mode="max"), monitor="val_loss", mode="min")
    with pytest.raises(ValueError, match="reads no metric; drop mode"):
        accelat_keras.PolicyCallback(Constant(0.1), mode="min")
    with pytest.raises(ValueError, match="mode must be None, 'min' or 'max'"):
        accelat_keras.PolicyCallback(_accelat(), mode="auto")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": 0.1}, "policy must be an accelat_core Policy"),
        ({"interval": "step"}, "interval must be one of"),
        ({"monitor": ""}, "monitor must be a non-empty logs key"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        accelat_keras.PolicyCallback(**{"policy": Constant(0.1), **kwargs})


def test_get_config_rebuilds_an_equal_callback():
    callback = accelat_keras.PolicyCallback(
        _accelat(mode="min"), monitor="val_loss", interval="epoch", mode="min"
    )
    config = json.loads(json.dumps(callback.get_config()))
    rebuilt = accelat_keras.PolicyCallback.from_config(config)
    assert rebuilt.get_config() == callback.get_config()
    assert from_config(config["policy"]).get_config() == callback.policy.get_config()


def test_state_dict_round_trips_and_refuses_another_policy():
    callback = accelat_keras.PolicyCallback(OneCycle(0.1, total_steps=20), interval="batch")
    for _ in range(7):
        callback.policy.step()
    state = json.loads(json.dumps(callback.state_dict()))
    resumed = accelat_keras.PolicyCallback(OneCycle(0.1, total_steps=20), interval="batch")
    resumed.load_state_dict(state)
    assert resumed.policy.t == 7 and resumed.policy.hyper == callback.policy.hyper
    other = accelat_keras.PolicyCallback(Constant(0.1))
    with pytest.raises(ValueError, match="is for policy 'OneCycle', cannot load it into Constant"):
        other.load_state_dict(state)
    assert other.policy.t == 0


def test_momentum_reaches_accelat_sgd_inside_a_loss_scale_optimizer():
    inner = accelat_keras.SGD(learning_rate=1.0, momentum=0.5)
    model = one_weight_model(keras.optimizers.LossScaleOptimizer(inner))
    policy = OneCycle(0.1, total_steps=4, momentum=(0.8, 0.9))
    x, y = ones(2)
    model.fit(
        x,
        y,
        batch_size=1,
        verbose=0,
        callbacks=[accelat_keras.PolicyCallback(policy, "loss", "batch")],
    )
    assert float(inner.momentum_variable) == np.float32(policy.at(2).momentum)
    assert float(inner.learning_rate) == np.float32(policy.at(2).lr)


#: Run in a fresh TensorFlow process: two logical CPUs must be configured before TF
#: initialises its devices, so one MirroredStrategy has two replicas to keep in step.
MIRRORED_RUN = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import accelat_keras
from accelat_core import OneCycle
from keras_helpers import one_weight_model, ones

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = one_weight_model(accelat_keras.SGD(learning_rate=1.0, momentum=0.9))
optimizer = model.optimizer
assert isinstance(optimizer.learning_rate.value, tf.distribute.DistributedValues)
seen = []

def replicas(variable):
    return [float(v.numpy()) for v in variable.value.values]

class Read(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        seen.append([replicas(optimizer.learning_rate), replicas(optimizer.momentum_variable)])

x, y = ones(16)
callback = accelat_keras.PolicyCallback(OneCycle(0.1, total_steps=8), interval="batch")
model.fit(x, y, batch_size=2, shuffle=False, verbose=0, callbacks=[callback, Read()])
kernels = [float(v.numpy()[0, 0]) for v in model.layers[0].kernel.value.values]
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "seen": seen, "kernels": kernels}))
"""


@pytest.mark.skipif(
    bool(os.environ.get("ACCELAT_KERAS_OTHER_BACKEND_RUN")),
    reason="a TensorFlow subprocess of its own; run once, from the main run",
)
def test_mirrored_variables_on_two_replicas_get_every_value():
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, "-c", MIRRORED_RUN], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    policy = OneCycle(0.1, total_steps=8)
    hypers = [policy.at(t) for t in range(8)]
    # every replica holds the policy's value at every batch, not only the first one
    assert result["seen"] == [[_f32([h.lr] * 2), _f32([h.momentum] * 2)] for h in hypers]
    # and both replicas' updates used them: SGD's m = mu m - lr g; w += m, by hand
    f = np.float32
    w, m = f(1.0), f(0.0)
    for h in hypers:
        m = f(h.momentum) * m - f(GRADIENT) * f(h.lr)
        w = w + m
    assert result["kernels"] == pytest.approx([float(w)] * 2, rel=1e-6)
