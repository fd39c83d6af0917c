"""AccelAT's state: one dataclass, what a bad metric does to it, its JSON form, and the check
of a saved one.

A saved state is checked in full before it is used: every field's type and range, and what
the rule makes impossible (a history longer than the gain reads, a last decision that is not
the newest one, an anneal that no decision started). States saved by 0.2 (``below_min``
instead of ``at_floor``, no ``anneal_start``) load as they were meant.

>>> state = AccelATState(lr=0.1, history=[0.5], evaluations=1)
>>> parse_state(state_json(state, anneal=False), 0.001, 0.1, needed=3) == state
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from accelat_core._validate import MAX_STEPS, integer, metric_value, real, saved, saved_list
from accelat_core.decisions import Decision, saved_decisions
from accelat_core.policy import expect_keys

_KEYS = {"lr", "history", "evaluations", "last_drop", "at_floor", "skipped", "decisions"}


@dataclass
class AccelATState:
    """Everything :class:`~accelat_core.AccelAT` remembers; ``state_dict()['state']`` is this
    as JSON.

    Attributes:
        lr: the lr the rule holds (the anneal starts from it).
        history: the newest accepted metrics, as many as the gain reads.
        evaluations: the metrics accepted; the newest has index ``evaluations - 1``.
        last_drop: the evaluation of the last decision (None before any).
        at_floor: the decisions taken with the lr already at ``min_lr``.
        skipped: the step-call indices of NaN/inf metrics that were ignored.
        decisions: every decision that found too little gain, oldest first.
        anneal_start: the evaluation after which the anneal started (None before it).
        anneal_length: the anneal's evaluations (0 before it).
    """

    lr: float
    history: list[float] = field(default_factory=list)
    evaluations: int = 0
    last_drop: int | None = None
    at_floor: int = 0
    skipped: list[int] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    anneal_start: int | None = None
    anneal_length: int = 0

    def anneal_step(self) -> int | None:
        """The evaluations since the anneal started (0 at its start), or None before it."""
        return None if self.anneal_start is None else self.evaluations - 1 - self.anneal_start


def admit(state: AccelATState, metric: Any, nan_policy: str) -> float | None:
    """A metric that is not a finite float: as a float, or None when it is skipped
    (``nan_policy="skip"``, its call index recorded in ``state.skipped``), or refused."""
    call = state.evaluations + len(state.skipped)
    value = metric_value("AccelAT", metric, call)
    if math.isfinite(value):
        return value
    _skip_or_refuse(
        state, nan_policy, f"metric must be finite, got {metric!r} at evaluation {call}"
    )
    return None


def overflow(state: AccelATState, gain: float, values: list[float], nan_policy: str) -> None:
    """A finite metric whose gain overflows (its values span more than the float range):
    skipped, or refused with the state as it was."""
    call = state.evaluations + len(state.skipped)
    problem = f"the gain at evaluation {call} overflows to {gain!r}: the values {values!r} span"
    _skip_or_refuse(state, nan_policy, f"{problem} more than the float range")


def _skip_or_refuse(state: AccelATState, nan_policy: str, problem: str) -> None:
    if nan_policy != "skip":
        raise ValueError(f"{problem} (pass nan_policy='skip' to ignore such evaluations)")
    state.skipped.append(state.evaluations + len(state.skipped))


def state_json(state: AccelATState, *, anneal: bool) -> dict[str, Any]:
    """``state`` as plain JSON (the anneal's fields only for a rule with an anneal)."""
    data = asdict(state)
    data["decisions"] = [list(d) for d in state.decisions]
    if not anneal:
        del data["anneal_start"], data["anneal_length"]
    return data


def parse_state(
    data: Any, min_lr: float, lr_max: float, needed: int, *, anneal: bool = False
) -> AccelATState:
    """A saved state, checked against the rule it was saved from (its lr bounds, the values
    its gain reads, whether it anneals); anything else is a ``ValueError`` naming the field
    and the value."""
    if isinstance(data, dict) and "below_min" in data and "at_floor" not in data:  # 0.2's name
        data = {("at_floor" if k == "below_min" else k): v for k, v in data.items()}
    # A rule with an anneal is new in 0.3: its states always hold the anneal's two fields.
    expect_keys(
        "state", data, required=_KEYS | ({"anneal_start", "anneal_length"} if anneal else set())
    )
    lr = saved(real, "lr", data["lr"])
    if not min_lr <= lr <= lr_max:
        raise ValueError(
            f"state['lr'] must be in [min_lr, lr_max] = [{min_lr}, {lr_max}], got {lr!r}"
        )
    evaluations = saved(integer, "evaluations", data["evaluations"], lo=0, hi=MAX_STEPS)
    history = saved_list(data, "history", real)
    if len(history) != min(evaluations, needed):
        raise ValueError(
            f"state['history'] must hold min(evaluations, {needed}) = "
            f"{min(evaluations, needed)} values, got {len(history)}"
        )
    decisions = saved_decisions(data["decisions"], min_lr, lr_max)
    last = data["last_drop"]
    if last is not None:
        last = saved(integer, "last_drop", last, lo=0)
        if last >= evaluations:
            raise ValueError(
                f"state['last_drop'] must be < evaluations ({evaluations}), got {last}"
            )
    if (last is None) != (not decisions) or (decisions and decisions[-1].evaluation != last):
        raise ValueError(f"state['last_drop'] ({last!r}) must be the last decision's evaluation")
    at_floor = saved(integer, "at_floor", data["at_floor"], lo=0)
    if at_floor > len(decisions):
        raise ValueError(f"state['at_floor'] ({at_floor}) cannot exceed the number of decisions")
    skipped = saved_list(data, "skipped", integer, lo=0, hi=MAX_STEPS)
    start, length = data.get("anneal_start"), data.get("anneal_length", 0)  # 0.2: no anneal
    if start is not None:
        start = saved(integer, "anneal_start", start, lo=0, hi=evaluations - 1)
        length = saved(integer, "anneal_length", length, lo=1, hi=MAX_STEPS)
    elif length != 0:
        raise ValueError(f"state['anneal_length'] must be 0 before the anneal, got {length!r}")
    return AccelATState(lr, history, evaluations, last, at_floor, skipped, decisions, start, length)
