"""Fuzz ``from_config`` and ``load_state_dict`` of every registered policy.

Arbitrary JSON-like input may only ever raise ``ValueError`` or ``TypeError``. A valid
state dict mutated structurally (a key removed or added, a value of an impossible type, a
newer format) must be refused with ``ValueError``; one with changed numbers either loads
into a policy whose values stay finite and in range, or is refused with ``ValueError``.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies_fixed import (
    anneals,
    constants,
    cyclicals,
    exponential_decays,
    linear_decays,
    one_cycles,
    step_decays,
    warm_restarts,
)
from strategies_metric import (
    accelat_policies,
    annealing_policies,
    base_policies,
    envelope,
    joins,
    plateau_policies,
    range_tests,
    warmups,
)

from accelat_core import Policy, from_config, policy_names

EXAMPLES = {
    "AccelAT": accelat_policies() | annealing_policies(),
    "Anneal": anneals(),
    "Constant": constants(),
    "Cyclical": cyclicals(),
    "ExponentialDecay": exponential_decays(),
    "Join": joins(base_policies()),
    "LinearDecay": linear_decays(),
    "OneCycle": one_cycles(),
    "Plateau": plateau_policies(),
    "RangeTest": range_tests(),
    "StepDecay": step_decays(),
    "Warmup": warmups(base_policies()),
    "WarmRestarts": warm_restarts(),
}
each_policy = pytest.mark.parametrize("name", sorted(EXAMPLES))
# Twelve policies times five properties: a fifth of the profile's examples each.
few = settings(max_examples=max(10, settings().max_examples // 5))

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**64, 10**400, -(10**400)])  # past C long and past float range
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Values no slot of any state dict can hold.
impossible = st.sampled_from(["\x00mutated", {"\x00mutated": True}])


def near(value: Any) -> st.SearchStrategy[Any]:
    """Values next to a valid one: the same number as another type, a half step off, a
    sign flip, wrapped or unwrapped; what a lax check would accept and alter."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return st.sampled_from([None, [value], str(value), 1, 0.5])
    return st.sampled_from(
        [float(value), int(value), value + 0.5, value - 0.5, -value, 2 * value, str(value), [value]]
    )


def test_every_registered_policy_is_fuzzed() -> None:
    assert sorted(EXAMPLES) == policy_names()


def only_value_or_type_error(build, *args: Any) -> Any:
    try:
        return build(*args)
    except (ValueError, TypeError):
        return None


@each_policy
@few
@given(data=st.data())
def test_from_config_with_arbitrary_values_raises_only_value_or_type_error(name, data) -> None:
    valid = data.draw(EXAMPLES[name]).get_config()
    # A valid config with some arguments dropped and some replaced by arbitrary values (and
    # sometimes unknown keys added), so that construction fails often and succeeds often.
    names = st.sampled_from(sorted(valid))
    dropped = data.draw(st.sets(names, max_size=2), label="dropped")
    kwargs = {k: v for k, v in valid.items() if k not in dropped}
    for key in sorted(data.draw(st.sets(names, max_size=3), label="replaced")):
        nearby = data.draw(st.booleans(), label=f"{key} near its valid value")
        kwargs[key] = data.draw(near(valid[key]) if nearby else json_values, label=key)
    kwargs |= data.draw(st.dictionaries(st.text(max_size=8), json_values, max_size=1))
    policy = only_value_or_type_error(from_config, {"policy": name, **kwargs})
    if policy is None:
        return
    # Built: it holds what it was given, rebuilds from its JSON config, and runs soundly.
    config = json.loads(json.dumps(policy.get_config(), allow_nan=False))
    # An option whose default is None (AccelAT's noise, samples, anneal, budget) is left out
    # of the config when it is None: given as None, it is the default.
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k in config}
    assert set(kwargs) <= set(config)
    for key, value in kwargs.items():
        if not isinstance(value, dict) and key not in ("phases", "inner"):
            # (a nested policy's config gains its defaults; each is checked in its own run)
            assert config[key] == value, (key, value, config)
    rebuilt = from_config({"policy": name, **config})
    assert rebuilt.to_config() == policy.to_config()
    assert_sound(policy, steps=50)


@each_policy
@few
@given(data=st.data())
def test_from_config_with_one_argument_replaced_raises_only_value_or_type_error(name, data) -> None:
    config = data.draw(EXAMPLES[name]).to_config()
    arg = data.draw(st.sampled_from(sorted(set(config) - {"policy"})))
    config[arg] = data.draw(json_values)
    policy = only_value_or_type_error(from_config, config)
    if policy is not None:
        assert_sound(policy, steps=50)


@each_policy
@few
@given(data=st.data())
def test_from_config_with_an_unknown_argument_is_refused(name, data) -> None:
    config = data.draw(EXAMPLES[name]).to_config()
    with pytest.raises(ValueError, match="unexpected keyword argument"):
        from_config({**config, "\x00extra": data.draw(json_values)})


@each_policy
@few
@given(data=st.data())
def test_load_state_dict_with_arbitrary_values_raises_only_value_or_type_error(name, data) -> None:
    policy = data.draw(EXAMPLES[name])
    saved = policy.state_dict()
    fuzzed = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "format": json_values | st.just(1),
                "policy": json_values | st.just(name),
                "config": json_values | st.just(saved["config"]),
                "state": json_values,
            },
        )
        | json_values
    )
    try:
        policy.load_state_dict(fuzzed)
    except ValueError:
        return
    assert_sound(policy, steps=20)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (a tuple of keys / indices) to a value inside ``node``, root excluded."""
    out = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, child in items:
        out.append((*prefix, key))
        out.extend(paths(child, (*prefix, key)))
    return out


def dict_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths to every dict inside ``node``, the root included."""
    out = [prefix] if isinstance(node, dict) else []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, child in items:
        out.extend(dict_paths(child, (*prefix, key)))
    return out


def at(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


def mutated_states(draw: st.DrawFn, saved: dict) -> tuple[dict, bool]:
    """A mutated copy of ``saved``, and whether the mutation is structural (must be refused)."""
    state = copy.deepcopy(saved)
    kind = draw(st.sampled_from(["missing", "extra", "impossible", "newer", "number"]))
    if kind == "missing":
        holders = [p for p in dict_paths(state) if at(state, p)]
        holder = at(state, draw(st.sampled_from(holders)))
        del holder[draw(st.sampled_from(sorted(holder)))]
    elif kind == "extra":
        at(state, draw(st.sampled_from(dict_paths(state))))["\x00extra"] = draw(json_values)
    elif kind == "impossible":
        path = draw(st.sampled_from(paths(state)))
        at(state, path[:-1])[path[-1]] = draw(impossible)
    elif kind == "newer":
        formats = [p for p in paths(state) if p[-1] == "format"]
        path = draw(st.sampled_from(formats))
        at(state, path[:-1])[path[-1]] += draw(st.integers(1, 3))
    else:
        numbers = [
            p for p in paths(state) if type(at(state, p)) in (int, float) and p[-1] != "format"
        ]
        if not numbers:
            return state, False
        path = draw(st.sampled_from(numbers))
        at(state, path[:-1])[path[-1]] = draw(
            st.integers()
            | st.sampled_from([2**64, 10**400, -(10**400)])
            | st.floats(allow_nan=True, allow_infinity=True)
        )
        return state, False
    return state, True


@each_policy
@few
@given(data=st.data())
def test_mutated_state_dict_is_refused_with_value_error_or_loads_soundly(name, data) -> None:
    policy = data.draw(EXAMPLES[name])
    metrics = data.draw(st.lists(st.floats(-10, 10), max_size=30))
    for m in metrics:
        policy.step(m)
    saved = json.loads(json.dumps(policy.state_dict()))
    state, structural = mutated_states(data.draw, saved)
    fresh = from_config(saved["config"] | {"policy": name})
    if structural:
        with pytest.raises(ValueError):
            fresh.load_state_dict(state)
        return
    try:
        fresh.load_state_dict(state)
    except ValueError:
        return
    assert_sound(fresh, steps=20)


def assert_sound(policy: Policy, steps: int) -> None:
    """The policy's current and next values are finite and within its envelope."""
    env = envelope(policy)
    values = [policy.hyper] + [policy.step(0.5) for _ in range(steps)]
    for h in values:
        assert math.isfinite(h.lr)
        assert env.lr_lo <= h.lr <= env.lr_hi
