"""Plateau: torch's ReduceLROnPlateau rule, value for value, with a resumable JSON state.

The rule by hand, refusals, config and state; the conformance test that steps torch's own
scheduler beside the policy is tests/torch/test_plateau_torch.py (tests/core imports no
framework).
"""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from strategies_metric import plateau_configs, plateau_curves

from accelat_core import Decision, Hyper, Plateau, from_config


def run(policy: Plateau, metrics: list[float]) -> list[float]:
    return [policy.step(m).lr for m in metrics]


# -- the rule by hand -----------------------------------------------------------------------


def test_cooldown_ignores_bad_evaluations_then_patience_counts_again() -> None:
    p = Plateau(1.0, mode="min", factor=0.5, patience=1, cooldown=2, threshold=0.0)
    lrs = run(p, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    # bad at 1, 2 (> patience at 2: cut), cooldown 3, 4, bad again 5, 6 (cut at 6).
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert p.decisions == [Decision(2, 0.0, 1.0, 0.5), Decision(6, 0.0, 0.5, 0.25)]


def test_a_reduction_within_eps_is_recorded_but_leaves_the_lr() -> None:
    p = Plateau(1.0, mode="max", factor=0.5, patience=0, eps=0.5, threshold=0.0)
    assert run(p, [1.0, 0.75, 0.5]) == [1.0, 1.0, 1.0]  # 1.0 - 0.5 is not > eps
    assert p.decisions == [Decision(1, -0.25, 1.0, 1.0), Decision(2, -0.5, 1.0, 1.0)]


def test_relative_threshold_scales_the_best_as_torch_does() -> None:
    # max, rel 0.5: 1.0 -> needs > 1.5; at a negative best -1.0 it needs > -1.5 (a drop!).
    p = Plateau(1.0, mode="max", factor=0.5, patience=0, threshold=0.5)
    assert run(p, [1.0, 1.5, 1.6]) == [1.0, 0.5, 0.5]
    q = Plateau(1.0, mode="max", factor=0.5, patience=0, threshold=0.5)
    assert run(q, [-1.0, -1.4, -2.5]) == [1.0, 1.0, 0.5]  # -1.4 > -1.5: an improvement
    assert q.decisions == [Decision(2, -2.5 - -1.4, 1.0, 0.5)]


def test_emits_no_momentum_needs_a_metric_and_never_stops() -> None:
    p = Plateau(0.1, patience=0, factor=0.5, eps=0.0)
    assert Plateau.needs_metric and p.hyper == Hyper(0.1, None)
    for m in [1.0] * 50:
        assert p.step(m).momentum is None
        assert not p.should_stop
    assert p.lr == 0.1 * 0.5**49 and p.evaluations == 50  # a cut at every bad evaluation


# -- bad metrics ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (None, "Plateau needs a real-number metric at every step, got None at evaluation 2"),
        (True, "Plateau needs a real-number metric at every step, got True at evaluation 2"),
        ("0.5", "Plateau needs a real-number metric at every step, got '0.5' at evaluation 2"),
        (math.nan, "metric must be finite, got nan at evaluation 2"),
        (math.inf, "metric must be finite, got inf at evaluation 2"),
        (-math.inf, "metric must be finite, got -inf at evaluation 2"),
        (10**400, f"metric must be finite, got {10**400!r} at evaluation 2"),
    ],
)
def test_a_bad_metric_is_refused_naming_it_and_its_evaluation_and_changes_nothing(
    metric, message
) -> None:
    p = Plateau(1.0, mode="min", factor=0.5, patience=0)
    run(p, [1.0, 2.0])  # a cut at evaluation 1: every field is away from its start
    before = p.state_dict()
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        p.step(metric)
    assert p.state_dict() == before
    assert p.step(3.0).lr == Plateau(1.0, mode="min", factor=0.5, patience=0).lr * 0.25


# -- arguments and config -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"lr_max": 0.0}, ValueError, "lr_max must be in (0, inf), got 0.0"),
        ({"lr_max": math.inf}, ValueError, "lr_max must be finite, got inf"),
        ({"lr_max": "1"}, TypeError, "lr_max must be a real number, got '1' (str)"),
        ({"mode": "maximize"}, ValueError, "mode must be one of 'min', 'max', got 'maximize'"),
        ({"factor": 1.0}, ValueError, "factor must be in (0, 1), got 1.0"),
        ({"factor": 0}, ValueError, "factor must be in (0, 1), got 0"),
        ({"patience": -1}, ValueError, "patience must be an integer >= 0, got -1"),
        ({"patience": 1.0}, TypeError, "patience must be an integer, got 1.0 (float)"),
        ({"threshold": -0.1}, ValueError, "threshold must be in [0, inf), got -0.1"),
        (
            {"threshold_mode": "relative"},
            ValueError,
            "threshold_mode must be one of 'rel', 'abs', got 'relative'",
        ),
        (
            {"threshold": 1.0},
            ValueError,
            "threshold must be in [0, 1) for mode='min' with threshold_mode='rel', got 1.0",
        ),
        ({"cooldown": -1}, ValueError, "cooldown must be an integer >= 0, got -1"),
        ({"min_lr": -1e-9}, ValueError, "min_lr must be in [0, 0.1], got -1e-09"),
        ({"min_lr": 0.2}, ValueError, "min_lr must be in [0, 0.1], got 0.2"),
        ({"eps": -1.0}, ValueError, "eps must be in [0, inf), got -1.0"),
        ({"eps": math.nan}, ValueError, "eps must be finite, got nan"),
    ],
)
def test_a_bad_argument_is_refused_naming_it_its_value_and_range(kwargs, error, message) -> None:
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        Plateau(**{"lr_max": 0.1, **kwargs})


def test_the_argument_edges_are_accepted() -> None:
    Plateau(0.1, min_lr=0.1, patience=0, cooldown=0, threshold=0.0, eps=0.0)
    Plateau(0.1, mode="max", threshold=1.0)  # only mode="min" with "rel" needs < 1
    Plateau(0.1, threshold=1.0, threshold_mode="abs")


def test_defaults_are_torchs() -> None:
    assert Plateau(0.1).to_config() == {
        "policy": "Plateau",
        "lr_max": 0.1,
        "mode": "min",
        "factor": 0.1,
        "patience": 10,
        "threshold": 1e-4,
        "threshold_mode": "rel",
        "cooldown": 0,
        "min_lr": 0.0,
        "eps": 1e-8,
    }


@given(plateau_configs())
def test_from_config_of_to_config_rebuilds_the_same_policy(config) -> None:
    policy = Plateau(**config)
    rebuilt = from_config(json.loads(json.dumps(policy.to_config(), allow_nan=False)))
    assert type(rebuilt) is Plateau
    assert rebuilt.to_config() == policy.to_config() == {"policy": "Plateau", **config}


# -- state ----------------------------------------------------------------------------------


@settings(max_examples=min(settings().max_examples, 100))
@given(plateau_configs(), plateau_curves())
def test_resume_at_every_split_point_gives_identical_trajectory(config, metrics) -> None:
    whole = Plateau(**config)
    expected = run(whole, metrics)
    for split in range(len(metrics) + 1):
        first = Plateau(**config)
        head = run(first, metrics[:split])
        text = json.dumps(first.state_dict(), allow_nan=False)
        resumed = from_config(json.loads(json.dumps(first.to_config())))
        resumed.load_state_dict(json.loads(text))
        assert resumed.hyper == first.hyper
        assert head + run(resumed, metrics[split:]) == expected
        assert resumed.state_dict() == whole.state_dict()


def saved_state() -> tuple[Plateau, dict]:
    """patience 1, cooldown 2: cuts at evaluations 2 and 6, then one bad evaluation (at 9).

    lr 0.25, best 1.0, num_bad_epochs 1, cooldown_counter 0, evaluations 10.
    """
    p = Plateau(1.0, mode="min", factor=0.5, patience=1, cooldown=2, threshold=0.0, min_lr=0.1)
    run(p, [1.0] * 10)
    return p, json.loads(json.dumps(p.state_dict()))


def test_state_is_one_dataclass_as_json() -> None:
    _, saved = saved_state()
    assert saved["state"] == {
        "lr": 0.25,
        "best": 1.0,
        "num_bad_epochs": 1,
        "cooldown_counter": 0,
        "evaluations": 10,
        "decisions": [[2, 0.0, 1.0, 0.5], [6, 0.0, 0.5, 0.25]],
    }
    assert Plateau(1.0).state_dict()["state"] == {
        "lr": 1.0,
        "best": None,
        "num_bad_epochs": 0,
        "cooldown_counter": 0,
        "evaluations": 0,
        "decisions": [],
    }


BIG = 2**53 + 1
LATE = "after the first metric and after the previous decision's cooldown, a decision takes "
BAD_STATES = [
    ({"lr": "x"}, "state['lr'] must be a real number, got 'x' (str)"),
    (
        {"lr": 0.5},
        "state['lr'] must be the last decision's new_lr (lr_max before any), 0.25, got 0.5",
    ),
    ({"best": "x"}, "state['best'] must be a real number, got 'x' (str)"),
    ({"best": math.nan}, "state['best'] must be finite, got nan"),
    (
        {"best": None},
        "state['best'] must be None exactly when evaluations is 0 (the first metric always "
        "improves), got None with evaluations 10",
    ),
    ({"evaluations": -1}, "state['evaluations'] must be an integer >= 0, got -1"),
    ({"evaluations": BIG}, f"state['evaluations'] must be an integer in [0, 2**53], got {BIG}"),
    (
        {"evaluations": 6},
        f"state['decisions[][0]'] must be in [6, 6): {LATE}patience + 1 evaluations, got 6",
    ),
    ({"num_bad_epochs": -1}, "state['num_bad_epochs'] must be an integer >= 0, got -1"),
    ({"num_bad_epochs": 2}, "state['num_bad_epochs'] must be an integer in [0, 1], got 2"),
    ({"num_bad_epochs": 1.0}, "state['num_bad_epochs'] must be an integer, got 1.0 (float)"),
    ({"cooldown_counter": -1}, "state['cooldown_counter'] must be an integer >= 0, got -1"),
    (
        {"cooldown_counter": 1},
        "state['cooldown_counter'] must be 0 (what is left of the cooldown of 2 after the last "
        "decision), got 1",
    ),
    ({"decisions": None}, "state['decisions'] must be a list, got None"),
    (
        {"decisions": [[2, 0.0, 1.0]]},
        "state['decisions'] entries must be 4-lists, got [2, 0.0, 1.0]",
    ),
    (
        {"decisions": [[1, 0.0, 1.0, 0.5], [6, 0.0, 0.5, 0.25]]},
        f"state['decisions[][0]'] must be in [2, 10): {LATE}patience + 1 evaluations, got 1",
    ),
    (
        {"decisions": [[2, 0.0, 1.0, 0.5], [5, 0.0, 0.5, 0.25]]},
        f"state['decisions[][0]'] must be in [6, 10): {LATE}patience + 1 evaluations, got 5",
    ),
    (
        {"decisions": [[2, 0.0, 1.0, 0.5], [6, 0.0, 0.5, 0.5]]},
        "state['decisions'] entry [6, 0.0, 0.5, 0.5] must reduce the lr 0.5 to 0.25",
    ),
    (
        {"decisions": [[2, 0.0, 1.0, 0.25], [6, 0.0, 0.25, 0.125]]},
        "state['decisions'] entry [2, 0.0, 1.0, 0.25] must reduce the lr 1.0 to 0.5",
    ),
    (
        {"decisions": [[2, 0.0, 1.0, 0.5], [6, 0.0, 0.5, 0.05]]},
        "state['decisions[][3]'] (new_lr) must be in [min_lr, lr_max] = [0.1, 1.0], got 0.05",
    ),
    (
        {"decisions": [[2, 0.0, 1.0, 0.5], [6, 0.0, 0.25, 0.5]]},
        "state['decisions[][3]'] (new_lr) must be <= the decision's old_lr (0.25): the lr "
        "never rises, got 0.5",
    ),
    (
        {"decisions": [[2, "x", 1.0, 0.5]]},
        "state['decisions[][1]'] must be a real number, got 'x' (str)",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_STATES, ids=[str(c) for c, _ in BAD_STATES])
def test_a_malformed_saved_field_is_refused_naming_it_and_nothing_is_applied(
    change, message
) -> None:
    p, saved = saved_state()
    p.step(0.5)  # the policy being loaded into has moved on: a refusal must keep that
    before = p.state_dict()
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        p.load_state_dict({**saved, "state": {**saved["state"], **change}})
    assert p.state_dict() == before


def test_a_state_with_a_missing_or_extra_key_is_refused() -> None:
    p, saved = saved_state()
    state = {k: v for k, v in saved["state"].items() if k != "best"}
    with pytest.raises(ValueError, match=r"^state is missing key\(s\) \['best'\]$"):
        p.load_state_dict({**saved, "state": state})
    with pytest.raises(ValueError, match=r"^state has unknown key\(s\) \['lrs'\]$"):
        p.load_state_dict({**saved, "state": {**saved["state"], "lrs": []}})


def test_a_state_mid_cooldown_loads_and_resumes() -> None:
    # Saved one evaluation after the second cut: one cooldown evaluation left, no bad ones.
    p = Plateau(1.0, mode="min", factor=0.5, patience=1, cooldown=2, threshold=0.0)
    run(p, [1.0] * 8)
    saved = json.loads(json.dumps(p.state_dict()))
    assert (saved["state"]["cooldown_counter"], saved["state"]["num_bad_epochs"]) == (1, 0)
    with pytest.raises(ValueError, match=r"num_bad_epochs'\] must be an integer in \[0, 0\]"):
        p.load_state_dict({**saved, "state": {**saved["state"], "num_bad_epochs": 1}})
    resumed = Plateau(1.0, mode="min", factor=0.5, patience=1, cooldown=2, threshold=0.0)
    resumed.load_state_dict(saved)
    assert run(resumed, [1.0] * 5) == run(p, [1.0] * 5) == [1.0 / 4] * 2 + [1.0 / 8] * 3
