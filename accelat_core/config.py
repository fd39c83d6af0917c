"""``from_config`` / ``to_config`` and the name registry.

A policy's config is ``{"policy": "<ClassName>", **constructor_kwargs}`` in plain JSON.
The composites (``"Warmup"``, ``"Join"``) are built by their functions and hold their
children's configs.

>>> from accelat_core import OneCycle, from_config
>>> p = OneCycle(0.1, total_steps=100)
>>> from_config(p.to_config()).at(30) == p.at(30)
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from accelat_core.policy import Policy, upgraded

_REGISTRY: dict[str, Callable[..., Policy]] = {}

B = TypeVar("B", bound=Callable[..., Policy])


def register(builder: B, name: str | None = None) -> B:
    """Make ``builder`` buildable by ``name`` from a config; a class decorator as ``@register``.

    ``builder`` is a policy class, or a function returning a policy (``warmup``); ``name``
    (by default ``builder.__name__``) must be the ``policy_name`` of what it builds.
    """
    _REGISTRY[builder.__name__ if name is None else name] = builder
    return builder


def policy_names() -> list[str]:
    """The names ``from_config`` accepts, sorted.

    >>> "AccelAT" in policy_names(), "Warmup" in policy_names()
    (True, True)
    """
    return sorted(_REGISTRY)


def from_config(config: dict[str, Any]) -> Policy:
    """Build a policy from ``{"policy": name, **kwargs}``, the inverse of ``to_config()``.

    Raises ``ValueError`` for an unknown name or unknown / missing arguments, and the
    constructor's own ``ValueError`` / ``TypeError`` for invalid values. A config saved by an
    older version (an argument's old name) is read in today's names.

    Args:
        config: ``"policy"``, one of :func:`policy_names`, and the constructor's keyword
            arguments as plain JSON values (a composite's children as nested configs).

    >>> from_config({"policy": "StepDecay", "lr": 0.5, "milestones": [2], "factor": 0.5})
    StepDecay(lr=0.5, milestones=[2], factor=0.5)
    """
    if not isinstance(config, dict):
        raise ValueError(f"a policy config must be a dict, got {type(config).__name__}: {config!r}")
    if "policy" not in config:
        raise ValueError(f"a policy config needs a 'policy' key naming one of {policy_names()}")
    name = config["policy"]
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown policy {name!r}; known policies: {', '.join(policy_names())}")
    builder = _REGISTRY[name]
    kwargs = {k: v for k, v in config.items() if k != "policy"}
    bad = [k for k in kwargs if not isinstance(k, str)]
    if bad:
        raise ValueError(f"{name} config keys must be strings, got {bad!r}")
    # A config saved under an older version's names loads as it was meant.
    kwargs = upgraded(kwargs, name)
    try:
        return builder(**kwargs)
    except TypeError as exc:
        # Unknown or missing keyword arguments surface as TypeError from the call itself;
        # report them as a config error that names the policy.
        if "argument" in str(exc):
            raise ValueError(f"invalid {name} config {config!r}: {exc}") from None
        raise
