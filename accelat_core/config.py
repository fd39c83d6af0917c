"""``from_config`` / ``to_config`` and the name registry.

A policy's config is ``{"policy": "<ClassName>", **constructor_kwargs}`` in plain JSON.
Nested policies (``Warmup``, ``Join``) hold their children's configs.

>>> from accelat_core import OneCycle, from_config
>>> p = OneCycle(0.1, total_steps=100)
>>> from_config(p.to_config()).at(30) == p.at(30)
True
"""

from __future__ import annotations

from typing import Any, TypeVar

from accelat_core.policy import Policy

_REGISTRY: dict[str, type[Policy]] = {}

P = TypeVar("P", bound=type[Policy])


def register(cls: P) -> P:
    """Class decorator: make ``cls`` buildable by name from a config."""
    _REGISTRY[cls.__name__] = cls
    return cls


def policy_names() -> list[str]:
    """The names ``from_config`` accepts, sorted."""
    return sorted(_REGISTRY)


def from_config(config: dict[str, Any]) -> Policy:
    """Build a policy from ``{"policy": name, **kwargs}``.

    Raises ``ValueError`` for an unknown name or unknown / missing arguments, and the
    constructor's own ``ValueError`` / ``TypeError`` for invalid values.
    """
    if not isinstance(config, dict):
        raise ValueError(f"a policy config must be a dict, got {type(config).__name__}: {config!r}")
    if "policy" not in config:
        raise ValueError(f"a policy config needs a 'policy' key naming one of {policy_names()}")
    name = config["policy"]
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown policy {name!r}; known policies: {', '.join(policy_names())}")
    cls = _REGISTRY[name]
    kwargs = {k: v for k, v in config.items() if k != "policy"}
    bad = [k for k in kwargs if not isinstance(k, str)]
    if bad:
        raise ValueError(f"{name} config keys must be strings, got {bad!r}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        # Unknown or missing keyword arguments surface as TypeError from the call itself;
        # report them as a config error that names the policy.
        if "argument" in str(exc):
            raise ValueError(f"invalid {name} config {config!r}: {exc}") from None
        raise
