"""accelat_optax.schedule / momentum_schedule: the shared table, inside jit and optax.

Conformance with optax's own schedules where the definitions overlap, with the one
convention that differs stated and pinned: torch's (and our) one-cycle of ``total_steps``
steps reaches its peak at step ``pct_start * total_steps - 1`` and its floor at
``total_steps - 1``, whereas ``optax.cosine_onecycle_schedule(transition_steps=n)`` reaches
them at ``int(pct_start * n)`` and ``n``: ``OneCycle(total_steps=n + 1)`` is optax's
``n`` with ``pct_start`` chosen so that the peak lands on the same step, whenever
``pct_start * total_steps`` is a whole number (torch's phases may end between steps;
optax's boundaries are integers).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings

import accelat_optax
from accelat_core import (
    AccelAT,
    Constant,
    Cyclical,
    ExponentialDecay,
    LinearDecay,
    OneCycle,
    StepDecay,
    WarmRestarts,
    join,
    warmup,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from strategies_fixed import FIXED_SHAPES

GRADIENT = np.float32(0.5)
#: Steps tabulated for a random policy of each fixed-shape kind.
STEPS = 50


def _f32(values):
    return np.asarray(values, dtype=np.float32)


@pytest.mark.parametrize(
    ("policy", "steps"),
    [
        (OneCycle(0.3, total_steps=17), None),
        (warmup(OneCycle(0.3, total_steps=9), steps=3), None),
        (Cyclical(0.01, 0.1, step_size_up=4), 25),
        (StepDecay(0.1, milestones=[3, 7], factor=0.1), 10),
        (Constant(0.05), None),
    ],
)
def test_every_count_equals_at_t_in_float32_jitted_and_holds_after_the_table(policy, steps):
    lr = accelat_optax.schedule(policy, steps=steps)
    last = steps if steps is not None else policy.horizon
    counts = [*range(last + 1), last + 1, last + 1000]
    expected = _f32([policy.at(min(t, last)).lr for t in counts])
    np.testing.assert_array_equal(np.asarray(lr(jnp.asarray(counts))), expected)
    jitted = jax.jit(lr)
    assert [float(jitted(t)) for t in counts] == expected.tolist()
    assert float(lr(np.int32(-5))) == expected[0]  # clamped, never wrapped
    if policy.at(0).momentum is not None:
        momentum = accelat_optax.momentum_schedule(policy, steps=steps)
        expected = _f32([policy.at(min(t, last)).momentum for t in counts])
        np.testing.assert_array_equal(np.asarray(jax.jit(momentum)(jnp.asarray(counts))), expected)


@pytest.mark.parametrize("kind", list(FIXED_SHAPES))
def test_every_fixed_shape_kind_equals_at_t_in_float32(kind):
    # Each example compiles a lookup for its own table length (~0.1 s): a few per kind.
    @settings(max_examples=5)
    @given(policy=FIXED_SHAPES[kind])
    def check(policy):
        counts = jnp.arange(STEPS + 3)
        at = [policy.at(min(t, STEPS)) for t in range(STEPS + 3)]
        lrs = accelat_optax.schedule(policy, steps=STEPS)(counts)
        np.testing.assert_array_equal(np.asarray(lrs), _f32([h.lr for h in at]))
        if all(h.momentum is not None for h in at):
            momenta = accelat_optax.momentum_schedule(policy, steps=STEPS)(counts)
            np.testing.assert_array_equal(np.asarray(momenta), _f32([h.momentum for h in at]))

    check()


def test_optax_and_keras_read_the_same_table_bit_for_bit():
    import keras

    import accelat_keras

    policy = warmup(OneCycle(0.3, total_steps=40, momentum=None), steps=5)
    ours = np.asarray(accelat_optax.schedule(policy)(jnp.arange(50)))
    keras_schedule = accelat_keras.PolicySchedule(policy)
    theirs = [float(keras.ops.convert_to_numpy(keras_schedule(k))) for k in range(50)]
    assert ours.tolist() == theirs


def test_accelat_optax_imports_neither_keras_nor_tensorflow_nor_torch():
    code = (
        "import sys, accelat_optax; "
        "print(sorted({'keras', 'tensorflow', 'torch'} & set(sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("total_steps", "pct_start", "div_factor", "final_div_factor"),
    [(100, 0.3, 25.0, 1e4), (40, 0.5, 10.0, 100.0), (20, 0.25, 4.0, 3.0)],
)
def test_one_cycle_equals_optax_cosine_onecycle_one_step_longer(
    total_steps, pct_start, div_factor, final_div_factor
):
    policy = OneCycle(0.2, total_steps, pct_start, div_factor, final_div_factor, momentum=None)
    # torch's first phase ends at pct_start * total_steps - 1, on a step only when that is
    # an integer (as here): otherwise the phases have fractional lengths optax cannot take.
    peak = round(pct_start * total_steps) - 1
    n = total_steps - 1
    # int(pct * n) must land on `peak`: aim half a step past it.
    theirs = optax.cosine_onecycle_schedule(
        n, 0.2, pct_start=(peak + 0.5) / n, div_factor=div_factor,
        final_div_factor=final_div_factor,
    )  # fmt: skip
    counts = jnp.arange(total_steps + 5)
    ours = np.asarray(accelat_optax.schedule(policy)(counts))
    # optax's piecewise schedules take one count at a time, and compute in float32: near
    # the floor its cosine loses digits relative to the peak, hence the absolute part.
    theirs = np.asarray(jax.vmap(theirs)(counts))
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=0.2 * 2**-23)
    assert ours.argmax() == peak
    # the conventions really differ: optax's own transition_steps=total_steps peaks a step
    # later (at pct_start * total_steps)
    same_n = optax.cosine_onecycle_schedule(
        total_steps, 0.2, pct_start, div_factor, final_div_factor
    )
    assert int(jnp.argmax(jax.vmap(same_n)(counts))) == peak + 1


@pytest.mark.parametrize(
    ("period", "period_mult", "peak_decay", "lr_min"),
    [(10, 1.0, 1.0, 0.0), (4, 2.0, 1.0, 0.001), (5, 2.0, 0.5, 0.002)],
)
def test_warm_restarts_equal_optax_sgdr(period, period_mult, peak_decay, lr_min):
    policy = WarmRestarts(0.1, period, lr_min, period_mult, peak_decay)
    cycles, lengths, peaks = [], [], []
    for i in range(4):
        length = int(period * period_mult**i)
        peak = lr_min + (0.1 - lr_min) * peak_decay**i
        cycles.append(
            {"init_value": peak, "peak_value": peak, "decay_steps": length,
             "warmup_steps": 0, "end_value": lr_min}
        )  # fmt: skip
        lengths.append(length)
        peaks.append(peak)
    steps = sum(lengths) - 1
    counts = jnp.arange(steps + 1)
    ours = np.asarray(accelat_optax.schedule(policy, steps=steps)(counts))
    theirs = np.asarray(jax.vmap(optax.sgdr_schedule(cycles))(counts))
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=0.1 * 2**-23)
    # each restart starts at its peak
    starts = np.cumsum([0, *lengths[:-1]])
    np.testing.assert_allclose(ours[starts], _f32(peaks), rtol=1e-6)


@pytest.mark.parametrize(
    ("rate", "decay_steps", "staircase"), [(0.9, 1, False), (0.5, 10, False), (0.5, 7, True)]
)
def test_exponential_decay_equals_optax_exponential_decay(rate, decay_steps, staircase):
    policy = ExponentialDecay(0.1, rate, decay_steps, staircase)
    counts = jnp.arange(120)
    ours = np.asarray(accelat_optax.schedule(policy, steps=119)(counts))
    theirs = np.asarray(
        optax.exponential_decay(0.1, decay_steps, rate, staircase=staircase)(counts)
    )
    # optax raises the float32-rounded rate to the power p, so its relative error grows by
    # up to 2**-24 per unit of p; ours is rounded to float32 once.
    p = np.asarray(counts) // decay_steps if staircase else np.asarray(counts) / decay_steps
    tolerance = 2e-6 + p * 2**-24
    assert np.all(np.abs(ours - theirs) <= tolerance * theirs), np.max(np.abs(ours / theirs - 1))


def _train(optimizer, steps):
    """``steps`` jitted updates of one weight under the constant gradient GRADIENT."""
    params = jnp.ones(())
    state = optimizer.init(params)

    @jax.jit
    def update(params, state):
        updates, state = optimizer.update(jnp.full((), GRADIENT), state, params)
        return optax.apply_updates(params, updates), state

    weights = []
    for _ in range(steps):
        params, state = update(params, state)
        weights.append(float(params))
    return weights


def test_sgd_weight_follows_scheduled_lr_and_momentum_inside_jit():
    policy = OneCycle(0.2, total_steps=8, pct_start=0.5, momentum=(0.5, 0.95))
    sgd = optax.inject_hyperparams(optax.sgd)(
        learning_rate=accelat_optax.schedule(policy),
        momentum=accelat_optax.momentum_schedule(policy),
    )
    weights = _train(sgd, 10)

    def by_hand(momenta):
        # optax.sgd: m = g + mu * m; w += -lr * m (update k uses at(k), held from step 7)
        w, m, out = np.float32(1.0), np.float32(0.0), []
        for k in range(10):
            lr = np.float32(policy.at(k).lr)
            m = GRADIENT + np.float32(momenta[k]) * m
            w = w + (-lr) * m
            out.append(float(w))
        return out

    momenta = [policy.at(k).momentum for k in range(10)]
    expected = by_hand(momenta)
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    frozen = by_hand([momenta[0]] * 10)
    assert np.max(np.abs(np.subtract(frozen, expected))) > 1e-3


def test_adam_b1_schedule_matches_optax_adam_rebuilt_with_each_steps_values():
    policy = OneCycle(0.05, total_steps=8, pct_start=0.5, momentum=(0.5, 0.95))
    adam = optax.inject_hyperparams(optax.adam)(
        learning_rate=accelat_optax.schedule(policy), b1=accelat_optax.momentum_schedule(policy)
    )
    weights = _train(adam, 8)

    # The reference: optax's own adam, rebuilt at each step with that step's values (its
    # state carries over, since only the hyperparameters change), jitted the same way.
    @jax.jit
    def reference(lr, b1, params, state):
        updates, state = optax.adam(lr, b1=b1).update(jnp.full((), GRADIENT), state, params)
        return optax.apply_updates(params, updates), state

    params = jnp.ones(())
    state = optax.adam(1.0).init(params)
    expected = []
    for k in range(8):
        h = policy.at(k)
        params, state = reference(np.float32(h.lr), np.float32(h.momentum), params, state)
        expected.append(float(params))
    # Two differently compiled programs: XLA may round a few float32 ulps apart per step.
    np.testing.assert_allclose(weights, expected, rtol=4e-6)
    frozen = optax.inject_hyperparams(optax.adam)(
        learning_rate=accelat_optax.schedule(policy), b1=float(np.float32(policy.at(0).momentum))
    )
    assert np.max(np.abs(np.subtract(_train(frozen, 8), expected))) > 1e-3


def test_metric_driven_policy_is_rejected_with_the_controller_named():
    policy = AccelAT(lr_max=0.1, min_lr=0.01, min_gain=0.01, factor=0.5, window=2)
    with pytest.raises(TypeError, match=r"metric-driven.*accelat_optax\.Controller"):
        accelat_optax.schedule(policy)
    with pytest.raises(TypeError, match=r"metric-driven.*accelat_optax\.Controller"):
        accelat_optax.momentum_schedule(policy)


def test_momentum_schedule_of_a_policy_without_momentum_names_the_step():
    with pytest.raises(ValueError, match=r"momentum=None at t=0"):
        accelat_optax.momentum_schedule(LinearDecay(0.1, 0.01, total_steps=5))
    gap = join([(OneCycle(0.1, total_steps=4), 3), (Constant(0.01), None)])
    with pytest.raises(ValueError, match=r"momentum=None at t=3"):
        accelat_optax.momentum_schedule(gap, steps=6)


def test_unending_policy_needs_steps_and_bad_steps_are_rejected():
    with pytest.raises(ValueError, match=r"has no horizon.*accelat_optax\.schedule needs steps="):
        accelat_optax.schedule(WarmRestarts(0.1, period=5))
    for steps in (-1, 1.5, True):
        with pytest.raises(ValueError, match=r"steps must be an integer in \[0, 50000000\)"):
            accelat_optax.schedule(Constant(0.1), steps=steps)
