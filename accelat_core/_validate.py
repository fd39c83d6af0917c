"""Argument checks shared by every policy.

Each check names the parameter, the value and the allowed range, and rejects bools,
NaN and infinities: a policy must never be built into a state that can emit them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def real(
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    finite: bool = True,
) -> float:
    """Return ``value`` as a float within the given bounds, or raise naming ``name``.

    NaN and ints beyond float range are always refused; ``finite=False`` lets ±inf pass.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    try:
        v = float(value)
    except OverflowError:  # an int beyond float range
        v = math.nan
    if math.isnan(v) or (finite and math.isinf(v)):
        raise ValueError(f"{name} must be {'finite' if finite else 'a number'}, got {value!r}")
    if (lo is not None and (v < lo or (lo_open and v == lo))) or (
        hi is not None and (v > hi or (hi_open and v == hi))
    ):
        left = "-inf" if lo is None else f"{lo:g}"
        right = "inf" if hi is None else f"{hi:g}"
        lb = "(" if lo_open or lo is None else "["
        rb = ")" if hi_open or hi is None else "]"
        raise ValueError(f"{name} must be in {lb}{left}, {right}{rb}, got {value!r}")
    return v


def positive(name: str, value: Any) -> float:
    """A finite float > 0 (learning rates, factors of scale)."""
    return real(name, value, lo=0.0, lo_open=True)


#: The largest step count a policy accepts, and the largest clock a state may carry: beyond
#: 2**53 an int no longer converts to float exactly, and closed forms such as ``rate ** t``
#: overflow.
MAX_STEPS = 2**53


def integer(name: str, value: Any, *, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an int in ``[lo, hi]``, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if lo is not None and value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        bound = "2**53" if hi == MAX_STEPS else str(hi)
        allowed = f"<= {bound}" if lo is None else f"in [{lo}, {bound}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return int(value)


def choice(name: str, value: Any, options: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``options``, or raise listing them."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def momentum_pair(name: str, value: Any) -> tuple[float, float] | None:
    """``None``, or a ``(low, high)`` pair with 0 <= low <= high <= 1."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(f"{name} must be None or a (low, high) pair, got {value!r}")
    low = real(f"{name}[0]", value[0], lo=0.0, hi=1.0)
    high = real(f"{name}[1]", value[1], lo=0.0, hi=1.0)
    if low > high:
        raise ValueError(f"{name} must satisfy low <= high, got {value!r}")
    return (low, high)


def lr_range(lo_name: str, lo: float, hi_name: str, hi: float) -> None:
    """Raise if the lower learning rate exceeds the upper one."""
    if lo > hi:
        raise ValueError(f"{lo_name} must be <= {hi_name}, got {lo_name}={lo!r} > {hi_name}={hi!r}")


def saved(check: Callable[..., T], key: str, value: Any, **bounds: Any) -> T:
    """``check(f"state['{key}']", value, **bounds)`` for a field of a saved state.

    A malformed state is a ``ValueError`` whatever is wrong with it (the type included),
    as ``Policy.load_state_dict`` promises.
    """
    try:
        return check(f"state['{key}']", value, **bounds)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def metric_value(owner: str, metric: Any, call: int) -> float:
    """A metric passed to ``owner``'s ``step`` as a float, NaN and ±inf included.

    ``None``, a bool or anything that is not a real number raises ``ValueError`` naming the
    value and the evaluation (step-call) index ``call``; an int beyond float range is inf.
    """
    if metric is None or isinstance(metric, bool) or not isinstance(metric, numbers.Real):
        raise ValueError(
            f"{owner} needs a real-number metric at every step, got {metric!r} at evaluation {call}"
        )
    try:
        return float(metric)
    except OverflowError:  # an int beyond float range is as unusable as inf
        return math.inf


def optional(check: Callable[..., T], name: str, value: Any, **bounds: Any) -> T | None:
    """``None``, or ``check(name, value, **bounds)``."""
    return None if value is None else check(name, value, **bounds)


def saved_list(state: dict[str, Any], key: str, check: Callable[..., T], **bounds: Any) -> list[T]:
    """``state[key]``: a list whose every item passes ``check``, or ``ValueError`` naming it."""
    items = state[key]
    if not isinstance(items, list):
        raise ValueError(f"state['{key}'] must be a list, got {items!r}")
    return [saved(check, f"{key}[]", v, **bounds) for v in items]


def renamed(owner: str, old: str, old_value: Any, new: str, new_value: Any) -> Any:
    """An argument renamed in 0.2: ``new_value``, or the ``old`` name's value with a
    ``DeprecationWarning`` naming ``new`` (the old name goes in 0.4); both is a ``TypeError``."""
    if old_value is None:
        return new_value
    import warnings

    warnings.warn(
        f"{owner}({old}=...) is deprecated since 0.2 and goes in 0.4: use {new}",
        DeprecationWarning,
        stacklevel=3,
    )
    if new_value is not None:
        raise TypeError(f"give {new} or its old name {old}, not both")
    return old_value
