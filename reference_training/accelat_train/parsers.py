"""Parsers of flag values: each turns the text a user types into a config field's value, or
raises ``argparse.ArgumentTypeError`` saying what was wrong (argparse names the flag).

>>> round(parse_eps("8/255") * 255, 9), parse_lr_min("lr_max/8"), names(("a", "b"))("b,a")
(8.0, 'lr_max/8', ['b', 'a'])
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Collection
from fractions import Fraction

from accelat_train.factory import FACTORY_SYNTAX, is_factory_name

#: The largest lr_max accepted: the lr range test ends at 10, and SGD beyond it only diverges.
MAX_LR = 10.0
#: The largest seed: numpy's and scikit-learn's legacy seeds are 32-bit, and Lightning's
#: ``seed_everything`` allows the same range, so a seed that works elsewhere works here.
MAX_SEED = 2**32 - 1
#: The most steps ``accelat plot-policy`` draws: a million weight updates is a long run
#: (ImageNet for 90 epochs is 450,000), and drawing it takes seconds; more only eats memory.
MAX_PLOT_STEPS = 1_000_000


def fraction(text: str) -> float:
    """``0.1``, ``8/255``: a finite float parsed exactly as written."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a finite number or fraction like 8/255"
        ) from None
    return value


def parse_eps(text: str) -> float:
    value = fraction(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is outside (0, 1] (pixels lie in [0, 1])")
    return value


def positive_or_none(text: str) -> float | None:
    """``none`` (off), or a number > 0 (``0.3``, ``1/3``)."""
    if text.strip().lower() == "none":
        return None
    value = fraction(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number > 0, or none")
    return value


def int_at_least(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """A parser of integers ``>= lo`` (and ``<= hi`` when given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"{text!r} must be >= {lo}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{text!r} must be in [{lo}, {hi}]")
        return value

    parse.__name__ = f"int>={lo}" if hi is None else f"int in [{lo}, {hi}]"
    return parse


def parse_lr_max(text: str) -> float | str:
    if text == "auto":
        return "auto"
    value = fraction(text)
    if not 0 < value <= MAX_LR:
        raise argparse.ArgumentTypeError(f"{text!r} must be 'auto' or a number in (0, {MAX_LR:g}]")
    return value


def parse_lr_min(text: str) -> float | str:
    """``1e-4`` (a value) or ``lr_max/1000`` (a ratio of lr_max, kept as written)."""
    head, _, ratio = text.strip().partition("/")
    if head.strip() == "lr_max":
        divisor = fraction(ratio)
        if not divisor >= 1:
            raise argparse.ArgumentTypeError(f"{text!r}: the divisor must be a number >= 1")
        return f"lr_max/{ratio.strip()}"
    value = fraction(text)
    if not 0 < value <= MAX_LR:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a number in (0, {MAX_LR:g}] or lr_max/N"
        )
    return value


def lr_min_value(lr_min: float | str, lr_max: float) -> float:
    """``lr_min`` as a number: a ratio ``lr_max/N`` resolved against ``lr_max``, capped at it."""
    if isinstance(lr_min, str):
        return lr_max * (1.0 / float(Fraction(lr_min.partition("/")[2])))
    return min(float(lr_min), lr_max)


def name_or_factory(allowed: Collection[str]) -> Callable[[str], str]:
    """A parser of one name from ``allowed`` (read at each parse: a registry) or a
    ``module:factory`` name."""

    def parse(text: str) -> str:
        if text not in allowed and not is_factory_name(text):
            raise argparse.ArgumentTypeError(
                f"{text!r}: choose from {', '.join(allowed)}, or give {FACTORY_SYNTAX}"
            )
        return text

    parse.__name__ = "name"
    return parse


def names(
    allowed: Collection[str], canonical: Callable[[str], str] | None = None
) -> Callable[[str], list[str]]:
    """A parser of comma lists drawn from ``allowed`` (read at each parse: a registry);
    ``canonical`` turns an alias into the name it stands for; a name given twice (or an alias
    beside its name) is refused."""

    def parse(text: str) -> list[str]:
        chosen = [(canonical or str)(t.strip()) for t in text.split(",") if t.strip()]
        known = tuple(allowed)
        bad = [n for n in chosen if n not in known]
        if bad or not chosen:
            raise argparse.ArgumentTypeError(
                f"{text!r}: unknown {', '.join(bad) or 'empty list'}; "
                f"choose from {', '.join(known)}"
            )
        twice = next((n for i, n in enumerate(chosen) if n in chosen[:i]), None)
        if twice is not None:
            raise argparse.ArgumentTypeError(f"{text!r} names {twice} twice")
        return chosen

    return parse


POSITIVE = int_at_least(1)
NONNEGATIVE = int_at_least(0)
SEED = int_at_least(0, MAX_SEED)
#: ``--threads``: at most one per CPU of the machine; torch starts every thread it is asked
#: for (a hundred thousand exhaust the memory map and crash), and more than the cores only wait.
MAX_THREADS = os.cpu_count() or 1
THREADS = int_at_least(1, MAX_THREADS)
PLOT_STEPS = int_at_least(1, MAX_PLOT_STEPS)
