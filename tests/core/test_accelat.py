"""AccelAT: the cut rule, its gains, its stopping rule, bad metrics and bad arguments."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from strategies_metric import accelat_configs, accelat_policies, metric_histories, wide_metrics

from accelat_core import AccelAT, Decision, from_config

BASE = {"lr_max": 1e-3, "min_lr": 1e-6, "min_gain": 0.025, "factor": 0.8, "window": 5}


def run(policy: AccelAT, metrics: list[float]) -> list[float]:
    return [policy.step(m).lr for m in metrics]


def test_flat_curve_cuts_after_evaluations_6_11_to_46_like_released_code() -> None:
    p = AccelAT(**BASE)
    lrs = run(p, [0.5] * 50)
    cuts = list(range(6, 47, 5))
    assert [d.evaluation for d in p.decisions] == cuts
    expected, lr = [], 1e-3
    for e in range(50):
        if e in cuts:
            lr = lr * 0.8
        expected.append(lr)
    assert lrs == expected
    assert all(d.gain == 0.0 for d in p.decisions)


def released_code_lrs(config: dict, metrics: list[float]) -> list[float]:
    """The released code's rule: window moving mean minus the previous epoch's, times window.

    Evaluated in exact rational arithmetic, so ties with min_gain are decided by the maths
    rather than by the rounding of the moving means.
    """
    w, lr, last, out = config["window"], config["lr_max"], None, []
    exact = [Fraction(m) for m in metrics]
    for e in range(len(metrics)):
        if e >= w + 1 and (last is None or e - last >= w):
            now = sum(exact[e - w + 1 : e + 1]) / w
            before = sum(exact[e - w : e]) / w
            if (now - before) * w < Fraction(config["min_gain"]):
                lr = max(lr * config["factor"], config["min_lr"])
                last = e
        out.append(lr)
    return out


# Metrics on a 1/64 grid make a_e - a_{e-w} exact in floats and ties with min_gain common.
@given(
    st.lists(st.integers(0, 64), min_size=1, max_size=60).map(lambda xs: [x / 64 for x in xs]),
    st.integers(1, 6),
    st.sampled_from([0.0, 1 / 64, 2 / 64, 5 / 64]),
)
def test_endpoint_gain_matches_released_moving_mean_rule(metrics, window, min_gain) -> None:
    config = {**BASE, "window": window, "min_gain": min_gain}
    assert run(AccelAT(**config), metrics) == released_code_lrs(config, metrics)


@given(accelat_policies(), metric_histories())
def test_lr_never_rises_and_each_change_is_a_factor_cut_or_the_lr_min_clamp(policy, metrics):
    cfg = policy.get_config()
    previous = policy.lr
    assert previous == cfg["lr_max"]
    for m in metrics:
        lr = policy.step(m).lr
        assert cfg["min_lr"] <= lr <= previous
        if lr != previous:
            assert lr == previous * cfg["factor"] or (
                lr == cfg["min_lr"] and previous * cfg["factor"] < cfg["min_lr"]
            )
        previous = lr


@given(accelat_policies(), metric_histories())
def test_cut_decisions_respect_warmup_cooldown_and_history(policy, metrics):
    cfg = policy.get_config()
    w = cfg["window"]
    cooldown = w if cfg["cooldown"] is None else cfg["cooldown"]
    warmup = w + 1 if cfg["warmup"] is None else cfg["warmup"]
    needed = 2 * w if cfg["gain"] == "windows" else w + 1
    for m in metrics:
        policy.step(m)
    evaluations = [d.evaluation for d in policy.decisions]
    assert all(e >= warmup and e >= needed - 1 for e in evaluations)
    assert all(b - a >= cooldown for a, b in pairwise(evaluations))
    assert all(d.gain < cfg["min_gain"] for d in policy.decisions)
    # Every recorded decision is a cut of the lr in force (or the clamp at lr_min).
    for d in policy.decisions:
        assert d.new_lr == max(d.old_lr * cfg["factor"], cfg["min_lr"])


@given(accelat_policies(), metric_histories())
def test_mode_min_on_negated_metrics_mirrors_mode_max(policy, metrics):
    cfg = policy.get_config()
    mirror = AccelAT(**{**cfg, "mode": "min" if cfg["mode"] == "max" else "max"})
    assert run(policy, metrics) == run(mirror, [-m for m in metrics])
    assert policy.decisions == mirror.decisions


EDGE = {**BASE, "window": 1, "cooldown": 0, "warmup": 0, "stop_patience": 1}
HUGE = 1.7e308


@given(
    accelat_configs(),
    st.lists(st.sampled_from([HUGE, -HUGE, 1e308, -1e308, 0.0]) | wide_metrics, max_size=40),
)
@example({**EDGE, "nan_policy": "raise"}, [HUGE, -HUGE, HUGE, 0.0, 0.0])
@example({**EDGE, "nan_policy": "skip", "gain": "windows"}, [-HUGE, HUGE, 0.0, -HUGE, HUGE])
@example({**EDGE, "lr_max": 1e-12, "min_lr": 1e-12, "gain": "slope"}, [HUGE, 0.0, -HUGE])
def test_metrics_across_the_whole_float_range_keep_the_state_plain_json(config, metrics):
    # A gain that overflows (values spanning more than the float range) is refused with a
    # ValueError that leaves the state as it was, or skipped; never recorded as -inf.
    policy = AccelAT(**config)
    for m in metrics:
        before = policy.state_dict()
        call = policy.evaluations + len(policy.skipped)  # a refused metric is not counted
        try:
            policy.step(m)
        except ValueError as exc:
            assert config["nan_policy"] == "raise" and "overflows" in str(exc), exc
            assert f"evaluation {call}" in str(exc)
            assert policy.state_dict() == before
        saved = json.dumps(policy.state_dict(), allow_nan=False)  # plain JSON at every step
        assert all(math.isfinite(d.gain) for d in policy.decisions)
    resumed = AccelAT(**config)
    resumed.load_state_dict(json.loads(saved if metrics else json.dumps(policy.state_dict())))
    assert resumed.state_dict() == policy.state_dict()


def cut_always(gain: str, window: int) -> AccelAT:
    """A policy that cuts at every decision, so ``decisions`` lists every gain it computed."""
    return AccelAT(1.0, 1e-9, 1e9, 0.5, window, cooldown=0, warmup=0, gain=gain)


def test_endpoint_gain_is_newest_minus_window_ago() -> None:
    p = cut_always("endpoint", 2)
    run(p, [1.0, 2.0, 4.0, 8.0, 16.0])
    assert [(d.evaluation, d.gain) for d in p.decisions] == [(2, 3.0), (3, 6.0), (4, 12.0)]


def test_windows_gain_is_difference_of_consecutive_window_means() -> None:
    p = cut_always("windows", 2)
    run(p, [1.0, 2.0, 4.0, 8.0, 16.0])
    # e=3: mean(4, 8) - mean(1, 2) = 4.5; e=4: mean(8, 16) - mean(2, 4) = 9.
    assert [(d.evaluation, d.gain) for d in p.decisions] == [(3, 4.5), (4, 9.0)]


def test_slope_gain_is_least_squares_slope_times_window() -> None:
    p = cut_always("slope", 2)
    run(p, [1.0, 3.0, 4.0])
    # points (0, 1), (1, 3), (2, 4): slope = ((-1)(1) + (1)(4)) / 2 = 1.5, times 2.
    assert [(d.evaluation, d.gain) for d in p.decisions] == [(2, 3.0)]
    q = cut_always("slope", 3)
    run(q, [0.0, 1.0, 4.0, 9.0, 16.0])
    # y = x^2 on x = 0..3: slope = sum((x - 1.5) y) / 5 = 15 / 5 = 3, times 3 = 9;
    # on x = 1..4 (y = 1, 4, 9, 16): sum((x - 1.5) y) = 25 -> 5, times 3 = 15.
    gains = [d.gain for d in q.decisions]
    assert gains == [pytest.approx(9.0, rel=1e-12), pytest.approx(15.0, rel=1e-12)]


def test_mode_min_gain_is_the_decrease() -> None:
    p = AccelAT(1.0, 1e-9, 1e9, 0.5, 2, cooldown=0, warmup=0, mode="min")
    run(p, [5.0, 4.0, 1.0])
    assert p.decisions == [Decision(2, 4.0, 1.0, 0.5)]


def test_clamped_cut_at_lr_min_is_recorded_and_restarts_the_cooldown() -> None:
    p = AccelAT(1.0, 0.5, 0.1, 0.5, 5)
    run(p, [0.0] * 20)
    assert p.decisions == [
        Decision(6, 0.0, 1.0, 0.5),
        Decision(11, 0.0, 0.5, 0.5),
        Decision(16, 0.0, 0.5, 0.5),
    ]


def test_stop_patience_counts_cut_decisions_after_reaching_lr_min() -> None:
    p = AccelAT(1.0, 0.5, 0.1, 0.5, 5, stop_patience=2)
    stops = [(p.step(0.0), p.should_stop)[1] for _ in range(20)]
    # lr reaches lr_min at evaluation 6; the 2 further no-gain decisions are 11 and 16.
    assert stops == [False] * 16 + [True] * 4
    assert not AccelAT(1.0, 0.5, 0.1, 0.5, 5).should_stop


def test_gain_at_or_above_min_gain_keeps_the_lr_and_records_nothing() -> None:
    p = AccelAT(1.0, 0.1, 1.0, 0.5, 1, cooldown=0, warmup=0)
    lrs = run(p, [0.0, 1.0, 2.0, 3.5, 4.0])
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5]
    assert p.decisions == [Decision(4, 0.5, 1.0, 0.5)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_metric_raises_naming_value_and_evaluation(bad) -> None:
    p = AccelAT(**BASE)
    run(p, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=rf"got {bad!r} at evaluation 3"):
        p.step(bad)
    assert p.evaluations == 3


@pytest.mark.parametrize("bad", [None, "0.5", True, [0.5]])
def test_non_number_metric_raises_even_when_skipping(bad) -> None:
    for nan_policy in ("raise", "skip"):
        p = AccelAT(**BASE, nan_policy=nan_policy)
        with pytest.raises(ValueError, match=r"real-number metric.*at evaluation 0"):
            p.step(bad)


def test_skip_ignores_non_finite_metrics_and_records_their_call_index() -> None:
    metrics = [0.5, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    clean = AccelAT(**BASE, nan_policy="skip")
    expected = run(clean, metrics)
    p = AccelAT(**BASE, nan_policy="skip")
    with_nans = [*metrics[:3], math.nan, *metrics[3:7], math.inf, *metrics[7:]]
    lrs = run(p, with_nans)
    assert [lr for i, lr in enumerate(lrs) if i not in (3, 8)] == expected
    assert p.skipped == [3, 8]
    assert p.decisions == clean.decisions
    assert p.state_dict()["state"]["skipped"] == [3, 8]


def test_integer_metrics_are_accepted_as_floats() -> None:
    assert run(AccelAT(**BASE), [1] * 12) == run(AccelAT(**BASE), [1.0] * 12)


def test_resume_mid_window_gives_identical_trajectory() -> None:
    metrics = [0.1 * (i % 7) + 0.01 * i for i in range(40)]
    whole = AccelAT(**BASE, gain="windows", stop_patience=1)
    expected = run(whole, metrics)
    first = AccelAT(**BASE, gain="windows", stop_patience=1)
    head = run(first, metrics[:13])
    saved = json.loads(json.dumps(first.state_dict()))
    resumed = from_config(json.loads(json.dumps(first.to_config())))
    resumed.load_state_dict(saved)
    assert head + run(resumed, metrics[13:]) == expected
    assert resumed.decisions == whole.decisions


def test_state_is_one_dataclass_as_json() -> None:
    p = AccelAT(**BASE)
    run(p, [0.5] * 8)
    assert p.state_dict()["state"] == {
        "lr": 0.0008,
        "history": [0.5] * 6,
        "evaluations": 8,
        "last_drop": 6,
        "at_floor": 0,
        "skipped": [],
        "decisions": [[6, 0.0, 0.001, 0.0008]],
    }


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ({"lr_max": 0.0}, ValueError, r"lr_max must be in \(0, inf\), got 0.0"),
        ({"lr_max": math.nan}, ValueError, r"lr_max must be finite"),
        ({"lr_max": "1"}, TypeError, r"lr_max must be a real number"),
        ({"min_lr": 0.0}, ValueError, r"min_lr must be in \(0, 0.001\], got 0.0"),
        ({"min_lr": 0.01}, ValueError, r"min_lr must be in \(0, 0.001\], got 0.01"),
        ({"min_gain": math.inf}, ValueError, r"min_gain must be finite"),
        ({"factor": 1.0}, ValueError, r"factor must be in \(0, 1\), got 1.0"),
        ({"factor": 0}, ValueError, r"factor must be in \(0, 1\), got 0"),
        ({"window": 0}, ValueError, r"window must be an integer >= 1, got 0"),
        ({"window": 2.0}, TypeError, r"window must be an integer"),
        ({"cooldown": -1}, ValueError, r"cooldown must be an integer >= 0, got -1"),
        ({"warmup": -2}, ValueError, r"warmup must be an integer >= 0, got -2"),
        ({"mode": "maximize"}, ValueError, r"mode must be one of 'max', 'min', got 'maximize'"),
        ({"gain": "mean"}, ValueError, r"gain must be one of 'endpoint', 'windows', 'slope'"),
        ({"stop_patience": 0}, ValueError, r"stop_patience must be an integer >= 1, got 0"),
        ({"nan_policy": "ignore"}, ValueError, r"nan_policy must be one of 'raise', 'skip'"),
    ],
)
def test_bad_argument_error_names_parameter_value_and_range(override, error, message) -> None:
    with pytest.raises(error, match=message):
        AccelAT(**{**BASE, **override})


def test_accelat_emits_no_momentum_and_needs_a_metric() -> None:
    p = AccelAT(**BASE)
    assert AccelAT.needs_metric
    assert p.momentum is None
    assert p.step(0.3).momentum is None


@given(
    accelat_configs(),
    metric_histories().flatmap(
        lambda xs: st.lists(st.sampled_from([math.nan, math.inf, -math.inf]), max_size=5).map(
            lambda bad: [*bad, *xs]
        )
    ),
    st.randoms(use_true_random=False),
    st.data(),
)
def test_skip_mode_resume_with_non_finite_metrics_gives_identical_trajectory(
    config, metrics, rng, data
) -> None:
    config = {**config, "nan_policy": "skip"}
    rng.shuffle(metrics)
    whole = AccelAT(**config)
    expected = run(whole, metrics)
    split = data.draw(st.integers(0, len(metrics)))
    first = AccelAT(**config)
    head = run(first, metrics[:split])
    resumed = AccelAT(**config)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict(), allow_nan=False)))
    assert head + run(resumed, metrics[split:]) == expected
    assert (
        resumed.skipped
        == whole.skipped
        == [i for i, m in enumerate(metrics) if not math.isfinite(m)]
    )
    assert resumed.evaluations == sum(map(math.isfinite, metrics))


def test_an_int_beyond_float_range_is_a_non_finite_metric() -> None:
    with pytest.raises(
        ValueError,
        match=r"^metric must be finite, got 1000*0 at evaluation 1 \(pass nan_policy='skip' "
        r"to ignore such evaluations\)$",
    ):
        p = AccelAT(**BASE)
        p.step(0.5)
        p.step(10**400)
    skipping = AccelAT(**BASE, nan_policy="skip")
    skipping.step(10**400)
    assert (skipping.skipped, skipping.evaluations) == ([0], 0)


def test_an_overflowing_gain_skipped_after_a_nan_records_its_call_index() -> None:
    # Calls: 0 NaN (skipped), 1 accepted, 2 overflows against 1 (skipped), 3 accepted.
    p = AccelAT(1.0, 0.1, 0.0, 0.5, window=1, warmup=0, cooldown=0, nan_policy="skip")
    for m in [math.nan, 1e308, -1e308, 1e308]:
        p.step(m)
    assert (p.skipped, p.evaluations, p.decisions) == ([0, 2], 2, [])


def saved_state() -> tuple[AccelAT, dict]:
    """A run with a skip and two cuts: lr 0.25, history [0.5, 0.5], last_drop 2."""
    p = AccelAT(1.0, 0.1, 0.1, 0.5, window=1, warmup=0, cooldown=0, nan_policy="skip")
    for m in [math.nan, 0.5, 0.5, 0.5]:
        p.step(m)
    return p, json.loads(json.dumps(p.state_dict()))


BIG = 2**53 + 1
BAD_STATES = [
    ({"lr": "x"}, r"^state\['lr'\] must be a real number"),
    ({"lr": 5.0}, r"^state\['lr'\] must be in \[min_lr, lr_max\] = \[0.1, 1.0\], got 5.0$"),
    ({"evaluations": -1}, r"^state\['evaluations'\] must be an integer >= 0, got -1$"),
    (
        {"evaluations": BIG},
        rf"^state\['evaluations'\] must be an integer in \[0, 2\*\*53\], got {BIG}$",
    ),
    ({"history": ["x", 0.5]}, r"^state\['history\[\]'\] must be a real number"),
    ({"history": [0.5]}, r"^state\['history'\] must hold min\(evaluations, 2\) = 2 values, got 1$"),
    ({"history": 0.5}, r"^state\['history'\] must be a list, got 0.5$"),
    ({"last_drop": -1}, r"^state\['last_drop'\] must be an integer >= 0, got -1$"),
    ({"last_drop": 3}, r"^state\['last_drop'\] must be < evaluations \(3\), got 3$"),
    (
        {"last_drop": None},
        r"^state\['last_drop'\] \(None\) must be the last decision's evaluation$",
    ),
    ({"last_drop": 1}, r"^state\['last_drop'\] \(1\) must be the last decision's evaluation$"),
    ({"at_floor": -1}, r"^state\[.at_floor.\] must be an integer >= 0, got -1$"),
    ({"at_floor": 3}, r"^state\['at_floor'\] \(3\) cannot exceed the number of decisions$"),
    ({"skipped": [-1]}, r"^state\['skipped\[\]'\] must be an integer >= 0, got -1$"),
    (
        {"skipped": [BIG]},
        rf"^state\['skipped\[\]'\] must be an integer in \[0, 2\*\*53\], got {BIG}$",
    ),
    ({"skipped": 0}, r"^state\['skipped'\] must be a list, got 0$"),
]


@pytest.mark.parametrize(("change", "message"), BAD_STATES, ids=[str(c) for c, _ in BAD_STATES])
def test_a_malformed_saved_field_is_refused_naming_it_and_its_range(change, message) -> None:
    p, saved = saved_state()
    before = p.state_dict()
    with pytest.raises(ValueError, match=message):
        p.load_state_dict({**saved, "state": {**saved["state"], **change}})
    assert p.state_dict() == before  # nothing half-applied


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (0, -1, r"^state\['decisions\[\]\[0\]'\] must be an integer >= 0, got -1$"),
        (2, "x", r"^state\['decisions\[\]\[2\]'\] must be a real number"),
        (3, "x", r"^state\['decisions\[\]\[3\]'\] must be a real number"),
        (1, "x", r"^state\['decisions\[\]\[1\]'\] must be a real number"),
    ],
)
def test_a_malformed_saved_decision_is_refused_naming_its_field(index, value, message) -> None:
    p, saved = saved_state()
    decisions = [list(d) for d in saved["state"]["decisions"]]
    decisions[0][index] = value
    with pytest.raises(ValueError, match=message):
        p.load_state_dict({**saved, "state": {**saved["state"], "decisions": decisions}})


@pytest.mark.parametrize("decisions", [{"0": [1, 0.0, 1.0, 0.5]}, "[]", None])
def test_saved_decisions_that_are_not_a_list_are_refused_naming_them(decisions) -> None:
    p, saved = saved_state()
    with pytest.raises(ValueError, match=r"^state\['decisions'\] must be a list, got "):
        p.load_state_dict({**saved, "state": {**saved["state"], "decisions": decisions}})


def test_saved_state_edges_that_a_run_can_produce_load() -> None:
    # A gain of -inf was recorded before overflowing gains were refused: such a state still
    # loads, as do a last_drop and a decision at evaluation 0 and a skip at call 0.
    p, saved = saved_state()
    state = {**saved["state"], "decisions": [[1, -math.inf, 1.0, 0.5], [2, 0.0, 0.5, 0.25]]}
    p.load_state_dict({**saved, "state": state})
    assert p.decisions[0].gain == -math.inf
    q = AccelAT(1.0, 0.1, 0.1, 0.5, window=1, warmup=0, cooldown=0)
    q.step(0.5)
    zero = {**q.state_dict()["state"], "last_drop": 0, "decisions": [[0, 0.0, 1.0, 0.5]], "lr": 0.5}
    q.load_state_dict({**q.state_dict(), "state": zero})
    assert (q.lr, q.decisions[0].evaluation) == (0.5, 0)
    for short in ([1, 0.0], "abcd"):
        with pytest.raises(ValueError, match="decisions"):
            p.load_state_dict({**saved, "state": {**saved["state"], "decisions": [short]}})
    with pytest.raises(ValueError, match=r"^state is missing key\(s\) \['lr'\]$"):
        p.load_state_dict(
            {**saved, "state": {k: v for k, v in saved["state"].items() if k != "lr"}}
        )
