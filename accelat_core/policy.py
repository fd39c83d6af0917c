"""The Policy protocol and the small base for fixed-shape policies.

A policy is a small stateful object. ``step(metric=None)`` advances one unit (the caller
decides whether a unit is a batch or an epoch) and returns the :class:`Hyper` for the
next unit. Its whole state is JSON: ``state_dict()`` / ``load_state_dict()`` round-trip
through ``json.dumps`` exactly, and ``to_config()`` / :func:`accelat_core.from_config`
rebuild it from plain arguments.

Fixed-shape policies (:class:`Schedule`) have a pure closed form ``at(t)``, and
``step()`` is ``at(t + 1)`` and nothing more, so the two can never drift apart.
Metric-driven policies (``needs_metric = True``) are state machines whose state is one
dataclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from accelat_core._validate import MAX_STEPS, integer, saved
from accelat_core.decisions import Decision
from accelat_core.hyper import Hyper

#: Version of the ``state_dict`` layout. ``load_state_dict`` refuses newer versions.
STATE_FORMAT = 1
#: Every policy class by name, for :func:`upgraded`.
_CLASSES: dict[str, type[Policy]] = {}


class Policy(ABC):
    """Base of every policy.

    Subclasses set ``needs_metric`` and implement ``step``, ``get_config`` and the two
    state hooks ``_get_state`` / ``_set_state``. The public wrapper methods here do
    the format checking, so each policy only deals with its own fields.
    """

    #: True when ``step`` needs a metric (AccelAT); adapters use it to route the metric.
    #: A class attribute, except in the composites, whose instances take their children's.
    needs_metric: bool = False

    _hyper: Hyper

    # -- the hot path -------------------------------------------------------------
    @abstractmethod
    def step(self, metric: float | None = None) -> Hyper:
        """Advance one unit and return the hyperparameters for the next unit."""

    @property
    def hyper(self) -> Hyper:
        """The current hyperparameters (what the last ``step`` returned)."""
        return self._hyper

    @property
    def lr(self) -> float:
        """The current learning rate."""
        return self._hyper.lr

    @property
    def momentum(self) -> float | None:
        """The current momentum, or ``None`` when the policy does not drive it."""
        return self._hyper.momentum

    @property
    def should_stop(self) -> bool:
        """True once the policy judges that training cannot improve further."""
        return False

    def between(self, update: int, updates: int) -> Hyper:
        """The hyperparameters ``update`` weight updates after the newest ``step``, when
        ``updates`` weight updates separate two steps.

        An adapter that steps a metric-driven policy once per evaluation calls this after
        every weight update, so that a policy that moves within an evaluation (AccelAT's
        anneal) is followed update by update. By default the value holds: :attr:`hyper`.
        """
        return self._hyper

    # -- description ----------------------------------------------------------------
    @abstractmethod
    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments as plain JSON values."""

    @property
    def policy_name(self) -> str:
        """The name configs, states and reprs carry, which :func:`from_config` looks up.

        The class's own name, except for the composites: both warmup classes are named
        ``"Warmup"`` and both join classes ``"Join"`` (see :mod:`accelat_core.compose`).
        """
        return type(self).__name__

    def to_config(self) -> dict[str, Any]:
        """``{"policy": <name>, **get_config()}``; :func:`accelat_core.from_config` inverts it."""
        return {"policy": self.policy_name, **self.get_config()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{self.policy_name}({args})"

    #: Arguments renamed since an older version, old name -> new name.
    renamed: ClassVar[dict[str, str]] = {}

    @classmethod
    def upgrade_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """A config saved by an older version, in this version's argument names
        (:attr:`renamed`; a config holding both names is left as it is, to be refused)."""
        if not any(old in config and new not in config for old, new in cls.renamed.items()):
            return config
        return {cls.renamed.get(k, k): x for k, x in config.items()}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _CLASSES[cls.__name__] = cls

    # -- state ----------------------------------------------------------------------
    @abstractmethod
    def _get_state(self) -> dict[str, Any]:
        """This policy's mutable state as plain JSON values."""

    @abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None:
        """Restore ``_get_state()``'s output; validate every key and type."""

    def state_dict(self) -> dict[str, Any]:
        """``{"format": 1, "policy": <name>, "config": ..., "state": ...}``, JSON-serialisable."""
        return {
            "format": STATE_FORMAT,
            "policy": self.policy_name,
            "config": self.get_config(),
            "state": self._get_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a ``state_dict()``. Raise ``ValueError`` on a foreign or malformed one.

        The saved config must equal this policy's config: loading AccelAT state into a
        OneCycle, or a OneCycle of another length, is refused rather than half-applied.
        """
        expect_keys("state_dict", state_dict, required={"format", "policy", "config", "state"})
        fmt = state_dict["format"]
        if isinstance(fmt, bool) or not isinstance(fmt, int) or not 1 <= fmt <= STATE_FORMAT:
            raise ValueError(
                f"state_dict format must be an integer in [1, {STATE_FORMAT}], got {fmt!r}"
            )
        name = self.policy_name
        if state_dict["policy"] != name:
            raise ValueError(
                f"state_dict is for policy {state_dict['policy']!r}, cannot load it into {name}"
            )
        config = upgraded(state_dict["config"], name)  # saved under an older version's names
        if _jsonish(config) != _jsonish(self.get_config()):
            raise ValueError(
                f"state_dict was saved from {name} with config {state_dict['config']!r}, "
                f"which differs from this policy's {self.get_config()!r}"
            )
        if not isinstance(state_dict["state"], dict):
            raise ValueError(f"state_dict['state'] must be a dict, got {state_dict['state']!r}")
        self._set_state(state_dict["state"])


class MetricPolicy(Policy):
    """Base of the metric-driven policies (AccelAT, Plateau): a state machine whose whole state
    is one dataclass, ``_state``, with the metrics it accepted and the decisions it took."""

    needs_metric = True
    _state: Any

    @property
    def decisions(self) -> list[Decision]:
        """The decisions taken so far (a copy), oldest first."""
        return list(self._state.decisions)

    @property
    def evaluations(self) -> int:
        """How many metrics have been accepted so far."""
        return int(self._state.evaluations)


class Schedule(Policy):
    """A fixed-shape policy: the hyperparameters are a pure function ``at(t)`` of the clock.

    ``t`` starts at 0; ``lr`` is ``at(0).lr`` before the first ``step``, and after ``k``
    steps ``step`` has returned ``at(k)``. Past ``horizon`` the value holds.
    Subclasses validate and store their arguments, then call ``super().__init__()``.
    """

    t: int

    def __init__(self) -> None:
        self.t = 0
        self._hyper = self.at(0)

    @abstractmethod
    def at(self, t: int) -> Hyper:
        """The hyperparameters at clock ``t`` (an integer >= 0)."""

    @property
    def horizon(self) -> int | None:
        """The step after which ``at`` is constant, or ``None`` for an unending shape."""
        return None

    def step(self, metric: float | None = None) -> Hyper:
        """Advance the clock and return ``at(t)``. A metric, if given, is ignored."""
        t = self.t + 1
        self.t = t
        h = self._hyper = self.at(t)
        return h

    def _get_state(self) -> dict[str, Any]:
        return {"t": self.t}

    def _set_state(self, state: dict[str, Any]) -> None:
        expect_keys("state", state, required={"t"})
        t = clock(state["t"])
        self.t = t
        self._hyper = self.at(t)


def upgraded(config: Any, name: str | None = None) -> Any:
    """A saved config (of policy ``name``, or naming its ``"policy"``) with it and every
    policy config nested in it in today's argument names (each class's ``upgrade_config``)."""
    if isinstance(config, list):
        return [upgraded(c) for c in config]
    if not isinstance(config, dict):
        return config
    named = config.get("policy", name)
    cls = _CLASSES.get(named) if isinstance(named, str) else None
    config = {k: upgraded(c) for k, c in config.items()}
    return config if cls is None else cls.upgrade_config(config)


def clock(t: Any) -> int:
    """A saved clock ``state['t']``: an integer in ``[0, MAX_STEPS]``, or ``ValueError``."""
    return saved(integer, "t", t, lo=0, hi=MAX_STEPS)


def expect_keys(
    what: str, d: Any, *, required: set[str], optional: frozenset[str] = frozenset()
) -> None:
    """Raise ``ValueError`` unless ``d`` is a dict with exactly these keys."""
    if not isinstance(d, dict):
        raise ValueError(f"{what} must be a dict, got {type(d).__name__}: {d!r}")
    keys = set(d)
    missing = required - keys
    extra = keys - required - optional
    if missing:
        raise ValueError(f"{what} is missing key(s) {sorted(missing)}")
    if extra:
        raise ValueError(f"{what} has unknown key(s) {sorted(map(str, extra))}")


def _jsonish(value: Any) -> Any:
    """Normalise tuples to lists, so configs compare as they would after a JSON round trip."""
    if isinstance(value, (list, tuple)):
        return [_jsonish(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonish(v) for k, v in value.items()}
    return value
