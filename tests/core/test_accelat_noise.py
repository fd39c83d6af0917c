"""AccelAT's opt-in noise-aware rule: cut when g < min_gain + z * sigma_g."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies_metric import accelat_configs, metric_histories

from accelat_core import AccelAT, Decision, from_config

BASE = {"lr_max": 0.1, "min_lr": 0.001, "min_gain": 0.01, "factor": 0.5}


def accelat(**kwargs: object) -> AccelAT:
    return AccelAT(**BASE | kwargs)


def trajectory(policy: AccelAT, metrics: list[float]) -> tuple[list[float], list[Decision]]:
    return [policy.step(m).lr for m in metrics], policy.decisions


# -- exact thresholds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gain", "window", "sum_c2"),
    [
        ("endpoint", 2, 2.0),  # c = (-1, 0, 1)
        ("endpoint", 5, 2.0),  # c = (-1, 0, 0, 0, 0, 1)
        ("windows", 2, 1.0),  # c = (-1/2, -1/2, 1/2, 1/2)
        ("windows", 4, 0.5),  # eight weights +-1/4
        ("slope", 2, 2.0),  # (i - 1) * 2 / 2 = (-1, 0, 1)
        ("slope", 4, 1.6),  # 12 w / ((w + 1)(w + 2)) = 48 / 30
    ],
)
@pytest.mark.parametrize("mode", ["max", "min"])
def test_noise_threshold_is_min_gain_plus_z_noise_times_the_weights_norm(
    gain, window, sum_c2, mode
) -> None:
    p = accelat(gain=gain, window=window, mode=mode, noise=0.25, z=2.0)
    history = [0.5] * (2 * window if gain == "windows" else window + 1)
    expected = 0.01 + 2.0 * (0.25 * math.sqrt(sum_c2))
    if gain == "slope" and window == 4:  # the weights 0.8, 0.4 are not exact binary fractions
        assert p.threshold(history) == pytest.approx(expected, rel=1e-15, abs=0)
    else:
        assert p.threshold(history) == expected


@pytest.mark.parametrize(
    ("gain", "window", "history", "variance"),
    [
        # endpoint: sigma_g^2 = sigma_0^2 + sigma_w^2, p(1 - p) / n with n = 4.
        ("endpoint", 2, [0.5, 0.9, 0.25], (0.25 + 0.1875) / 4),
        # clamped to [1/n, 1 - 1/n] = [0.25, 0.75]: 0.0 -> 0.25, 1.0 -> 0.75.
        ("endpoint", 2, [0.0, 0.5, 1.0], (0.1875 + 0.1875) / 4),
        # windows, w = 2: four weights +-1/2, so sum c_i^2 p_i (1 - p_i) = 4 * 0.25 * 0.25.
        ("windows", 2, [0.5, 0.5, 0.5, 0.5], 0.0625),
        ("windows", 2, [0.25, 0.5, 0.75, 0.5], 0.25 * (0.1875 + 0.25 + 0.1875 + 0.25) / 4),
        # slope, w = 2: c = (-1, 0, 1); the middle value does not count.
        ("slope", 2, [0.5, 0.99, 0.75], (0.25 + 0.1875) / 4),
    ],
)
def test_samples_threshold_uses_the_binomial_error_of_each_clamped_value(
    gain, window, history, variance
) -> None:
    p = accelat(gain=gain, window=window, samples=4, z=1.5)
    assert p.threshold(history) == 0.01 + 1.5 * math.sqrt(variance)


def test_threshold_without_noise_options_is_min_gain_whatever_z() -> None:
    assert accelat(window=2, z=7.0).threshold([0.1, 0.2, 0.3]) == 0.01
    assert accelat(window=2).threshold([0.1, 0.2, 0.3]) == 0.01


def test_threshold_defaults_to_the_current_history_and_checks_its_length() -> None:
    p = accelat(window=2, samples=4)
    for m in [0.0, 0.5, 1.0]:
        p.step(m)
    assert p.threshold() == 0.01 + math.sqrt(0.375 / 4)
    with pytest.raises(ValueError, match="history must hold the 3 values the gain reads, got 2"):
        p.threshold([0.5, 0.5])


# -- the rule against the paper's ----------------------------------------------------------

RISING_SLOWLY = [0.5, 0.6, 0.7, 0.8, 0.72]  # the last gain is 0.72 - 0.7 = 0.02


def test_noise_aware_rule_cuts_where_the_paper_rule_does_not() -> None:
    gain = 0.72 - 0.7
    assert 0.01 <= gain < 0.01 + 0.01 * math.sqrt(2)
    paper = trajectory(accelat(window=2), RISING_SLOWLY)
    noisy = trajectory(accelat(window=2, noise=0.01), RISING_SLOWLY)
    assert paper == ([0.1] * 5, [])
    assert noisy == ([0.1] * 4 + [0.05], [Decision(4, gain, 0.1, 0.05)])


def test_samples_rule_cuts_where_the_paper_rule_does_not() -> None:
    # sigma_g = sqrt((0.7 * 0.3 + 0.72 * 0.28) / 400) ~ 0.032: a gain of 0.02 is noise.
    noisy = trajectory(accelat(window=2, samples=400), RISING_SLOWLY)
    assert noisy[1] == [Decision(4, 0.72 - 0.7, 0.1, 0.05)]
    # With 10**6 samples sigma_g ~ 6.4e-4: 0.02 >= 0.01 + 6.4e-4, as the paper rule finds.
    assert trajectory(accelat(window=2, samples=10**6), RISING_SLOWLY) == ([0.1] * 5, [])


def test_negative_z_keeps_the_lr_where_the_paper_rule_cuts() -> None:
    flat = [0.5] * 4  # gain 0 at evaluation 3
    paper = trajectory(accelat(window=2), flat)
    lenient = trajectory(accelat(window=2, noise=0.01, z=-1.0), flat)
    assert paper == ([0.1] * 3 + [0.05], [Decision(3, 0.0, 0.1, 0.05)])
    assert lenient == ([0.1] * 4, [])
    assert accelat(window=2, noise=0.01, z=-1.0).threshold(flat[:3]) < 0.0


def test_samples_rule_with_negative_z_keeps_the_lr_where_the_paper_rule_cuts() -> None:
    flat = [0.5] * 4
    assert trajectory(accelat(window=2, samples=100, z=-1.0), flat) == ([0.1] * 4, [])


@given(
    config=accelat_configs(),
    metrics=metric_histories(max_size=40),
    z=st.floats(-10, 10),
)
def test_zero_noise_gives_the_paper_rules_trajectory_exactly(config, metrics, z) -> None:
    paper = AccelAT(**config)
    silent = AccelAT(**config, noise=0.0, z=z)
    for m in metrics:
        assert silent.step(m) == paper.step(m)
    assert silent.state_dict()["state"] == paper.state_dict()["state"]


# -- config, state, resume -----------------------------------------------------------------


def test_paper_rule_config_has_no_noise_keys() -> None:
    assert set(accelat(window=2).get_config()) == {
        "lr_max",
        "min_lr",
        "min_gain",
        "factor",
        "window",
        "cooldown",
        "warmup",
        "mode",
        "gain",
        "stop_patience",
        "nan_policy",
    }


@pytest.mark.parametrize(
    "options",
    [{"noise": 0.02}, {"noise": 0.0, "z": -0.5}, {"samples": 1000}, {"samples": 50, "z": 2.5}],
)
def test_noise_options_round_trip_through_config(options) -> None:
    p = accelat(window=3, **options)
    config = json.loads(json.dumps(p.to_config(), allow_nan=False))
    assert {k: config[k] for k in options} == options
    assert from_config(config).get_config() == p.get_config()


@pytest.mark.parametrize("options", [{"noise": 0.01}, {"samples": 400}, {"samples": 30, "z": 2}])
@pytest.mark.parametrize("gain", ["endpoint", "windows", "slope"])
@pytest.mark.parametrize("split", [1, 4, 5, 9, 13])
def test_resume_mid_window_gives_identical_trajectory(options, gain, split) -> None:
    metrics = [0.5, 0.6, 0.7, 0.8, 0.72, 0.73, 0.74, 0.74, 0.76, 0.75, 0.9, 0.91, 0.9, 0.92]
    whole = accelat(window=3, cooldown=1, gain=gain, **options)
    expected = trajectory(whole, metrics)
    first = accelat(window=3, cooldown=1, gain=gain, **options)
    head = [first.step(m).lr for m in metrics[:split]]
    text = json.dumps(first.state_dict(), allow_nan=False)
    resumed = from_config(json.loads(text)["config"] | {"policy": "AccelAT"})
    resumed.load_state_dict(json.loads(text))
    tail = [resumed.step(m).lr for m in metrics[split:]]
    assert (head + tail, resumed.decisions) == expected
    assert expected[1], "the curve must cut at least once for the test to mean anything"


@pytest.mark.parametrize("options", [{"noise": 0.01}, {"samples": 400, "z": 3.0}])
def test_state_dict_with_noise_options_is_plain_json(options) -> None:
    p = accelat(window=2, **options)
    trajectory(p, [*RISING_SLOWLY, 0.0, 1.0, 0.3])
    state = p.state_dict()
    assert json.loads(json.dumps(state, allow_nan=False)) == json.loads(json.dumps(state))
    assert state["config"] | {} == p.get_config()
    assert set(state["state"]) == {
        "lr",
        "history",
        "evaluations",
        "last_drop",
        "at_floor",
        "skipped",
        "decisions",
    }


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"noise": -0.1}, ValueError, r"noise must be in \[0, inf\), got -0.1"),
        ({"noise": math.nan}, ValueError, r"noise must be finite, got nan"),
        ({"noise": math.inf}, ValueError, r"noise must be finite, got inf"),
        ({"noise": "0.1"}, TypeError, r"noise must be a real number, got '0.1'"),
        ({"samples": 1}, ValueError, r"samples must be an integer >= 2, got 1"),
        ({"samples": 10.0}, TypeError, r"samples must be an integer, got 10.0"),
        ({"samples": True}, TypeError, r"samples must be an integer, got True"),
        ({"z": math.inf}, ValueError, r"z must be finite, got inf"),
        ({"z": None}, TypeError, r"z must be a real number, got None"),
        (
            {"noise": 0.1, "samples": 100},
            ValueError,
            r"give at most one of noise and samples, got noise=0.1, samples=100",
        ),
        (
            {"noise": 1e308, "z": 2.0},
            ValueError,
            r"min_gain \+ z \* sigma_g overflows \(min_gain=0.01, z=2.0, noise=1e\+308\)",
        ),
    ],
)
def test_bad_noise_options_are_named(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        accelat(window=2, **kwargs)
