"""The fixed-shape policies reproduce Keras' own learning-rate schedules.

Keras schedules compute in the dtype of ``initial_learning_rate``, and cast a plain Python
float argument through float32 on the way (0.9 becomes 0.8999999761581421); we hand every
argument as a NumPy float64 so the comparison is to 1e-9 relative, not float32's ~1e-7.
Each schedule is evaluated once on a vector of steps (Keras ops are elementwise), which
keeps the test fast despite the backend's per-call overhead.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelat_core import ExponentialDecay, LinearDecay, StepDecay, WarmRestarts
from accelat_core.policies.exponential_decay import LR_FLOOR

np = pytest.importorskip("numpy")
keras = pytest.importorskip("keras")
schedules = keras.optimizers.schedules

# Keras' schedules compute in float64 on the TensorFlow backend (the dtype of the float64
# arguments); torch's and JAX's backends compute them in float32, where 1e-9 means nothing.
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason=f"float64 schedules only on TensorFlow, not {keras.backend.backend()}",
)

conformance = settings(max_examples=min(settings().max_examples, 100))

STEPS = np.arange(0, 400, dtype=np.float64)
lrs = st.floats(min_value=1e-5, max_value=5.0)


def keras_values(schedule) -> list[float]:
    out = np.asarray(keras.ops.convert_to_numpy(schedule(STEPS)))
    assert out.dtype == np.float64  # a float32 result would make 1e-9 meaningless
    return out.tolist()


def assert_same(policy, expected: list[float], *, lr_scale: float) -> None:
    # abs_tol: Keras writes ``lr0 * ((1 - alpha) * c + alpha)``, we write
    # ``lr_min + (lr_max - lr_min) * c``; the two differ by a few ulps of lr_max.
    for t, lr in enumerate(expected):
        ours = policy.at(t).lr
        assert math.isclose(ours, lr, rel_tol=1e-9, abs_tol=1e-14 * lr_scale), (t, ours, lr)


@conformance
@given(
    lr_max=lrs,
    period=st.integers(1, 60) | st.floats(min_value=1.0, max_value=60.0),
    # Not next to 1: Keras' 1 - t / period * (1 - t_mul) rounds the clock away as t_mul -> 1
    # (t_mul = 1 + 2**-52 puts step 2 of period 3 into restart 1).
    period_mult=st.just(1.0) | st.sampled_from([2.0, 3.0]) | st.floats(1.01, 3.0),
    peak_decay=st.just(1.0) | st.floats(min_value=0.01, max_value=1.0),
    alpha=st.just(0.0) | st.floats(min_value=0.0, max_value=1.0),
)
def test_warm_restarts_matches_keras_cosine_decay_restarts(
    lr_max, period, period_mult, peak_decay, alpha
):
    # Keras' m_mul multiplies only the (1 - alpha) part, i.e. the amplitude above
    # alpha * lr0 = lr_min: the same as peak_decay, so alpha and m_mul are tested together.
    policy = WarmRestarts(
        lr_max, period, lr_min=alpha * lr_max, period_mult=period_mult, peak_decay=peak_decay
    )
    f64 = np.float64
    schedule = schedules.CosineDecayRestarts(
        f64(lr_max), f64(period), t_mul=f64(period_mult), m_mul=f64(peak_decay), alpha=f64(alpha)
    )
    expected = keras_values(schedule)
    lr_min = alpha * lr_max
    restarts = restart_steps(period, period_mult, len(expected))
    if float(period).is_integer() and period_mult in (1.0, 2.0):
        # Keras' restart index is exact here (t / period, log(2**i) / log(2)): no tolerance
        # at the boundaries; each restart step starts the new restart, in both.
        for t, i in restarts:
            peak = lr_min + (lr_max - lr_min) * peak_decay**i
            assert math.isclose(policy.at(t).lr, peak, rel_tol=1e-9, abs_tol=1e-14 * lr_max)
    else:
        # Elsewhere Keras takes the restart index from floor(log(1 + t / period * (t_mul - 1))
        # / log(t_mul)), which can land one restart early at a restart step (period=1,
        # t_mul=3, t=1: Keras gives the end of restart 0, lr_min; torch and we give the
        # start of restart 1, pinned below); and where a restart falls within rounding of a
        # step (period=0.5000000000000001, t_mul=3: restart 6 at 182.00000000000004) either
        # side is a fair answer. So at a step within 1e-9 of restart i, each of the two may
        # be the old end (lr_min) or the new peak.
        for t, i in restarts:
            sides = (lr_min, lr_min + (lr_max - lr_min) * peak_decay**i)
            ours = policy.at(t).lr
            if all(
                any(math.isclose(v, side, rel_tol=1e-9, abs_tol=1e-14 * lr_max) for side in sides)
                for v in (ours, expected[t])
            ):
                expected[t] = ours
    assert_same(policy, expected, lr_scale=lr_max)


def test_keras_lands_one_restart_early_where_we_restart_on_the_step():
    # period 1, t_mul 3: restarts 1..5 start at steps 1, 4, 13, 40, 121. Keras' logarithm
    # puts steps 1, 4, 40 and 121 at the end of the previous restart (lr_min = 0); we start
    # the new restart there. Every other step agrees.
    f64 = np.float64
    schedule = schedules.CosineDecayRestarts(f64(1.0), f64(1.0), t_mul=f64(3.0), alpha=f64(0.0))
    expected = keras_values(schedule)
    policy = WarmRestarts(1.0, period=1, period_mult=3)
    early = (1, 4, 40, 121)
    for t in early:
        assert expected[t] == 0.0 and policy.at(t).lr == 1.0, t
    assert expected[13] == policy.at(13).lr == expected[364] == policy.at(364).lr == 1.0
    for t in early:
        expected[t] = 1.0
    assert_same(policy, expected, lr_scale=1.0)


def restart_steps(period: float, mult: float, n: int) -> list[tuple[int, int]]:
    """(t, i) for each integer step t < n within 1e-9 (relative) of restart i's start."""
    near = []
    for t in range(1, n):
        # The restart index nearest to t on the continuous clock, then its exact start.
        i = round(t / period if mult == 1 else math.log1p(t / period * (mult - 1)) / math.log(mult))
        start = period * i if mult == 1 else period * (mult**i - 1) / (mult - 1)
        if i >= 1 and math.isclose(t, start, rel_tol=1e-9):
            near.append((t, i))
    return near


@conformance
@given(
    lr=lrs,
    rate=st.floats(min_value=1e-3, max_value=1.0),
    decay_steps=st.integers(1, 50),
    staircase=st.booleans(),
)
def test_exponential_decay_matches_keras_exponential_decay(lr, rate, decay_steps, staircase):
    policy = ExponentialDecay(lr, rate, decay_steps, staircase)
    schedule = schedules.ExponentialDecay(
        np.float64(lr), decay_steps, np.float64(rate), staircase=staircase
    )
    expected = keras_values(schedule)
    # Where rate ** p or the product underflows to a subnormal, TF flushes it to 0 and
    # Keras returns 0; we stay in [LR_FLOOR, lr * LR_FLOOR]. Elsewhere: the same value.
    normal = []
    for t, v in enumerate(expected):
        p = t // decay_steps if staircase else t / decay_steps
        if rate**p < LR_FLOOR or lr * rate**p < LR_FLOOR:
            assert LR_FLOOR <= policy.at(t).lr <= max(lr, 1.0) * LR_FLOOR, (t, policy.at(t))
        else:
            normal.append((t, v))
    for t, v in normal:
        assert math.isclose(policy.at(t).lr, v, rel_tol=1e-9), (t, policy.at(t), v)


@conformance
@given(
    lr=lrs,
    milestones=st.lists(st.integers(1, 350), min_size=1, max_size=5, unique=True).map(sorted),
    factor=st.floats(min_value=0.01, max_value=1.0),
)
def test_step_decay_matches_keras_piecewise_constant_decay(lr, milestones, factor):
    policy = StepDecay(lr, milestones, factor)
    # The values are the definition, lr * factor**k; what Keras checks is where they
    # switch. Keras takes values[k + 1] once step > boundaries[k]; we switch at step ==
    # milestone, so the boundaries sit one step before the milestones.
    values = [np.float64(lr * factor**k) for k in range(len(milestones) + 1)]
    schedule = schedules.PiecewiseConstantDecay([m - 1 for m in milestones], values)
    assert_same(policy, keras_values(schedule), lr_scale=0.0)


@conformance
@given(lr_start=lrs, lr_end=lrs, total_steps=st.integers(1, 350))
def test_linear_decay_matches_keras_polynomial_decay_of_power_one(lr_start, lr_end, total_steps):
    # Keras: (initial - end) * (1 - min(t, decay_steps) / decay_steps) ** power + end, also
    # for end > initial (a ramp up); it holds end_learning_rate from decay_steps on.
    f64 = np.float64
    schedule = schedules.PolynomialDecay(
        f64(lr_start), total_steps, end_learning_rate=f64(lr_end), power=f64(1.0)
    )
    expected = keras_values(schedule)
    policy = LinearDecay(lr_start, lr_end, total_steps)
    assert_same(policy, expected, lr_scale=max(lr_start, lr_end))
    assert all(policy.at(t).lr == lr_end for t in range(total_steps, len(expected)))
