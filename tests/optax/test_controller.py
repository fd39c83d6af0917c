"""accelat_optax.Controller: the policy decides on the host, the jitted update reads it.

A training loop with AccelAT gives the lrs a fresh core AccelAT gives when fed the same
metrics, with one compilation of the update; a resumed run continues bit for bit; every
opt_state the Controller cannot drive is an error that names what it found.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from accelat_core import AccelAT, Anneal, Constant, OneCycle
from accelat_optax import Controller

ACCELAT = {"lr_max": 0.5, "min_lr": 0.01, "min_gain": 0.05, "factor": 0.5, "window": 1}
GRADIENT = np.float32(0.5)


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(size=(n, 4)) + y[:, None]).astype("float32"), y


TRAIN, VALIDATION = _blobs(96, 0), _blobs(48, 1)


def _loss(params, x, y):
    logits = x @ params["w"] + params["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _accuracy(params, x, y) -> float:
    return float(((x @ params["w"] + params["b"]).argmax(-1) == y).mean())


def _make_update(optimizer):
    @jax.jit
    def update(params, state, x, y):
        grads = jax.grad(_loss)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return update


def _epochs(controller, update, params, state, epochs):
    """Train ``epochs`` epochs of 3 batches; record each update's lr and each epoch's
    validation accuracy (the metric the controller then steps with)."""
    x, y = TRAIN
    lrs, metrics = [], []
    for _ in range(epochs):
        for batch in range(3):
            rows = slice(32 * batch, 32 * batch + 32)
            params, state = update(params, state, x[rows], y[rows])
            lrs.append(float(state.hyperparams["learning_rate"]))  # what this update used
        metrics.append(_accuracy(params, *VALIDATION))
        state = controller.step(state, jnp.asarray(metrics[-1]))
    return params, state, lrs, metrics


def _start():
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0, momentum=0.9)
    params = {"w": jnp.zeros((4, 3)), "b": jnp.zeros(3)}
    controller = Controller(AccelAT(**ACCELAT))
    return controller, optimizer, params, controller.apply(optimizer.init(params))


def test_accelat_loop_lrs_equal_a_fresh_core_accelat_fed_the_same_metrics():
    controller, optimizer, params, state = _start()
    update = _make_update(optimizer)
    _, _, lrs, metrics = _epochs(controller, update, params, state, epochs=6)
    replay = AccelAT(**ACCELAT)
    per_epoch = [replay.lr] + [replay.step(m).lr for m in metrics[:-1]]
    assert lrs == [float(np.float32(lr)) for lr in per_epoch for _ in range(3)]
    replay.step(metrics[-1])
    assert controller.state_dict()["policy"] == replay.state_dict()
    assert len(set(per_epoch)) > 1, "min_gain=0.05 should have cut the lr"
    # the written values keep shape and dtype: the update compiled once
    assert update._cache_size() == 1


def test_resume_from_state_dict_continues_bit_for_bit():
    straight, optimizer, params, state = _start()
    whole_params, _, whole_lrs, _ = _epochs(
        straight, _make_update(optimizer), params, state, epochs=6
    )

    controller, optimizer, params, state = _start()
    params, state, first_lrs, _ = _epochs(
        controller, _make_update(optimizer), params, state, epochs=3
    )
    saved = json.loads(json.dumps(controller.state_dict()))
    params, state = jax.device_get((params, state))  # as a checkpoint would hold them
    resumed = Controller(AccelAT(**ACCELAT))
    resumed.load_state_dict(saved)
    params, state, rest_lrs, _ = _epochs(
        resumed, _make_update(optimizer), params, resumed.apply(state), epochs=3
    )
    assert first_lrs + rest_lrs == whole_lrs
    assert resumed.state_dict() == straight.state_dict()
    assert len(set(whole_lrs[9:])) > 1, "a cut after the resume point is what is checked"
    for name in ("w", "b"):
        np.testing.assert_array_equal(params[name], whole_params[name])


def test_a_momentum_written_on_the_host_reaches_the_jitted_sgd_update():
    policy = OneCycle(0.2, total_steps=8, pct_start=0.5, momentum=(0.5, 0.95))
    controller = Controller(OneCycle(**policy.get_config()))
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0, momentum=0.9)
    params = jnp.ones(())
    state = controller.apply(optimizer.init(params))

    @jax.jit
    def update(params, state):
        updates, state = optimizer.update(jnp.full((), GRADIENT), state, params)
        return optax.apply_updates(params, updates), state

    weights = []
    for _ in range(8):
        params, state = update(params, state)
        weights.append(float(params))
        state = controller.step(state)
    f = np.float32
    w, m, expected = f(1.0), f(0.0), []
    for k in range(8):  # optax.sgd: m = g + mu * m; w += -lr * m
        m = GRADIENT + f(policy.at(k).momentum) * m
        w = w + (-f(policy.at(k).lr)) * m
        expected.append(float(w))
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert update._cache_size() == 1


def test_b1_of_the_adam_family_is_driven_and_nested_states_are_found():
    optimizer = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.inject_hyperparams(optax.adamw)(learning_rate=1.0, b1=0.9),
    )
    controller = Controller(OneCycle(0.1, total_steps=10, momentum=(0.8, 0.9)))
    state = controller.step(optimizer.init(jnp.zeros(2)))
    hyperparams = state[1].hyperparams
    assert float(hyperparams["learning_rate"]) == np.float32(controller.policy.at(1).lr)
    assert float(hyperparams["b1"]) == np.float32(controller.policy.at(1).momentum)
    assert float(hyperparams["b2"]) == np.float32(0.999)  # untouched


def test_the_deprecated_inject_hyperparams_state_is_driven_too():
    state = optax.InjectHyperparamsState(
        count=jnp.zeros([], jnp.int32), hyperparams={"learning_rate": jnp.ones(())}, inner_state=()
    )
    written = Controller(Constant(0.25)).apply(state)
    assert isinstance(written, optax.InjectHyperparamsState)
    assert float(written.hyperparams["learning_rate"]) == 0.25


def test_opt_state_without_injected_hyperparameters_names_what_it_found():
    state = optax.sgd(0.1, momentum=0.9).init(jnp.zeros(2))
    with pytest.raises(TypeError, match=r"no injected hyperparameters: found tuple\(TraceState, "
                       r"EmptyState\).*optax\.inject_hyperparams\(optax\.sgd\)"):  # fmt: skip
        Controller(Constant(0.1)).apply(state)


def test_two_injected_states_are_refused():
    inject = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    state = optax.chain(inject, inject).init(jnp.zeros(2))
    with pytest.raises(TypeError, match="holds 2 inject_hyperparams states"):
        Controller(Constant(0.1)).apply(state)


def test_a_policy_driving_momentum_needs_momentum_or_b1_injected():
    state = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1).init(jnp.zeros(2))
    with pytest.raises(
        ValueError, match=r"OneCycle drives momentum.*are \['learning_rate'\].*momentum=0\.9"
    ):
        Controller(OneCycle(0.1, total_steps=10)).apply(state)


def test_a_missing_learning_rate_is_named_with_the_hyperparameters_found():
    state = optax.inject_hyperparams(optax.scale_by_adam)(b1=0.9).init(jnp.zeros(2))
    with pytest.raises(ValueError, match=r"are \['b1', 'b2', 'eps', 'eps_root'\], without "
                       r"'learning_rate'"):  # fmt: skip
        Controller(Constant(0.1)).apply(state)


def test_a_scheduled_learning_rate_is_refused_because_optax_would_overwrite_it():
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=optax.constant_schedule(0.1))
    with pytest.raises(ValueError, match=r"'learning_rate' was injected as a schedule.*number"):
        Controller(Constant(0.1)).apply(optimizer.init(jnp.zeros(2)))


def test_metric_driven_step_without_a_metric_is_an_error_and_changes_nothing():
    controller, _, _, state = _start()
    with pytest.raises(ValueError, match=r"AccelAT is metric-driven.*step\(opt_state, metric\)"):
        controller.step(state)
    assert controller.state_dict()["policy"] == AccelAT(**ACCELAT).state_dict()


def test_should_stop_follows_the_policy():
    policy = AccelAT(0.1, 0.05, min_gain=1.0, factor=0.5, window=1, warmup=0, cooldown=0,
                     stop_patience=1)  # fmt: skip
    controller = Controller(policy)
    state = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1).init(jnp.zeros(1))
    stops = []
    for _ in range(4):
        state = controller.step(state, 0.5)
        stops.append(controller.should_stop)
    assert stops == [False, False, True, True]
    assert float(state.hyperparams["learning_rate"]) == np.float32(0.05)


def test_bad_state_dicts_and_policies_are_refused():
    controller = Controller(AccelAT(**ACCELAT))
    with pytest.raises(ValueError, match="format must be 1 or 2, got None"):
        controller.load_state_dict({"policy": {}})
    with pytest.raises(ValueError, match="format must be 1 or 2, got 3"):
        controller.load_state_dict({"format": 3, "policy": {}})
    with pytest.raises(ValueError, match="keys format, policy, updates, updates_per_evaluation"):
        controller.load_state_dict({"format": 2, "policy": {}})
    with pytest.raises(ValueError, match=r"update counts must be integers >= 0, got \[-1, 0\]"):
        state = {**controller.state_dict(), "updates": -1}
        controller.load_state_dict(state)
    with pytest.raises(ValueError, match="is for policy 'Constant'"):
        controller.load_state_dict(Controller(Constant(0.1)).state_dict())
    with pytest.raises(TypeError, match=r"policy must be an accelat_core Policy, got 0\.1"):
        Controller(0.1)


def test_step_update_follows_the_anneal_update_by_update_and_resumes_exactly():
    def policy():
        # A cut at evaluation 1 reaches the floor, the decision at 2 starts an anneal of
        # round(1.0 * 3) = 3 evaluations (min_gain 1e9: every decision finds too little).
        return AccelAT(0.1, min_lr=0.05, min_gain=1e9, factor=0.5, window=1, warmup=0,
                       cooldown=0, stop_patience=1, anneal=1.0, anneal_shape="linear")  # fmt: skip

    updates = 4
    closed = Anneal(0.05, 3 * updates, shape="linear")
    expected = [0.1] * 2 * updates + [0.05] * updates + [closed.at(t).lr for t in range(12)]

    def run(controller, state, evaluations, lrs, first_update=0):
        for _ in range(evaluations):
            for _ in range(first_update, updates):
                lrs.append(float(state.hyperparams["learning_rate"]))
                state = controller.step_update(state)
            first_update = 0
            state = controller.step(state, 0.5)
        return state

    init = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0).init(jnp.zeros(1))
    whole = Controller(policy())
    lrs: list[float] = []
    run(whole, whole.apply(init), 6, lrs)
    assert lrs == [float(np.float32(v)) for v in expected] and whole.should_stop
    # Saved after 2 updates of the anneal's second evaluation, then resumed elsewhere.
    first = Controller(policy())
    head: list[float] = []
    state = run(first, first.apply(init), 4, head)
    for _ in range(2):
        head.append(float(state.hyperparams["learning_rate"]))
        state = first.step_update(state)
    resumed = Controller(policy())
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    tail: list[float] = []
    run(resumed, resumed.apply(init), 2, tail, first_update=2)
    assert head + tail == lrs
