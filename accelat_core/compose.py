"""Composition: a linear warmup in front of a policy, and policies joined end to end.

Both wrap any policy. When every wrapped policy is fixed-shape the composite is a
:class:`~accelat_core.policy.Schedule` too, with a closed-form ``at(t)``; otherwise it
is a plain :class:`~accelat_core.policy.Policy` that routes metrics to the active child.
Configs nest: ``{"policy": "Warmup", "inner": {...child config...}, ...}`` is built by
:func:`accelat_core.from_config`, which hands the child's dict to the constructor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from accelat_core._validate import integer, real
from accelat_core.config import from_config, policy_names, register
from accelat_core.hyper import Hyper
from accelat_core.policy import MAX_T, Policy, Schedule, expect_keys


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
    registered = type(value).__name__ in policy_names()
    if registered and value.state_dict() != from_config(value.to_config()).state_dict():
        raise ValueError(
            f"{name} must be a freshly built policy, but {value!r} has already been stepped"
        )
    return value


@register
class Warmup(Policy):
    r"""Linear warmup from ``start_lr`` to the wrapped policy's initial lr over ``steps`` units.

    .. math::
        lr(t) = \text{start\_lr} + (lr_0 - \text{start\_lr})\, t / \text{steps}
        \quad (t < \text{steps}),

    then the wrapped policy with its own clock starting at 0 at ``t = steps``: the lr at
    ``t`` is ``inner.at(t - steps)``. During the warmup the momentum is the wrapped
    policy's initial momentum. The wrapped policy must be freshly built (not stepped).

    The wrapped policy's config sits under ``"inner"`` (``"policy"`` names the class in a
    config): ``{"policy": "Warmup", "inner": {...}, "steps": 4, "start_lr": 0.0}``.

    With a metric-driven policy, ``needs_metric`` is True and the metrics passed during
    the warmup (the steps that reach ``t <= steps``) are not fed to it: its first metric
    is the one that measures the unit trained at its own initial lr.

    >>> from accelat_core import Constant
    >>> w = Warmup(Constant(0.5), steps=4)
    >>> [w.at(t).lr for t in range(6)]
    [0.0, 0.125, 0.25, 0.375, 0.5, 0.5]
    """

    def __init__(self, inner: Policy | dict[str, Any], steps: int, start_lr: float = 0.0) -> None:
        self.inner = _as_policy("inner", inner)
        self.steps = integer("steps", steps, lo=0)
        self.start_lr = real("start_lr", start_lr, lo=0.0)
        self.needs_metric = self.inner.needs_metric  # type: ignore[misc]
        self._initial = self.inner.state_dict()
        self._target = self.inner.hyper
        self._slope = (self._target.lr - self.start_lr) / self.steps if self.steps else 0.0
        self.t = 0
        self._hyper = self._head(0)
        if isinstance(self.inner, Schedule) and type(self) is Warmup:
            # A warmup of a fixed shape is itself a fixed shape: switch to the flavour
            # with a closed-form at(t). Configs and states name both "Warmup".
            self.__class__ = _FixedWarmup

    def _head(self, t: int) -> Hyper:
        """The value for ``t <= steps`` (the ramp, then the wrapped policy's start)."""
        if t < self.steps:
            return Hyper(self.start_lr + self._slope * t, self._target.momentum)
        return self._target

    def step(self, metric: float | None = None) -> Hyper:
        t = self.t = self.t + 1
        h = self._head(t) if t <= self.steps else self.inner.step(metric)
        self._hyper = h
        return h

    @property
    def should_stop(self) -> bool:
        return self.t > self.steps and self.inner.should_stop

    def get_config(self) -> dict[str, Any]:
        return {"inner": self.inner.to_config(), "steps": self.steps, "start_lr": self.start_lr}

    def _get_state(self) -> dict[str, Any]:
        return {"t": self.t, "inner": self.inner.state_dict()}

    def _set_state(self, state: dict[str, Any]) -> None:
        expect_keys("state", state, required={"t", "inner"})
        t = _clock(state["t"])
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


class _FixedWarmup(Warmup, Schedule):
    """Warmup of a fixed-shape policy: a Schedule with a closed-form ``at(t)``."""

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

    _get_state = Schedule._get_state
    _set_state = Schedule._set_state

    @property
    def should_stop(self) -> bool:
        return False


# The fixed-shape flavour is the same policy to configs, states and reprs.
_FixedWarmup.__name__ = "Warmup"


@register
class Join(Policy):
    r"""Run policies one after another: ``Join([(p0, n0), (p1, n1), ..., (pk, None)])``.

    Phase :math:`i` starts at :math:`T_i = n_0 + \dots + n_{i-1}` and runs ``p_i`` with
    its own clock from 0: :math:`lr(t) = p_i.at(t - T_i)` for :math:`T_i \le t < T_{i+1}`.
    The last phase's length must be ``None`` (it runs to the end); every child must be
    freshly built (or given as a config dict).

    Metric-driven children get the metrics of their own units; the metric passed at
    the step that switches phases measures the previous phase's last unit and is
    dropped. ``needs_metric`` is True if any child needs one; ``should_stop`` is the
    active child's. The config is ``{"policy": "Join", "phases": [[child_config, n], ...]}``.

    >>> from accelat_core import Constant
    >>> j = Join([(Constant(0.1), 2), (Constant(0.01), None)])
    >>> [j.at(t).lr for t in range(4)]
    [0.1, 0.1, 0.01, 0.01]
    """

    def __init__(self, phases: Sequence[tuple[Policy | dict[str, Any], int | None]]) -> None:
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
            last = i == len(phases) - 1
            if last:
                if pair[1] is not None:
                    raise ValueError(
                        f"phases[{i}][1] (the last phase's steps) must be None, got {pair[1]!r}"
                    )
            else:
                lengths.append(integer(f"phases[{i}][1]", pair[1], lo=1))
        self.policies = policies
        self.lengths = lengths
        starts = [0]
        for n in lengths:
            starts.append(starts[-1] + n)
        self._starts = starts  # phase i runs on [starts[i], starts[i + 1])
        self.needs_metric = any(p.needs_metric for p in policies)  # type: ignore[misc]
        self._initial = [p.state_dict() for p in policies]
        self.t = 0
        self._active = 0
        if all(isinstance(p, Schedule) for p in policies) and type(self) is Join:
            # Joined fixed shapes are a fixed shape: switch to the flavour with at(t).
            self.__class__ = _FixedJoin
            self._hyper = self.at(0)
        else:
            self._hyper = policies[0].hyper

    def _phase(self, t: int) -> int:
        i = 0
        starts = self._starts
        while i + 1 < len(starts) and t >= starts[i + 1]:
            i += 1
        return i

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

    def get_config(self) -> dict[str, Any]:
        return {
            "phases": [
                [p.to_config(), n]
                for p, n in zip(self.policies, [*self.lengths, None], strict=True)
            ]
        }

    def _get_state(self) -> dict[str, Any]:
        return {"t": self.t, "phases": [p.state_dict() for p in self.policies]}

    def _set_state(self, state: dict[str, Any]) -> None:
        expect_keys("state", state, required={"t", "phases"})
        t = _clock(state["t"])
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


class _FixedJoin(Join, Schedule):
    """Join of fixed-shape policies: a Schedule with a closed-form ``at(t)``."""

    policies: list[Schedule]  # type: ignore[assignment]

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

    def _get_state(self) -> dict[str, Any]:
        return {"t": self.t}

    def _set_state(self, state: dict[str, Any]) -> None:
        expect_keys("state", state, required={"t"})
        t = _clock(state["t"])
        self.t = t
        self._active = self._phase(t)
        self._hyper = self.at(t)

    @property
    def should_stop(self) -> bool:
        return False


_FixedJoin.__name__ = "Join"


def _clock(t: Any) -> int:
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= MAX_T:
        raise ValueError(f"state['t'] must be an integer in [0, 2**53], got {t!r}")
    return t
