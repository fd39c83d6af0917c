"""Names that moved: the old name keeps working until 0.4, with a ``DeprecationWarning`` that
names the new one (the CHANGELOG lists each).

A module whose names moved sets its ``__getattr__`` (PEP 562) to :func:`moved`; a module that
itself moved is a small file of that kind at the old path.

>>> import warnings
>>> getter = moved("old.place", {"sqrt": ("math:sqrt", "math.sqrt")})
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     getter("sqrt")(4.0), str(caught[0].message)
(2.0, 'old.place.sqrt is deprecated since 0.2 and goes in 0.4: use math.sqrt')
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

#: When the old names go.
REMOVED_IN = "0.4"


def warn_moved(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn (``DeprecationWarning``) that ``old`` goes in :data:`REMOVED_IN`: use ``new``."""
    warnings.warn(
        f"{old} is deprecated since 0.2 and goes in {REMOVED_IN}: use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def moved(
    module: str, names: Mapping[str, tuple[str | Callable[[], Any], str]]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``module``: ``names`` maps each old name to ``(where,
    new)``, ``where`` the object as ``"package.module:attribute"`` (or a function that
    computes it, for a name that became a question to ask a registry) and ``new`` the form the
    warning tells the user to write. Any other name is an ``AttributeError``, as usual."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        where, new = names[name]
        warn_moved(f"{module}.{name}", new)
        if callable(where):
            return where()
        path, _, attribute = where.partition(":")
        value: Any = importlib.import_module(path)
        for part in attribute.split("."):
            value = getattr(value, part)
        return value

    return __getattr__
