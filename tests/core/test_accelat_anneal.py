"""AccelAT's anneal: where the rule would stop, the lr anneals to zero, then the run stops.

Every expectation is computed here from the rule's definition: the decision that starts the
anneal is the one at which the same rule without an anneal stops, and the anneal's values are
:class:`Anneal`'s closed form stepped once per weight update.
"""

from __future__ import annotations

import json
import math
import warnings
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies_metric import annealing_configs, metric_histories

from accelat_core import AccelAT, Anneal, from_config

FLAT = [0.5] * 40


def falling(config: dict, n: int) -> list[float]:
    """``n`` metrics that lose 1 per evaluation: every decision finds too little gain, even
    with a negative ``min_gain`` (the gain is -window)."""
    sign = 1.0 if config["mode"] == "max" else -1.0
    return [-sign * i for i in range(n)]


def anneal_length(fraction: float, start: int) -> int:
    """The anneal's length in evaluations: ``fraction`` of the ``start + 1`` so far, rounded."""
    return max(1, math.floor(fraction * (start + 1) + 0.5))


def stop_evaluation(config: dict, metrics: list[float]) -> int | None:
    """The evaluation at which the same rule without an anneal first says stop."""
    plain = AccelAT(**{k: v for k, v in config.items() if k not in ("anneal", "anneal_shape")})
    e = 0
    for m in metrics:
        plain.step(m)
        if math.isfinite(m):
            e += 1
        if plain.should_stop:
            return plain.evaluations - 1
    return None


def test_a_flat_curve_cuts_to_the_floor_then_anneals_over_a_fraction_of_the_run() -> None:
    p = AccelAT(1.0, 0.25, min_gain=0.01, factor=0.5, window=2, stop_patience=2, anneal=0.5,
                anneal_shape="linear")  # fmt: skip
    lrs = [p.step(m).lr for m in FLAT[:20]]
    # Decisions every 2 evaluations from evaluation 3: cuts at 3 and 5 reach 0.25; the
    # decisions at 7 and 9 find it at the floor: the second (9) starts the anneal.
    assert [d.evaluation for d in p.decisions] == [3, 5, 7, 9]
    length = anneal_length(0.5, 9)  # 5 evaluations
    anneal = Anneal(0.25, length, shape="linear")
    assert lrs[:10] == [1.0] * 3 + [0.5] * 2 + [0.25] * 5
    assert lrs[10 : 10 + length] == [anneal.at(k).lr for k in range(1, length + 1)]
    assert lrs[9 + length] == 0.0
    stops = AccelAT(**p.get_config())
    flags = [(stops.step(m), stops.should_stop)[1] for m in FLAT[:20]]
    assert flags.index(True) == 9 + length


@given(annealing_configs(), metric_histories(min_size=1))
def test_the_anneal_starts_where_the_rule_without_it_stops(config, metrics) -> None:
    p = AccelAT(**config)
    started = None
    for m in metrics:
        before = p.annealing or p.should_stop
        try:
            p.step(m)
        except ValueError:  # a refused metric (raise mode); it changes nothing
            continue
        if not before and (p.annealing or p.should_stop):
            started = p.evaluations - 1
    assert started == stop_evaluation(config, [m for m in metrics])


@given(annealing_configs(), st.integers(1, 7))
def test_within_evaluations_the_anneal_is_the_closed_form_stepped_per_update(config, updates):
    config = {**config, "nan_policy": "skip"}
    p = AccelAT(**config)
    tail = iter(falling(config, 1000))
    while not p.annealing and not p.should_stop:
        p.step(next(tail))
    start = p.evaluations - 1
    length = anneal_length(config["anneal"], start)
    closed = Anneal(p.lr, length * updates, shape=config["anneal_shape"])
    stepped = [closed.lr]
    for _ in range(length * updates - 1):
        stepped.append(closed.step().lr)
    got = []
    for k in range(length):
        got += [p.between(u, updates).lr for u in range(updates)]
        assert p.step(next(tail)).lr == closed.at((k + 1) * updates).lr  # per evaluation
    assert got == stepped
    assert all(b <= a for a, b in pairwise(got))  # the lr never rises
    assert p.should_stop and not p.annealing
    assert p.between(0, updates) == p.hyper  # after the anneal the value holds


@given(annealing_configs(), metric_histories(min_size=1), st.data())
def test_resume_at_any_evaluation_mid_anneal_gives_the_same_trajectory(config, metrics, data):
    config = {**config, "nan_policy": "skip"}
    metrics = metrics + falling(config, 200)
    whole = AccelAT(**config)
    expected = [(whole.step(m), whole.between(1, 3), whole.should_stop) for m in metrics]
    split = data.draw(st.integers(0, len(metrics)))
    first = AccelAT(**config)
    head = [(first.step(m), first.between(1, 3), first.should_stop) for m in metrics[:split]]
    text = json.dumps(first.state_dict(), allow_nan=False)
    resumed = from_config(json.loads(json.dumps(first.to_config())))
    resumed.load_state_dict(json.loads(text))
    tail = [(resumed.step(m), resumed.between(1, 3), resumed.should_stop) for m in metrics[split:]]
    assert head + tail == expected
    assert expected[-1][2], "the flat tail must take the rule to its end"


def test_without_an_anneal_the_state_and_config_are_the_paper_rules() -> None:
    p = AccelAT(1.0, 0.5, min_gain=0.1, factor=0.5, window=2, stop_patience=1)
    assert "anneal" not in p.get_config() and "anneal_shape" not in p.get_config()
    assert "anneal_start" not in p.state_dict()["state"]
    q = AccelAT(1.0, 0.5, min_gain=0.1, factor=0.5, window=2, stop_patience=1, anneal=0.2)
    assert q.get_config()["anneal"] == 0.2 and "anneal_shape" not in q.get_config()  # default
    assert (q.state_dict()["state"]["anneal_start"], q.state_dict()["state"]["anneal_length"]) == (
        None, 0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"anneal": 0.2},
            r"^anneal needs stop_patience .* got anneal=0.2 with stop_patience=None$",
        ),
        ({"anneal": 0.0, "stop_patience": 1}, r"^anneal must be in \(0, 100\], got 0.0$"),
        ({"anneal": 0.2, "stop_patience": 1, "anneal_shape": "exp"}, r"^anneal_shape must be one"),
    ],
)
def test_bad_anneal_arguments_are_named(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        AccelAT(1.0, 0.5, **kwargs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"anneal_start": 3}, r"^state\['anneal_start'\] must be an integer in \[0, 2\], got 3$"),
        ({"anneal_start": 1, "anneal_length": 0}, r"^state\['anneal_length'\] must be an integer"),
        ({"anneal_length": 2}, r"^state\['anneal_length'\] must be 0 before the anneal, got 2$"),
    ],
)
def test_a_saved_anneal_that_cannot_be_is_refused_naming_the_field(change, message) -> None:
    p = AccelAT(1.0, 0.5, min_gain=0.1, factor=0.5, window=1, stop_patience=5, anneal=0.5)
    for m in [0.5, 0.5, 0.5]:
        p.step(m)
    saved = p.state_dict()
    with pytest.raises(ValueError, match=message):
        AccelAT(**p.get_config()).load_state_dict({**saved, "state": {**saved["state"], **change}})
    plain = AccelAT(1.0, 0.5, min_gain=0.1, factor=0.5, window=1)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['anneal_length', 'anneal_start'\]"):
        plain.load_state_dict({**plain.state_dict(), "state": saved["state"]})


@given(annealing_configs(), st.integers(2, 40))
def test_with_a_budget_the_anneal_ends_by_the_last_evaluation(config, budget) -> None:
    # A rising curve never exhausts the rule: only the budget can start the anneal.
    p = AccelAT(**{**config, "budget": budget, "min_gain": 0.0, "mode": "max"})
    lrs = [p.step(float(i)).lr for i in range(budget)]
    length = anneal_length(config["anneal"], budget - 1)
    start = next(e for e in range(budget) if e + 1 + anneal_length(config["anneal"], e) >= budget)
    assert p.should_stop, "the anneal must be over at the budget's last evaluation"
    assert lrs[-1] == 0.0 and lrs[start] == config["lr_max"]
    assert p.state_dict()["state"]["anneal_start"] == start
    assert length >= 1


def test_the_old_name_lr_min_still_works_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="use min_lr"):
        old = AccelAT(0.1, lr_min=0.01, min_gain=0.0, factor=0.5, window=1)
    assert (
        old.get_config()
        == AccelAT(0.1, min_lr=0.01, min_gain=0.0, factor=0.5, window=1).get_config()
    )
    with pytest.raises(TypeError, match="not both"):
        AccelAT(0.1, 0.01, lr_min=0.01)


def test_a_config_and_state_saved_by_0_2_load_without_a_warning() -> None:
    saved_config = {"policy": "AccelAT", "lr_max": 1.0, "lr_min": 0.5, "min_gain": 0.1,
                    "factor": 0.5, "window": 1, "cooldown": None, "warmup": None, "mode": "max",
                    "gain": "endpoint", "stop_patience": None, "nan_policy": "raise"}  # fmt: skip
    saved_state = {"lr": 0.5, "history": [0.5, 0.5], "evaluations": 3, "last_drop": 2,
                   "below_min": 0, "skipped": [], "decisions": [[2, 0.0, 1.0, 0.5]]}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = from_config(saved_config)
        config = {k: v for k, v in saved_config.items() if k != "policy"}
        p.load_state_dict(
            {"format": 1, "policy": "AccelAT", "config": config, "state": saved_state}
        )
    assert (p.lr, p.evaluations, p.decisions[0].new_lr) == (0.5, 3, 0.5)
    assert p.get_config()["min_lr"] == 0.5


def test_defaults_let_accelat_be_built_from_its_lr_max_alone() -> None:
    p = AccelAT(0.1)
    config = p.get_config()
    assert (config["min_lr"], config["min_gain"], config["factor"], config["window"]) == (
        0.1 / 1000, 0.005, 0.5, 2,
    )  # fmt: skip
    paper = AccelAT.paper(0.1).get_config()
    assert (paper["min_gain"], paper["factor"], paper["window"], paper["min_lr"]) == (
        0.005, 0.8, 5, 0.1 / 1000,
    )  # fmt: skip


def test_the_anytime_preset_is_the_trainers_rule_and_takes_changes() -> None:
    # floor lr_max/8, two no-gain decisions there, then a 1 - sqrt anneal (the default shape,
    # left out of the config) over 0.3 of the evaluations so far
    assert AccelAT.anytime(0.4).get_config() == AccelAT(
        0.4, 0.4 / 8, min_gain=0.005, factor=0.5, window=2, stop_patience=2, anneal=0.3,
        anneal_shape="sqrt",
    ).get_config()  # fmt: skip
    assert AccelAT.anytime(0.4).get_config()["min_lr"] == 0.05
    changed = AccelAT.anytime(0.4, budget=30, window=3).get_config()
    assert (changed["budget"], changed["window"], changed["min_lr"]) == (30, 3, 0.4 / 8)
    assert AccelAT.anytime(0.4, samples=100).get_config()["samples"] == 100  # z 1.0 reads it
