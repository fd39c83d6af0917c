"""Composition: a linear warmup in front of a policy, and policies joined end to end.

Both wrap any policy. ``Warmup(...)`` and ``Join(...)`` are the constructors; each
returns one of two documented subclasses: when every wrapped policy is fixed-shape a
:class:`~accelat_core.policy.Schedule` with a closed-form ``at(t)`` (:class:`WarmupSchedule`,
:class:`JoinSchedule`), otherwise a plain :class:`~accelat_core.policy.Policy` that routes
metrics to the active child (:class:`MetricWarmup`, :class:`MetricJoin`).
Configs nest: ``{"policy": "Warmup", "inner": {...child config...}, ...}`` is built by
:func:`accelat_core.from_config`, which hands the child's dict to the constructor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from accelat_core._validate import MAX_STEPS, integer, real
from accelat_core.config import from_config, policy_names, register
from accelat_core.hyper import Hyper
from accelat_core.policy import Policy, Schedule, clock, expect_keys


def _as_policy(name: str, value: Any) -> Policy:
    """A freshly built policy, or a config dict built into one.

    A composite's config holds its children's configs, so a child that has already been
    stepped could not be rebuilt from it: refuse it rather than resume inconsistently.
    """
    if isinstance(value, dict):
        return from_config(value)
    if not isinstance(value, Policy):
        raise TypeError(f"{name} must be a Policy or a policy config dict, got {value!r}")
    # (An unregistered policy cannot be rebuilt from a config anyway: nothing to compare.)
    registered = value.policy_name in policy_names()
    if registered and value.state_dict() != from_config(value.to_config()).state_dict():
        raise ValueError(
            f"{name} must be a freshly built policy, but {value!r} has already been stepped"
        )
    return value


#: Marks a constructor argument that was not given: copy and pickle call ``__new__`` bare.
_UNSET: Any = object()


def _flavour(cls: type, base: type, kind: type, arg: str) -> type:
    """The class to build: ``kind`` when called as ``base(...)``, else ``cls`` if it fits."""
    if cls is base:
        return kind
    if issubclass(cls, kind):
        return cls
    raise TypeError(
        f"{cls.__name__} cannot be built from this {arg} (it makes a {kind.__name__}); "
        f"call {base.__name__}(...), which picks the class"
    )


@register
class Warmup(Policy):
    r"""Linear warmup from ``start_lr`` to the wrapped policy's initial lr over ``steps`` units.

    .. math::
        lr(t) = \text{start\_lr} + (lr_0 - \text{start\_lr})\, t / \text{steps}
        \quad (t < \text{steps}),

    then the wrapped policy with its own clock starting at 0 at ``t = steps``: the lr at
    ``t`` is ``inner.at(t - steps)``. During the warmup the momentum is the wrapped
    policy's initial momentum. The wrapped policy must be freshly built (not stepped);
    ``steps`` is an integer in ``[0, 2**53]``.

    ``Warmup(inner, steps, start_lr)`` returns an instance of one of two subclasses,
    chosen by ``inner``: :class:`WarmupSchedule` when ``inner`` is fixed-shape (a
    :class:`~accelat_core.policy.Schedule`; the warmup then is one too, with a closed-form
    ``at(t)``), :class:`MetricWarmup` otherwise (AccelAT, say). Both are ``Warmup`` to
    ``isinstance``, to configs and to states: the wrapped policy's config sits under
    ``"inner"``: ``{"policy": "Warmup", "inner": {...}, "steps": 4, "start_lr": 0.0}``.

    >>> from accelat_core import Constant
    >>> w = Warmup(Constant(0.5), steps=4)
    >>> [w.at(t).lr for t in range(6)], type(w).__name__, w.to_config()["policy"]
    ([0.0, 0.125, 0.25, 0.375, 0.5, 0.5], 'WarmupSchedule', 'Warmup')
    """

    inner: Policy

    def __new__(cls, *args: Any, **kwargs: Any) -> Warmup:
        inner = args[0] if args else kwargs.get("inner", _UNSET)
        if inner is _UNSET:
            if cls is Warmup:  # a call without inner: report it as the call would
                raise TypeError("Warmup() missing 1 required argument: 'inner'")
            return super().__new__(cls)  # copy / pickle: the state is filled in next
        policy = _as_policy("inner", inner)
        kind = WarmupSchedule if isinstance(policy, Schedule) else MetricWarmup
        self = super().__new__(_flavour(cls, Warmup, kind, "inner"))
        self.inner = policy  # built and checked once, here: __init__ does the rest
        return self

    def __init__(self, inner: Policy | dict[str, Any], steps: int, start_lr: float = 0.0) -> None:
        del inner  # __new__ built it into self.inner
        self.steps = integer("steps", steps, lo=0, hi=MAX_STEPS)
        self.start_lr = real("start_lr", start_lr, lo=0.0)
        self._target = self.inner.hyper
        self._slope = (self._target.lr - self.start_lr) / self.steps if self.steps else 0.0
        self.t = 0
        self._hyper = self._head(0)

    @property
    def policy_name(self) -> str:
        return "Warmup"

    def _head(self, t: int) -> Hyper:
        """The value for ``t <= steps`` (the ramp, then the wrapped policy's start)."""
        if t < self.steps:
            return Hyper(self.start_lr + self._slope * t, self._target.momentum)
        return self._target

    def get_config(self) -> dict[str, Any]:
        return {"inner": self.inner.to_config(), "steps": self.steps, "start_lr": self.start_lr}


class WarmupSchedule(Warmup, Schedule):
    """What ``Warmup(inner, ...)`` returns for a fixed-shape ``inner``: a Schedule.

    ``at(t)`` is the ramp for ``t < steps``, then ``inner.at(t - steps)``; the state is
    the clock alone. Build it with ``Warmup(...)`` (calling this class directly works only
    for a fixed-shape ``inner``).
    """

    inner: Schedule

    def at(self, t: int) -> Hyper:
        return self._head(t) if t < self.steps else self.inner.at(t - self.steps)

    @property
    def horizon(self) -> int | None:
        inner = self.inner.horizon
        return None if inner is None else self.steps + inner

    def step(self, metric: float | None = None) -> Hyper:
        # Schedule.step with at() inlined: one call less on the hot path.
        t = self.t = self.t + 1
        h = self._hyper = self._head(t) if t < self.steps else self.inner.at(t - self.steps)
        return h


class MetricWarmup(Warmup):
    """What ``Warmup(inner, ...)`` returns for any other ``inner`` (AccelAT, say).

    ``needs_metric`` is the wrapped policy's. The metrics passed during the warmup (the
    steps that reach ``t <= steps``) are not fed to it: its first metric is the one that
    measures the unit trained at its own initial lr. The state is the clock and the
    wrapped policy's state. Build it with ``Warmup(...)``.
    """

    def __init__(self, inner: Policy | dict[str, Any], steps: int, start_lr: float = 0.0) -> None:
        super().__init__(inner, steps, start_lr)
        self.needs_metric = self.inner.needs_metric  # type: ignore[misc]
        self._initial = self.inner.state_dict()

    def step(self, metric: float | None = None) -> Hyper:
        t = self.t = self.t + 1
        h = self._head(t) if t <= self.steps else self.inner.step(metric)
        self._hyper = h
        return h

    @property
    def should_stop(self) -> bool:
        return self.t > self.steps and self.inner.should_stop

    def _get_state(self) -> dict[str, Any]:
        return {"t": self.t, "inner": self.inner.state_dict()}

    def _set_state(self, state: dict[str, Any]) -> None:
        expect_keys("state", state, required={"t", "inner"})
        t = clock(state["t"])
        inner = state["inner"]
        # A policy is only stepped once the warmup is over; refuse a state claiming otherwise.
        if t <= self.steps and inner != self._initial:
            raise ValueError(
                f"state['inner'] must be the wrapped policy's initial state while t ({t}) "
                f"<= steps ({self.steps})"
            )
        self.inner.load_state_dict(inner)
        self.t = t
        self._hyper = self._head(t) if t <= self.steps else self.inner.hyper


def _parse_phases(phases: Any) -> tuple[list[Policy], list[int]]:
    """Join's ``phases`` as built policies and the lengths of all phases but the last."""
    if isinstance(phases, (str, bytes)) or not isinstance(phases, Sequence) or not phases:
        raise ValueError(
            f"phases must be a non-empty list of (policy, steps) pairs, got {phases!r}"
        )
    policies: list[Policy] = []
    lengths: list[int] = []
    for i, pair in enumerate(phases):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"phases[{i}] must be a (policy, steps) pair, got {pair!r}")
        policies.append(_as_policy(f"phases[{i}][0]", pair[0]))
        if i < len(phases) - 1:
            lengths.append(integer(f"phases[{i}][1]", pair[1], lo=1, hi=MAX_STEPS))
        elif pair[1] is not None:
            raise ValueError(
                f"phases[{i}][1] (the last phase's steps) must be None, got {pair[1]!r}"
            )
    return policies, lengths


@register
class Join(Policy):
    r"""Run policies one after another: ``Join([(p0, n0), (p1, n1), ..., (pk, None)])``.

    Phase :math:`i` starts at :math:`T_i = n_0 + \dots + n_{i-1}` and runs ``p_i`` with
    its own clock from 0: :math:`lr(t) = p_i.at(t - T_i)` for :math:`T_i \le t < T_{i+1}`.
    Each length is an integer in ``[1, 2**53]``; the last phase's length must be ``None``
    (it runs to the end); every child must be freshly built (or given as a config dict).
    The config is ``{"policy": "Join", "phases": [[child_config, n], ...]}``.

    ``Join(phases)`` returns an instance of one of two subclasses, chosen by the children:
    :class:`JoinSchedule` when every child is fixed-shape (a
    :class:`~accelat_core.policy.Schedule`; the join then is one too, with a closed-form
    ``at(t)``), :class:`MetricJoin` otherwise. Both are ``Join`` to ``isinstance``, to
    configs and to states.

    >>> from accelat_core import Constant
    >>> j = Join([(Constant(0.1), 2), (Constant(0.01), None)])
    >>> [j.at(t).lr for t in range(4)], type(j).__name__, j.to_config()["policy"]
    ([0.1, 0.1, 0.01, 0.01], 'JoinSchedule', 'Join')
    """

    policies: list[Policy]

    def __new__(cls, *args: Any, **kwargs: Any) -> Join:
        phases = args[0] if args else kwargs.get("phases", _UNSET)
        if phases is _UNSET:
            if cls is Join:  # a call without phases: report it as the call would
                raise TypeError("Join() missing 1 required argument: 'phases'")
            return super().__new__(cls)  # copy / pickle: the state is filled in next
        policies, lengths = _parse_phases(phases)
        fixed = all(isinstance(p, Schedule) for p in policies)
        self = super().__new__(_flavour(cls, Join, JoinSchedule if fixed else MetricJoin, "phases"))
        self.policies = policies  # built and checked once, here: __init__ does the rest
        self.lengths = lengths
        return self

    def __init__(self, phases: Sequence[tuple[Policy | dict[str, Any], int | None]]) -> None:
        del phases  # __new__ built it into self.policies and self.lengths
        starts = [0]
        for n in self.lengths:
            starts.append(starts[-1] + n)
        self._starts = starts  # phase i runs on [starts[i], starts[i + 1])
        self.t = 0
        self._active = 0

    @property
    def policy_name(self) -> str:
        return "Join"

    def _phase(self, t: int) -> int:
        i = 0
        starts = self._starts
        while i + 1 < len(starts) and t >= starts[i + 1]:
            i += 1
        return i

    def get_config(self) -> dict[str, Any]:
        return {
            "phases": [
                [p.to_config(), n]
                for p, n in zip(self.policies, [*self.lengths, None], strict=True)
            ]
        }


class JoinSchedule(Join, Schedule):
    """What ``Join(phases)`` returns when every child is fixed-shape: a Schedule.

    ``at(t)`` is the active phase's ``at`` on its own clock; the state is the clock alone.
    Build it with ``Join(...)``.
    """

    policies: list[Schedule]  # type: ignore[assignment]

    def __init__(self, phases: Sequence[tuple[Policy | dict[str, Any], int | None]]) -> None:
        super().__init__(phases)
        self._hyper = self.at(0)

    def at(self, t: int) -> Hyper:
        i = self._phase(t)
        return self.policies[i].at(t - self._starts[i])

    @property
    def horizon(self) -> int | None:
        last = self.policies[-1].horizon
        return None if last is None else self._starts[-1] + last

    def step(self, metric: float | None = None) -> Hyper:
        # Schedule.step, keeping the active phase index current so lookups stay O(1).
        t = self.t = self.t + 1
        i = self._active
        if i + 1 < len(self._starts) and t >= self._starts[i + 1]:
            i = self._active = i + 1
        h = self._hyper = self.policies[i].at(t - self._starts[i])
        return h

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._active = self._phase(self.t)


class MetricJoin(Join):
    """What ``Join(phases)`` returns when a child is not fixed-shape (AccelAT, say).

    Metric-driven children get the metrics of their own units; the metric passed at the
    step that switches phases measures the previous phase's last unit and is dropped.
    ``needs_metric`` is True if any child needs one; ``should_stop`` is the active
    child's. The state is the clock and every child's state. Build it with ``Join(...)``.
    """

    def __init__(self, phases: Sequence[tuple[Policy | dict[str, Any], int | None]]) -> None:
        super().__init__(phases)
        self.needs_metric = any(p.needs_metric for p in self.policies)  # type: ignore[misc]
        self._initial = [p.state_dict() for p in self.policies]
        self._hyper = self.policies[0].hyper

    def step(self, metric: float | None = None) -> Hyper:
        t = self.t = self.t + 1
        i = self._active
        if i + 1 < len(self._starts) and t == self._starts[i + 1]:
            self._active = i + 1
            h = self.policies[i + 1].hyper
        else:
            h = self.policies[i].step(metric)
        self._hyper = h
        return h

    @property
    def should_stop(self) -> bool:
        return self.policies[self._active].should_stop

    def _get_state(self) -> dict[str, Any]:
        return {"t": self.t, "phases": [p.state_dict() for p in self.policies]}

    def _set_state(self, state: dict[str, Any]) -> None:
        expect_keys("state", state, required={"t", "phases"})
        t = clock(state["t"])
        phases = state["phases"]
        if not isinstance(phases, list) or len(phases) != len(self.policies):
            raise ValueError(
                f"state['phases'] must be a list of {len(self.policies)} states, got {phases!r}"
            )
        active = self._phase(t)
        for i in range(active + 1, len(self.policies)):
            if phases[i] != self._initial[i]:
                raise ValueError(
                    f"state['phases'][{i}] must be that phase's initial state before it starts "
                    f"(t = {t})"
                )
        for p, s in zip(self.policies, phases, strict=True):
            p.load_state_dict(s)
        self.t = t
        self._active = active
        self._hyper = self.policies[active].hyper
