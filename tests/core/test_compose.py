"""warmup and join: ramp values, phase boundaries, metric routing, configs and states."""

from __future__ import annotations

import copy
import json
import pickle
import re

import pytest

from accelat_core import (
    AccelAT,
    Constant,
    Cyclical,
    Hyper,
    JoinSchedule,
    MetricJoin,
    MetricWarmup,
    OneCycle,
    RangeTest,
    Schedule,
    WarmupSchedule,
    from_config,
    join,
    warmup,
)

ACCELAT = {"lr_max": 1.0, "min_lr": 0.01, "min_gain": 0.1, "factor": 0.5, "window": 2}


def accelat(**overrides) -> AccelAT:
    return AccelAT(**{**ACCELAT, **overrides})


def roundtrip(policy):
    """A fresh policy from the JSON config, with the JSON state loaded into it."""
    fresh = from_config(json.loads(json.dumps(policy.to_config())))
    fresh.load_state_dict(json.loads(json.dumps(policy.state_dict())))
    return fresh


# -- warmup ---------------------------------------------------------------------------


def test_warmup_ramps_linearly_from_start_lr_to_the_inner_initial_lr() -> None:
    w = warmup(Constant(0.75), steps=4, start_lr=0.25)
    assert [w.at(t).lr for t in range(7)] == [0.25, 0.375, 0.5, 0.625, 0.75, 0.75, 0.75]
    assert [w.step().lr for _ in range(6)] == [0.375, 0.5, 0.625, 0.75, 0.75, 0.75]


def test_warmup_then_runs_the_inner_schedule_from_its_own_t0() -> None:
    inner = RangeTest(1e-3, 1.0, 10)
    w = warmup(inner, steps=3)
    assert w.at(0) == Hyper(0.0, None)
    for t in range(3, 20):
        assert w.at(t) == inner.at(t - 3)
    assert w.horizon == 3 + 9


def test_warmup_momentum_is_the_inner_initial_momentum() -> None:
    inner = OneCycle(0.1, total_steps=100)
    w = warmup(inner, steps=5, start_lr=0.0)
    assert [w.at(t).momentum for t in range(5)] == [inner.at(0).momentum] * 5
    assert w.at(5) == inner.at(0)
    assert w.at(50) == inner.at(45)


def test_warmup_of_zero_steps_is_the_inner_policy() -> None:
    inner = OneCycle(0.1, total_steps=20)
    w = warmup(inner, steps=0)
    assert [w.at(t) for t in range(25)] == [inner.at(t) for t in range(25)]


def test_warmup_is_a_schedule_exactly_when_the_inner_is() -> None:
    assert isinstance(warmup(Constant(0.1), 3), Schedule)
    assert not warmup(Constant(0.1), 3).needs_metric
    w = warmup(accelat(), 3)
    assert not isinstance(w, Schedule)
    assert w.needs_metric
    # Two public classes, each honest about what it is; both carry the family's name.
    assert type(w) is MetricWarmup
    assert type(warmup(Constant(0.1), 3)) is WarmupSchedule
    assert w.to_config()["policy"] == warmup(Constant(0.1), 3).to_config()["policy"] == "Warmup"


def test_warmup_does_not_feed_warmup_metrics_to_a_metric_driven_inner() -> None:
    metrics = [0.0, 1.0, 2.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    w = warmup(accelat(), steps=3, start_lr=0.25)
    lrs = [w.step(m).lr for m in metrics]
    alone = accelat()
    # calls 1..3 reach t = 1..3 (ramp, then the inner's initial lr); call 4 is the inner's
    # first evaluation.
    assert lrs == [0.5, 0.75, 1.0] + [alone.step(m).lr for m in metrics[3:]]
    assert w.inner.evaluations == len(metrics) - 3


def test_warmup_should_stop_follows_the_inner_after_the_warmup() -> None:
    w = warmup(accelat(min_lr=0.5, stop_patience=1), steps=2)
    stops = [(w.step(0.0), w.should_stop)[1] for _ in range(20)]
    # inner: cut to lr_min at its evaluation 3, the no-gain decision at 5 stops it;
    # its evaluation e is warmup call e + 3.
    assert stops.index(True) == 5 + 2
    assert all(stops[7:])


def test_warmup_config_nests_the_inner_config_under_inner() -> None:
    w = warmup(Constant(0.1), steps=3, start_lr=0.01)
    assert w.to_config() == {
        "policy": "Warmup",
        "inner": {"policy": "Constant", "lr": 0.1},
        "steps": 3,
        "start_lr": 0.01,
    }
    assert from_config(w.to_config()).at(2) == w.at(2)


def test_warmup_resume_mid_ramp_and_after_gives_identical_trajectory() -> None:
    metrics = [0.1 * (i % 5) for i in range(30)]
    for split in (1, 3, 4, 12):
        whole = warmup(accelat(), steps=4)
        expected = [whole.step(m).lr for m in metrics]
        first = warmup(accelat(), steps=4)
        head = [first.step(m).lr for m in metrics[:split]]
        resumed = roundtrip(first)
        assert head + [resumed.step(m).lr for m in metrics[split:]] == expected


def test_warmup_state_claiming_a_stepped_inner_during_the_ramp_is_rejected() -> None:
    w = warmup(accelat(), steps=4)
    w.step(0.0)
    state = w.state_dict()
    stepped = accelat()
    stepped.step(0.0)
    state["state"]["inner"] = stepped.state_dict()
    with pytest.raises(ValueError, match="initial state"):
        warmup(accelat(), steps=4).load_state_dict(state)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"inner": 0.1, "steps": 3}, TypeError, "inner must be a Policy or a policy config"),
        ({"inner": Constant(0.1), "steps": -1}, ValueError, "steps must be an integer >= 0"),
        ({"inner": Constant(0.1), "steps": 1.5}, TypeError, "steps must be an integer"),
        ({"inner": Constant(0.1), "steps": 3, "start_lr": -0.1}, ValueError, "start_lr"),
        ({"inner": {"policy": "Nope"}, "steps": 3}, ValueError, "unknown policy 'Nope'"),
    ],
)
def test_warmup_bad_arguments_are_named(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        warmup(**kwargs)


def test_composites_refuse_an_already_stepped_child() -> None:
    stepped = accelat()
    stepped.step(0.5)
    with pytest.raises(ValueError, match="inner must be a freshly built policy"):
        warmup(stepped, 3)
    ramp = RangeTest(1e-3, 1.0, 10)
    ramp.step()
    with pytest.raises(ValueError, match=r"phases\[1\]\[0\] must be a freshly built policy"):
        join([(Constant(0.1), 2), (ramp, None)])


# -- join -----------------------------------------------------------------------------


def test_join_switches_at_the_boundaries_and_restarts_each_child_clock() -> None:
    ramp = RangeTest(1e-3, 1.0, 4)
    j = join([(Constant(0.5), 2), (ramp, 3), (Constant(0.25), None)])
    expected = [0.5, 0.5, ramp.at(0).lr, ramp.at(1).lr, ramp.at(2).lr, 0.25, 0.25]
    assert [j.at(t).lr for t in range(7)] == expected
    assert [j.step().lr for _ in range(6)] == expected[1:]
    assert isinstance(j, Schedule)
    assert j.horizon == 5


def test_join_horizon_is_none_when_the_last_shape_never_settles() -> None:
    cyclical = Cyclical(0.01, 0.1, step_size_up=3)
    assert cyclical.horizon is None
    assert join([(Constant(0.1), 2), (cyclical, None)]).horizon is None


def test_join_routes_metrics_only_to_the_active_metric_driven_child() -> None:
    metrics = [9.0, 9.0, 9.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    j = join([(Constant(0.5), 3), (accelat(), None)])
    assert j.needs_metric
    assert not isinstance(j, Schedule)
    lrs = [j.step(m).lr for m in metrics]
    alone = accelat()
    # t = 1, 2: Constant; t = 3: AccelAT's initial lr (that call's metric measured the
    # Constant phase and is dropped); from t = 4 AccelAT sees each metric.
    assert lrs == [0.5, 0.5, 1.0] + [alone.step(m).lr for m in metrics[3:]]
    assert j.policies[1].evaluations == len(metrics) - 3


def test_join_should_stop_is_the_active_childs() -> None:
    j = join([(accelat(min_lr=0.5, stop_patience=1), 8), (Constant(0.1), None)])
    stops = [(j.step(0.0), j.should_stop)[1] for _ in range(10)]
    # child: lr_min at evaluation 3, stop after the decision at 5 (call 6); phase 2 at t=8.
    assert stops == [False] * 5 + [True] * 2 + [False] * 3


def test_join_config_holds_children_configs_and_lengths() -> None:
    j = join([(Constant(0.1), 2), (warmup(Constant(0.2), 1), None)])
    config = j.to_config()
    assert config == {
        "policy": "Join",
        "phases": [
            [{"policy": "Constant", "lr": 0.1}, 2],
            [
                {
                    "policy": "Warmup",
                    "inner": {"policy": "Constant", "lr": 0.2},
                    "steps": 1,
                    "start_lr": 0.0,
                },
                None,
            ],
        ],
    }
    rebuilt = from_config(json.loads(json.dumps(config)))
    assert isinstance(rebuilt, Schedule)
    assert [rebuilt.at(t) for t in range(6)] == [j.at(t) for t in range(6)]


def test_join_resume_across_a_phase_boundary_gives_identical_trajectory() -> None:
    metrics = [0.3 * ((i * 7) % 4) for i in range(40)]

    def build() -> MetricJoin:
        return MetricJoin([(accelat(), 10), (Constant(0.2), 3), (accelat(window=1), None)])

    whole = build()
    expected = [whole.step(m).lr for m in metrics]
    for split in (0, 5, 10, 11, 13, 14, 30):
        first = build()
        head = [first.step(m).lr for m in metrics[:split]]
        resumed = roundtrip(first)
        assert head + [resumed.step(m).lr for m in metrics[split:]] == expected


def test_join_state_with_a_future_phase_already_stepped_is_rejected() -> None:
    j = join([(accelat(), 10), (accelat(), None)])
    j.step(0.1)
    state = j.state_dict()
    stepped = accelat()
    stepped.step(0.1)
    state["state"]["phases"][1] = stepped.state_dict()
    with pytest.raises(ValueError, match=r"phases'\]\[1\] must be that phase's initial state"):
        join([(accelat(), 10), (accelat(), None)]).load_state_dict(state)


@pytest.mark.parametrize(
    ("phases", "error", "message"),
    [
        ([], ValueError, "phases must be a non-empty list"),
        ("abc", ValueError, "phases must be a non-empty list"),
        ([(Constant(0.1), 3)], ValueError, r"phases\[0\]\[1\] \(the last phase's steps\) must be"),
        ([(Constant(0.1), 0), (Constant(0.1), None)], ValueError, r"phases\[0\]\[1\] must be"),
        ([(Constant(0.1), None), (Constant(0.1), None)], TypeError, r"phases\[0\]\[1\] must be"),
        ([(Constant(0.1),)], ValueError, r"phases\[0\] must be a \(policy, steps\) pair"),
        ([("Constant", None)], TypeError, r"phases\[0\]\[0\] must be a Policy"),
    ],
)
def test_join_bad_phases_are_named(phases, error, message) -> None:
    with pytest.raises(error, match=message):
        join(phases)


def test_composites_wrap_an_unregistered_custom_policy() -> None:
    class Halving(Schedule):
        def __init__(self) -> None:
            super().__init__()

        def at(self, t: int) -> Hyper:
            return Hyper(0.5**t, None)

        def get_config(self) -> dict:
            return {}

    w = warmup(Halving(), steps=2, start_lr=0.0)
    assert [w.at(t).lr for t in range(5)] == [0.0, 0.5, 1.0, 0.5, 0.25]
    j = join([(Halving(), 2), (Constant(0.125), None)])
    assert [j.step().lr for _ in range(3)] == [0.5, 0.125, 0.125]


def test_metric_warmup_state_at_the_last_warmup_step_must_hold_the_initial_inner() -> None:
    # At t == steps the ramp has just ended; the wrapped policy has not been stepped yet.
    state = warmup(accelat(), steps=4).state_dict()
    stepped = accelat()
    stepped.step(0.0)
    state["state"] = {"t": 4, "inner": stepped.state_dict()}
    with pytest.raises(ValueError, match=r"initial state while t \(4\) <= steps \(4\)"):
        warmup(accelat(), steps=4).load_state_dict(state)
    with pytest.raises(ValueError, match=r"^state is missing key\(s\) \['inner'\]$"):
        warmup(accelat(), steps=4).load_state_dict({**state, "state": {"t": 1}})


def test_metric_warmup_resumed_after_the_warmup_emits_the_inner_lr() -> None:
    w = warmup(accelat(), steps=2, start_lr=0.0)
    for m in [0.0] * 14:  # a flat metric: the inner AccelAT cuts
        w.step(m)
    assert w.lr < ACCELAT["lr_max"]
    resumed = warmup(accelat(), steps=2, start_lr=0.0)
    resumed.load_state_dict(json.loads(json.dumps(w.state_dict())))
    assert resumed.hyper == w.hyper == w.inner.hyper
    assert [resumed.step(0.0) for _ in range(6)] == [w.step(0.0) for _ in range(6)]


def test_metric_join_emits_each_phases_own_values_at_every_switch() -> None:
    # Three phases, so the phase after a switch differs from the one before it and from
    # the last; .hyper must be what step() returned.
    j = join([(accelat(), 2), (Constant(0.2), 2), (Constant(0.1), None)])
    assert not isinstance(j, Schedule) and j.hyper == Hyper(1.0, None)
    seen = []
    for _ in range(5):
        h = j.step(0.5)
        assert j.hyper == h
        seen.append(h.lr)
    assert seen == [1.0, 0.2, 0.2, 0.1, 0.1]


def test_metric_join_resumed_state_restores_the_active_phases_value() -> None:
    j = join([(Constant(0.2), 2), (accelat(window=1), None)])
    for m in [0.0] * 8:  # a flat metric: the AccelAT phase cuts
        j.step(m)
    assert j.lr < ACCELAT["lr_max"]
    resumed = roundtrip(j)
    assert resumed.hyper == j.hyper and resumed.t == j.t


@pytest.mark.parametrize("phases", [{"a": 1, "b": 2}, "ab", ({}, {})])
def test_metric_join_state_whose_phases_are_not_a_list_of_n_is_refused(phases) -> None:
    j = join([(Constant(0.2), 2), (accelat(), None)])
    state = j.state_dict()
    state["state"]["phases"] = phases
    with pytest.raises(ValueError, match=r"^state\['phases'\] must be a list of 2 states, got "):
        j.load_state_dict(state)


def test_metric_join_state_missing_a_key_names_the_state() -> None:
    j = join([(Constant(0.2), 2), (accelat(), None)])
    state = {**j.state_dict(), "state": {"t": 1}}
    with pytest.raises(ValueError, match=r"^state is missing key\(s\) \['phases'\]$"):
        j.load_state_dict(state)


def test_join_schedule_resumed_mid_phase_steps_on_from_the_right_phase() -> None:
    def build() -> JoinSchedule:
        return JoinSchedule([(Constant(0.5), 2), (Constant(0.25), 2), (Constant(0.125), None)])

    expected = [build().at(t).lr for t in range(1, 7)]
    assert expected == [0.5, 0.25, 0.25, 0.125, 0.125, 0.125]
    for split in range(6):
        first = build()
        head = [first.step().lr for _ in range(split)]
        resumed = build()
        resumed.load_state_dict(first.state_dict())
        assert head + [resumed.step().lr for _ in range(6 - split)] == expected


def test_a_registered_class_is_built_by_its_name() -> None:
    from accelat_core.config import _REGISTRY, register

    class HalfLr(Constant):
        pass

    try:
        assert register(HalfLr) is HalfLr
        built = from_config({"policy": "HalfLr", "lr": 0.5})
        assert type(built) is HalfLr and built.lr == 0.5
    finally:
        _REGISTRY.pop("HalfLr", None)


# As the code before warmup() and join() wrote them (when Warmup and Join were classes).
OLD_ACCELAT = (
    '{"lr_max": 1.0, "lr_min": 0.01, "min_gain": 0.1, "factor": 0.5, "window": 1, '
    '"cooldown": null, "warmup": null, "mode": "max", "gain": "endpoint", '
    '"stop_patience": null, "nan_policy": "raise"}'
)
OLD_ACCELAT_STATE = (
    '{"lr": 0.5, "history": [0.5, 0.5], "evaluations": 3, "last_drop": 2, "below_min": 0, '
    '"skipped": [], "decisions": [[2, 0.0, 1.0, 0.5]]}'
)
OLD_INNER = (
    f'{{"format": 1, "policy": "AccelAT", "config": {OLD_ACCELAT}, "state": {OLD_ACCELAT_STATE}}}'
)
OLD_STATES = [
    # warmup(AccelAT, steps=2, start_lr=0.25) after 5 steps of 0.5
    '{"format": 1, "policy": "Warmup", "config": {"inner": {"policy": "AccelAT", '
    + OLD_ACCELAT[1:]
    + ', "steps": 2, "start_lr": 0.25}, "state": {"t": 5, "inner": '
    + OLD_INNER
    + "}}",
    # join([(Constant(0.5), 2), (warmup(Constant(0.25), 1), None)]) after 3 steps
    '{"format": 1, "policy": "Join", "config": {"phases": [[{"policy": "Constant", "lr": 0.5}, '
    '2], [{"policy": "Warmup", "inner": {"policy": "Constant", "lr": 0.25}, "steps": 1, '
    '"start_lr": 0.0}, null]]}, "state": {"t": 3}}',
    # join([(Constant(0.5), 1), (AccelAT, None)]) after 4 steps of 0.5
    '{"format": 1, "policy": "Join", "config": {"phases": [[{"policy": "Constant", "lr": 0.5}, '
    '1], [{"policy": "AccelAT", '
    + OLD_ACCELAT[1:]
    + ', null]]}, "state": {"t": 4, "phases": [{"format": 1, "policy": "Constant", "config": '
    '{"lr": 0.5}, "state": {"t": 0}}, ' + OLD_INNER + "]}}",
]


@pytest.mark.parametrize("saved", OLD_STATES)
def test_configs_and_states_saved_before_the_factories_load_and_resume(saved) -> None:
    old = json.loads(saved)
    resumed = from_config({"policy": old["policy"], **old["config"]})
    resumed.load_state_dict(old)
    # Written back in today's names (AccelAT's min_lr and at_floor), and nothing else changed.
    today = saved.replace('"lr_min"', '"min_lr"').replace('"below_min"', '"at_floor"')
    assert json.dumps(resumed.state_dict()) == today
    whole = from_config({"policy": old["policy"], **old["config"]})
    t = old["state"]["t"]
    expected = [whole.step(0.5).lr for _ in range(t + 4)][t:]
    assert [resumed.step(0.5).lr for _ in range(4)] == expected


def test_the_composites_survive_pickle_and_deepcopy_mid_run() -> None:
    built = [
        warmup(Constant(0.5), 2),
        warmup(accelat(window=1), 2),
        join([(Constant(0.5), 2), (Constant(0.25), None)]),
        join([(Constant(0.5), 2), (accelat(window=1), None)]),
    ]
    for policy in built:
        for _ in range(4):
            policy.step(0.5)
        twins = [pickle.loads(pickle.dumps(policy)), copy.deepcopy(policy)]
        expected = [policy.step(0.5) for _ in range(5)]
        for twin in twins:
            assert type(twin) is type(policy)
            assert [twin.step(0.5) for _ in range(5)] == expected


def test_repr_is_the_policy_name_and_its_config_as_keyword_arguments() -> None:
    assert repr(Constant(0.5)) == "Constant(lr=0.5)"
    assert repr(warmup(Constant(0.5), steps=2)) == (
        "Warmup(inner={'policy': 'Constant', 'lr': 0.5}, steps=2, start_lr=0.0)"
    )


def test_each_class_called_directly_builds_only_what_fits_it() -> None:
    w = WarmupSchedule(Constant(0.5), 2)
    assert type(w) is WarmupSchedule and [w.at(t).lr for t in range(3)] == [0.0, 0.25, 0.5]
    assert type(MetricWarmup(accelat(), 2)) is MetricWarmup
    assert type(JoinSchedule([(Constant(0.5), 1), (Constant(0.1), None)])) is JoinSchedule
    assert type(MetricJoin([(Constant(0.5), 1), (accelat(), None)])) is MetricJoin
    refusals = [
        (
            lambda: WarmupSchedule(accelat(), 2),
            f"WarmupSchedule needs a fixed-shape inner (a Schedule), got {accelat()!r}; "
            "warmup(inner, ...) picks the class that fits",
        ),
        (
            lambda: MetricWarmup(Constant(0.5), 2),
            "MetricWarmup needs an inner that is not fixed-shape (not a Schedule), got "
            "Constant(lr=0.5); warmup(inner, ...) picks the class that fits",
        ),
        (
            lambda: JoinSchedule([(Constant(0.5), 2), (accelat(), None)]),
            "JoinSchedule needs fixed-shape phases only (Schedules), got phases of "
            "['Constant', 'AccelAT']; join(phases) picks the class that fits",
        ),
        (
            lambda: MetricJoin([(Constant(0.5), 2), (Constant(0.1), None)]),
            "MetricJoin needs a phase that is not fixed-shape (not a Schedule), got phases of "
            "['Constant', 'Constant']; join(phases) picks the class that fits",
        ),
    ]
    for build, message in refusals:
        with pytest.raises(TypeError, match="^" + re.escape(message) + "$"):
            build()


def test_warmup_start_lr_defaults_to_zero_and_a_negative_one_is_named() -> None:
    assert warmup(accelat(), 2).to_config()["start_lr"] == 0.0
    assert warmup(accelat(), 2).hyper.lr == 0.0
    with pytest.raises(ValueError, match=r"^start_lr must be in \[0, inf\), got -1\.0$"):
        warmup(Constant(0.5), 2, start_lr=-1.0)


@pytest.mark.parametrize(("pair", "shown"), [("ab", "'ab'"), (5, "5"), ((Constant(0.1),), None)])
def test_join_refuses_a_phase_that_is_not_a_pair_naming_it(pair, shown) -> None:
    shown = repr(pair) if shown is None else shown
    message = f"phases[0] must be a (policy, steps) pair, got {shown}"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        join([pair])


def test_join_schedule_starts_at_its_first_phases_value() -> None:
    j = join([(Constant(0.5), 1), (Constant(0.25), None)])
    assert j.hyper == Hyper(0.5, None) and j.lr == 0.5


def test_metric_join_state_refused_in_a_later_phase_leaves_every_phase_as_it_was() -> None:
    j = join([(accelat(window=1), 3), (accelat(window=1), None)])
    for _ in range(5):
        j.step(0.5)
    saved = json.loads(json.dumps(j.state_dict()))
    saved["state"]["phases"][1]["state"]["lr"] = 5.0
    fresh = join([(accelat(window=1), 3), (accelat(window=1), None)])
    before = fresh.state_dict()
    message = r"^state\['lr'\] must be in \[min_lr, lr_max\] = \[0.01, 1.0\], got 5.0$"
    with pytest.raises(ValueError, match=message):
        fresh.load_state_dict(saved)
    assert fresh.state_dict() == before  # phase 0 was not loaded either


@pytest.mark.parametrize(
    ("old", "new", "args"),
    [
        ("Warmup", "warmup", (Constant(0.5), 2)),
        ("Join", "join", ([(Constant(0.5), 2), (Constant(0.1), None)],)),
    ],
)
def test_the_old_class_names_build_the_same_policy_with_a_deprecation_warning(old, new, args):
    import accelat_core

    with pytest.warns(
        DeprecationWarning, match=rf"accelat_core.{old} is deprecated .* use accelat_core.{new}\(\)"
    ):
        built = getattr(accelat_core, old)(*args)
    assert built.to_config() == getattr(accelat_core, new)(*args).to_config()
