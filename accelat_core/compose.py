"""Composition: a linear warmup in front of a policy, and policies joined end to end.

:func:`warmup` and :func:`join` build them. Each returns one of two classes, chosen by
what it wraps: when every wrapped policy is fixed-shape, a
:class:`~accelat_core.policy.Schedule` with a closed-form ``at(t)`` (:class:`WarmupSchedule`,
:class:`JoinSchedule`); otherwise a policy that routes metrics to the active child
(:class:`MetricWarmup`, :class:`MetricJoin`). The classes can be called directly too; each
refuses children that belong to the other.

Configs and states carry the family's name, ``"Warmup"`` or ``"Join"``, and nest the
children's configs: :func:`accelat_core.from_config` builds
``{"policy": "Warmup", "inner": {...child config...}, ...}`` with :func:`warmup`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from accelat_core._validate import MAX_STEPS, integer, real
from accelat_core.config import from_config, policy_names, register
from accelat_core.hyper import Hyper
from accelat_core.policy import Policy, Schedule, clock, expect_keys

#: A phase as ``join`` takes it: a policy (or its config) and its length in units.
Phase = tuple[Policy | dict[str, Any], int | None]


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


def warmup(
    inner: Policy | dict[str, Any], steps: int, start_lr: float = 0.0
) -> WarmupSchedule | MetricWarmup:
    r"""Linear warmup from ``start_lr`` to ``inner``'s initial lr over ``steps`` units.

    .. math::
        lr(t) = \text{start\_lr} + (lr_0 - \text{start\_lr})\, t / \text{steps}
        \quad (t < \text{steps}),

    then ``inner`` with its own clock starting at 0 at ``t = steps``. During the warmup the
    momentum is ``inner``'s initial momentum. ``inner`` must be freshly built (not stepped)
    or a config dict; ``steps`` is an integer in ``[0, 2**53]``.

    Returns a :class:`WarmupSchedule` (a Schedule with a closed form ``at(t)``) when
    ``inner`` is fixed-shape, else a :class:`MetricWarmup`. Both are named ``"Warmup"`` in
    configs and states: ``{"policy": "Warmup", "inner": {...}, "steps": 4, "start_lr": 0.0}``.

    Args:
        inner: the policy that follows the warmup, freshly built, or its config dict.
        steps: the warmup's length (an integer in ``[0, 2**53]``; 0: no warmup), in the unit
            the policy is stepped in (batches or epochs).
        start_lr: the lr at ``t = 0`` (>= 0, default 0).

    >>> from accelat_core import Constant
    >>> w = warmup(Constant(0.5), steps=4)
    >>> [w.at(t).lr for t in range(6)], type(w).__name__, w.to_config()["policy"]
    ([0.0, 0.125, 0.25, 0.375, 0.5, 0.5], 'WarmupSchedule', 'Warmup')
    """
    policy = _as_policy("inner", inner)
    if isinstance(policy, Schedule):
        return WarmupSchedule(policy, steps, start_lr)
    return MetricWarmup(policy, steps, start_lr)


class _Warmup(Policy):
    """What both warmups share: the arguments, the ramp, the name and the config."""

    #: The ``inner`` this class takes, for the error when it is given another.
    _fits: ClassVar[str]
    inner: Policy

    def __init__(self, inner: Policy | dict[str, Any], steps: int, start_lr: float = 0.0) -> None:
        policy = _as_policy("inner", inner)
        # A warmup is a Schedule exactly when its inner is one.
        if isinstance(policy, Schedule) != isinstance(self, Schedule):
            raise TypeError(
                f"{type(self).__name__} needs {self._fits}, got {policy!r}; "
                "warmup(inner, ...) picks the class that fits"
            )
        self.inner = policy
        self.steps = integer("steps", steps, lo=0, hi=MAX_STEPS)
        self.start_lr = real("start_lr", start_lr, lo=0.0)
        self._target = policy.hyper
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


class WarmupSchedule(_Warmup, Schedule):
    r""":func:`warmup` of a fixed-shape ``inner``: a Schedule.

    .. math::
        lr(t) = \text{start\_lr} + (lr_0 - \text{start\_lr})\, t / \text{steps}
        \; (t < \text{steps}), \qquad \text{inner.at}(t - \text{steps}) \; \text{after}

    with :math:`lr_0` = ``inner.at(0).lr``; the state is the clock alone.
    ``WarmupSchedule(inner, steps, start_lr)`` takes :func:`warmup`'s arguments and refuses
    an ``inner`` that is not a Schedule.

    Args:
        inner: the fixed-shape policy (a Schedule) that follows the warmup, freshly built,
            or its config dict.
        steps: the warmup's length (an integer in ``[0, 2**53]``), in the caller's unit.
        start_lr: the lr at ``t = 0`` (>= 0, default 0).

    >>> from accelat_core import LinearDecay
    >>> w = WarmupSchedule(LinearDecay(0.1, 0.05, total_steps=2), steps=2, start_lr=0.02)
    >>> [round(w.at(t).lr, 12) for t in range(5)]
    [0.02, 0.06, 0.1, 0.075, 0.05]
    """

    _fits = "a fixed-shape inner (a Schedule)"
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


class MetricWarmup(_Warmup):
    r""":func:`warmup` of any other ``inner`` (AccelAT, say).

    .. math::
        lr(t) = \text{start\_lr} + (lr_0 - \text{start\_lr})\, t / \text{steps}
        \; (t < \text{steps}), \qquad \text{inner.step(metric)} \; (t > \text{steps})

    with :math:`lr_0` = ``inner.lr`` (also the value at ``t = steps``). ``needs_metric`` is
    the wrapped policy's. The metrics passed during the warmup (the steps that reach
    ``t <= steps``) are not fed to it: its first metric is the one that measures the unit
    trained at its own initial lr. The state is the clock and the wrapped policy's state.
    ``MetricWarmup(inner, steps, start_lr)`` takes :func:`warmup`'s arguments and refuses
    an ``inner`` that is a Schedule.

    Args:
        inner: the policy that follows the warmup (not a Schedule), freshly built, or its
            config dict.
        steps: the warmup's length (an integer in ``[0, 2**53]``), in the unit the policy
            is stepped in (for AccelAT, evaluations: normally epochs).
        start_lr: the lr at ``t = 0`` (>= 0, default 0).

    >>> from accelat_core import Plateau
    >>> w = MetricWarmup(Plateau(0.1, factor=0.5, patience=0), steps=2)
    >>> [w.step(loss).lr for loss in [9.0, 9.0, 1.0, 1.0]]  # the first two are not fed
    [0.05, 0.1, 0.1, 0.05]
    """

    _fits = "an inner that is not fixed-shape (not a Schedule)"

    def __init__(self, inner: Policy | dict[str, Any], steps: int, start_lr: float = 0.0) -> None:
        super().__init__(inner, steps, start_lr)
        self.needs_metric = self.inner.needs_metric
        self._initial = self.inner.state_dict()

    def step(self, metric: float | None = None) -> Hyper:
        t = self.t = self.t + 1
        h = self._head(t) if t <= self.steps else self.inner.step(metric)
        self._hyper = h
        return h

    @property
    def should_stop(self) -> bool:
        return self.t > self.steps and self.inner.should_stop

    def between(self, update: int, updates: int) -> Hyper:
        """The wrapped policy's value within an evaluation, once the warmup is over."""
        return self.inner.between(update, updates) if self.t > self.steps else self._hyper

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


def join(phases: Sequence[Phase]) -> JoinSchedule | MetricJoin:
    r"""Run policies one after another: ``join([(p0, n0), (p1, n1), ..., (pk, None)])``.

    Phase :math:`i` starts at :math:`T_i = n_0 + \dots + n_{i-1}` and runs ``p_i`` with
    its own clock from 0: :math:`lr(t) = p_i.at(t - T_i)` for :math:`T_i \le t < T_{i+1}`.
    Each length is an integer in ``[1, 2**53]``; the last phase's length must be ``None``
    (it runs to the end); every child must be freshly built (or given as a config dict).

    Returns a :class:`JoinSchedule` (a Schedule with a closed form ``at(t)``) when every
    child is fixed-shape, else a :class:`MetricJoin`. Both are named ``"Join"`` in configs
    and states: ``{"policy": "Join", "phases": [[child_config, n], ...]}``.

    Args:
        phases: ``(policy, steps)`` pairs, run in order: each policy freshly built or a
            config dict, each ``steps`` its phase's length (an integer in ``[1, 2**53]``, in
            the unit the policy is stepped in), ``None`` for the last.

    >>> from accelat_core import Constant
    >>> j = join([(Constant(0.1), 2), (Constant(0.01), None)])
    >>> [j.at(t).lr for t in range(4)], type(j).__name__, j.to_config()["policy"]
    ([0.1, 0.1, 0.01, 0.01], 'JoinSchedule', 'Join')
    """
    policies, lengths = _parse_phases(phases)
    built = list(zip(policies, [*lengths, None], strict=True))
    if all(isinstance(p, Schedule) for p in policies):
        return JoinSchedule(built)
    return MetricJoin(built)


def _parse_phases(phases: Any) -> tuple[list[Policy], list[int]]:
    """``join``'s ``phases`` as built policies and the lengths of all phases but the last."""
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


class _Join(Policy):
    """What both joins share: the phases, the phase lookup, the name and the config."""

    #: The phases this class takes, for the error when it is given others.
    _fits: ClassVar[str]
    policies: Sequence[Policy]

    def __init__(self, phases: Sequence[Phase]) -> None:
        policies, lengths = _parse_phases(phases)
        # A join is a Schedule exactly when every child is one.
        if all(isinstance(p, Schedule) for p in policies) != isinstance(self, Schedule):
            raise TypeError(
                f"{type(self).__name__} needs {self._fits}, got phases of "
                f"{[p.policy_name for p in policies]}; join(phases) picks the class that fits"
            )
        self.policies = policies
        self.lengths = lengths
        starts = [0]
        for n in lengths:
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


class JoinSchedule(_Join, Schedule):
    r""":func:`join` of fixed-shape children only: a Schedule.

    .. math:: lr(t) = p_i.\text{at}(t - T_i) \quad (T_i \le t < T_{i+1})

    with :math:`T_i` the sum of the lengths before phase :math:`i`: the active phase's
    ``at`` on its own clock. The state is the clock alone. ``JoinSchedule(phases)`` takes
    :func:`join`'s argument and refuses a child that is not a Schedule.

    Args:
        phases: ``(policy, steps)`` pairs of fixed-shape policies (each freshly built or a
            config dict) and their lengths (integers in ``[1, 2**53]``, in the caller's
            unit), ``None`` for the last.

    >>> from accelat_core import Constant, LinearDecay
    >>> j = JoinSchedule([(LinearDecay(0.1, 0.05, total_steps=2), 2), (Constant(0.01), None)])
    >>> [round(j.at(t).lr, 12) for t in range(4)]
    [0.1, 0.075, 0.01, 0.01]
    """

    _fits = "fixed-shape phases only (Schedules)"
    policies: Sequence[Schedule]

    def __init__(self, phases: Sequence[Phase]) -> None:
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


class MetricJoin(_Join):
    r""":func:`join` with a child that is not fixed-shape (AccelAT, say).

    .. math:: lr(t) = p_i.\text{lr} \quad (T_i \le t < T_{i+1})

    with :math:`T_i` the sum of the lengths before phase :math:`i`, each child stepped on
    its own clock. Metric-driven children get the metrics of their own units; the metric
    passed at the step that switches phases measures the previous phase's last unit and is
    dropped. ``needs_metric`` is True if any child needs one; ``should_stop`` is the active
    child's. The state is the clock and every child's state. ``MetricJoin(phases)`` takes
    :func:`join`'s argument and refuses phases that are all Schedules.

    Args:
        phases: ``(policy, steps)`` pairs, at least one policy not fixed-shape (each freshly
            built or a config dict), and their lengths (integers in ``[1, 2**53]``, in the
            unit the policies are stepped in), ``None`` for the last.

    >>> from accelat_core import Constant, Plateau
    >>> j = MetricJoin([(Constant(0.1), 2), (Plateau(0.05, factor=0.5, patience=0), None)])
    >>> [j.step(loss).lr for loss in [9.0, 9.0, 1.0, 1.0]]  # 9.0 at the switch is dropped
    [0.1, 0.05, 0.05, 0.025]
    """

    _fits = "a phase that is not fixed-shape (not a Schedule)"

    def __init__(self, phases: Sequence[Phase]) -> None:
        super().__init__(phases)
        self.needs_metric = any(p.needs_metric for p in self.policies)
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

    def between(self, update: int, updates: int) -> Hyper:
        """The active child's value within an evaluation."""
        return self.policies[self._active].between(update, updates)

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
        before = [p.state_dict() for p in self.policies]
        try:
            for p, s in zip(self.policies, phases, strict=True):
                p.load_state_dict(s)
        except ValueError:
            # Put back the phases loaded before the refused one: a refusal changes nothing.
            for p, s in zip(self.policies, before, strict=True):
                p.load_state_dict(s)
            raise
        self.t = t
        self._active = active
        self._hyper = self.policies[active].hyper


# Configs and states name the families, as they did when Warmup and Join were classes.
register(warmup, name="Warmup")
register(join, name="Join")
