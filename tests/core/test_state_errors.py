"""A malformed ``state_dict`` is refused with a message that names the field and the value.

Exact messages, so a changed name, bound or message is a failing test (mutation testing found
these paths reached only by tests that checked the exception type).
"""

from __future__ import annotations

import json
import re

import pytest

from accelat_core import AccelAT, Constant, OneCycle

# {"format": 1, "policy": "Constant", "config": ..., "state": {"t": 0}}
SAVED = Constant(0.5).state_dict()


@pytest.mark.parametrize(
    ("state_dict", "message"),
    [
        (3, "state_dict must be a dict, got int: 3"),
        ([SAVED], f"state_dict must be a dict, got list: [{SAVED!r}]"),
        ({**SAVED, "x": 1}, "state_dict has unknown key(s) ['x']"),
        ({**SAVED, 2: 1}, "state_dict has unknown key(s) ['2']"),
        (
            {k: v for k, v in SAVED.items() if k != "config"},
            "state_dict is missing key(s) ['config']",
        ),
        ({**SAVED, "format": 99}, "state_dict format must be an integer in [1, 1], got 99"),
        (
            {**SAVED, "policy": "OneCycle"},
            "state_dict is for policy 'OneCycle', cannot load it into Constant",
        ),
        ({**SAVED, "state": 3}, "state_dict['state'] must be a dict, got 3"),
        ({**SAVED, "state": {}}, "state is missing key(s) ['t']"),
        ({**SAVED, "state": {"t": 0, "u": 1}}, "state has unknown key(s) ['u']"),
        ({**SAVED, "state": {"t": -1}}, "state['t'] must be an integer >= 0, got -1"),
        (
            {**SAVED, "state": {"t": 2**53 + 1}},
            "state['t'] must be an integer in [0, 2**53], got 9007199254740993",
        ),
        ({**SAVED, "state": {"t": "a"}}, "state['t'] must be an integer, got 'a' (str)"),
    ],
)
def test_a_malformed_schedule_state_dict_is_refused_with_its_exact_message(
    state_dict, message
) -> None:
    policy = Constant(0.5)
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        policy.load_state_dict(state_dict)
    assert policy.state_dict() == SAVED  # nothing half-applied


def test_the_largest_clock_loads() -> None:
    policy = Constant(0.5)
    policy.load_state_dict({**SAVED, "state": {"t": 2**53}})
    assert policy.t == 2**53


def test_a_config_that_differs_inside_a_list_is_refused() -> None:
    saved = OneCycle(0.1, total_steps=10, momentum=(0.8, 0.95)).state_dict()
    with pytest.raises(ValueError, match=r"^state_dict was saved from OneCycle with config "):
        OneCycle(0.1, total_steps=10).load_state_dict(saved)
    # ... while the same config given as a tuple or a list loads.
    OneCycle(0.1, total_steps=10, momentum=[0.8, 0.95]).load_state_dict(saved)


@pytest.mark.parametrize(
    ("history", "message"),
    [
        (["x", 0.5, 0.5], "history[] must be a real number, got 'x' (str)"),
        ([float("nan"), 0.5, 0.5], "history[] must be finite, got nan"),
    ],
)
def test_threshold_of_a_bad_history_names_it(history, message) -> None:
    p = AccelAT(1.0, 0.01, 0.0, 0.5, window=2, samples=100)
    with pytest.raises((ValueError, TypeError), match="^" + re.escape(message) + "$"):
        p.threshold(history)


NAMES = (
    "AccelAT, Anneal, Constant, Cyclical, ExponentialDecay, Join, LinearDecay, OneCycle, Plateau, "
    "RangeTest, StepDecay, WarmRestarts, Warmup"
)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (3, "a policy config must be a dict, got int: 3"),
        ({"lr": 1}, f"a policy config needs a 'policy' key naming one of {NAMES.split(', ')}"),
        ({"policy": "Nope"}, f"unknown policy 'Nope'; known policies: {NAMES}"),
        ({"policy": "Constant", 1: 2}, "Constant config keys must be strings, got [1]"),
    ],
)
def test_a_bad_config_is_refused_with_its_exact_message(config, message) -> None:
    from accelat_core import from_config

    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        from_config(config)


# window 1, endpoint gain: sigma_g = noise * sqrt(2)
NOISE = dict(lr_max=1.0, min_lr=0.01, factor=0.5, window=1)


@pytest.mark.parametrize(
    ("options", "overflows"),
    [
        # samples: sigma_g is bounded by 0.5 * sqrt(2) (every sigma_i <= 1/2).
        (dict(min_gain=1.7e308, z=1e308, samples=100), True),  # 1.7e308 + 0.71e308
        (dict(min_gain=1e308, z=1.5e308, samples=100), True),  # 1e308 + 1.06e308
        (dict(min_gain=1e308, z=1e308, samples=100), False),  # 1e308 + 0.71e308
        # neither noise nor samples: z is not used, so a huge one cannot overflow.
        (dict(min_gain=1.7e308, z=1e308), False),
    ],
)
def test_the_noise_threshold_overflow_check_uses_the_bound_of_sigma(options, overflows) -> None:
    if overflows:
        message = (
            f"min_gain + z * sigma_g overflows (min_gain={options['min_gain']!r}, "
            f"z={options['z']!r}, noise=None): keep |min_gain| + |z| * noise * 1.41421 "
            "below 1.8e308"
        )
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            AccelAT(**NOISE, **options)
    else:
        assert AccelAT(**NOISE, **options).threshold([0.5, 0.5]) >= options["min_gain"]


def test_a_gain_exactly_at_the_sample_threshold_is_not_a_plateau() -> None:
    # z = 0: the threshold is min_gain itself; gains of exactly 0.25 keep the lr.
    p = AccelAT(**NOISE, min_gain=0.25, z=0.0, samples=100)
    for metric in [0.5, 0.75, 1.0]:
        p.step(metric)
    assert (p.lr, p.decisions) == (1.0, [])
    p.step(1.125)  # a gain of 0.125 < 0.25: a cut
    assert p.lr == 0.5 and len(p.decisions) == 1


def accelat_after_two_cuts() -> tuple[AccelAT, dict]:
    """lr_min 0.1, lr_max 1.0; decisions [[1, 0.0, 1.0, 0.5], [2, 0.0, 0.5, 0.25]], lr 0.25."""
    p = AccelAT(1.0, 0.1, 0.1, 0.5, window=1, warmup=0, cooldown=0)
    for metric in [0.5, 0.5, 0.5]:
        p.step(metric)
    return p, json.loads(json.dumps(p.state_dict()))


BOUNDS = "must be in [min_lr, lr_max] = [0.1, 1.0], got"
DECISIONS_OUT_OF_RANGE = [
    ([[1, 0.0, 2.0, 0.5], [2, 0.0, 0.5, 0.25]], f"state['decisions[][2]'] (old_lr) {BOUNDS} 2.0"),
    ([[1, 0.0, 1.0, 1.5], [2, 0.0, 0.5, 0.25]], f"state['decisions[][3]'] (new_lr) {BOUNDS} 1.5"),
    ([[1, 0.0, 1.0, 0.5], [2, 0.0, 0.05, 0.05]], f"state['decisions[][2]'] (old_lr) {BOUNDS} 0.05"),
    ([[1, 0.0, 1.0, 0.5], [2, 0.0, 0.5, 0.05]], f"state['decisions[][3]'] (new_lr) {BOUNDS} 0.05"),
    (
        [[1, 0.0, 0.5, 1.0], [2, 0.0, 0.5, 0.25]],
        "state['decisions[][3]'] (new_lr) must be <= the decision's old_lr (0.5): the lr "
        "never rises, got 1.0",
    ),
]


@pytest.mark.parametrize(("decisions", "message"), DECISIONS_OUT_OF_RANGE)
def test_a_saved_accelat_decision_outside_the_lr_range_or_rising_is_refused(
    decisions, message
) -> None:
    p, saved = accelat_after_two_cuts()
    before = p.state_dict()
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        p.load_state_dict({**saved, "state": {**saved["state"], "decisions": decisions}})
    assert p.state_dict() == before  # nothing half-applied


def test_saved_accelat_decisions_at_the_lr_range_edges_load() -> None:
    # A cut from lr_max, one clamped to lr_min, and one that found lr at lr_min already.
    p, saved = accelat_after_two_cuts()
    edges = [[0, 0.0, 1.0, 0.1], [1, 0.0, 0.1, 0.1], [2, 0.0, 0.1, 0.1]]
    p.load_state_dict({**saved, "state": {**saved["state"], "decisions": edges, "lr": 0.1}})
    assert [list(d) for d in p.decisions] == edges
