"""``module:factory`` names: a user's own dataset or model, imported and called by name.

``--model mypkg.nets:wrn`` imports ``mypkg.nets`` and calls its ``wrn``; ``--dataset
mypkg.data:make`` likewise. The current folder is searched as ``python -m`` searches it (the
``accelat`` script alone would not: its own folder heads ``sys.path``). What the call receives
and must return is the caller's business (:func:`accelat_train.models.build_model`,
:func:`accelat_train.data.load_splits`); this module only resolves the name and calls it, and
every error names the field and the value.

>>> is_factory_name("mypkg.nets:wrn"), is_factory_name("resnet20")
(True, False)
>>> call_factory("number", "fractions:Fraction", numerator=3, denominator=6)
Fraction(1, 2)
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from typing import Any

FACTORY_SYNTAX = "'module:factory' (e.g. 'mypkg.nets:wrn')"

_IDENTIFIERS = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_PATTERN = re.compile(rf"({_IDENTIFIERS}):({_IDENTIFIERS})")


def is_factory_name(name: object) -> bool:
    """Whether ``name`` has the form ``module.path:attribute`` (dotted identifiers each side)."""
    return isinstance(name, str) and _PATTERN.fullmatch(name) is not None


def resolve(field: str, name: str, *, is_callable: bool = True) -> Any:
    """What ``name`` (``"module:attr"``, ``attr`` dotted for an attribute of an attribute)
    names, its module imported (the current folder searched too): a callable, unless
    ``is_callable`` is False.

    ``field`` ("model", "dataset", "method", ...) names the setting in errors: a ``ValueError``
    when the module cannot be imported, has no such attribute, or the attribute is not callable.

    >>> resolve("number", "fractions:Fraction.from_float")(0.5)
    Fraction(1, 2)
    """
    match = _PATTERN.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"{field} must be {FACTORY_SYNTAX}, got {name!r}")
    module_name, attr = match.groups()
    _search_current_folder()
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"{field} {name!r}: cannot import module {module_name!r} ({exc}); run from the "
            "folder that holds it, or put that folder on PYTHONPATH"
        ) from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{field} {name!r}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if is_callable and not callable(target):
        raise ValueError(
            f"{field} {name!r}: {attr!r} is a {type(target).__name__}, not a callable factory"
        )
    return target


def call_factory(field: str, name: str, **kwargs: Any) -> Any:
    """Import the module of ``name`` (``"module:attr"``), and return ``attr(**kwargs)``.

    ``field`` ("model", "dataset") names the setting in errors: a ``ValueError`` when
    :func:`resolve` refuses ``name`` or the factory does not accept ``kwargs``. An error raised
    inside the factory itself propagates unchanged.
    """
    target = resolve(field, name)
    attr = name.partition(":")[2]
    call = f"{attr}({', '.join(f'{k}=...' for k in kwargs)})"
    try:
        inspect.signature(target).bind(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{field} {name!r}: cannot be called as {call}: {exc}") from None
    except ValueError:
        pass  # no signature to inspect (some builtins): let the call itself decide
    return target(**kwargs)


def _search_current_folder() -> None:
    """Put the current folder first on ``sys.path`` unless it is there (as ``""`` too), as
    ``python -m`` does; kept there, so that the processes ``accelat compare`` spawns, which
    inherit ``sys.path``, import the factory's module too."""
    here = os.getcwd()
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)
