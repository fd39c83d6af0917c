"""Every public class and function documents its arguments, and every public record its fields.

The public names are each package's ``__all__``: accelat_core's and those of the three
adapters (skipped, as in tests/test_docstrings.py, where their framework is not installed).
A class or function whose signature has parameters needs a Google-style ``Args:`` section in
its own docstring with one entry per parameter (``*args`` / ``**kwargs`` as such) and none for
a parameter it does not have; a record (a dataclass or a NamedTuple) needs an ``Attributes:``
section with one entry per field. Entries are the lines one level under the header, read as
``name:`` or ``name (type):``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Each package and the framework it needs (None: the standard library only).
PACKAGES = {
    "accelat_core": None,
    "accelat_torch": "torch",
    "accelat_keras": "keras",
    "accelat_optax": "optax",
}
# Names whose docstrings live in files the lead is rewriting for issue 26: each fails the check
# today (strict: once its docstring is fixed, the entry must go).
PENDING: dict[str, str] = {}

_ENTRY = re.compile(r"(\*{0,2}\w+)(?: \([^)]*\))?:(?:\s|$)")


def section_entries(doc: str, header: str) -> list[str] | None:
    """The names of the entries of ``doc``'s ``header`` section (``"Args:"``), or ``None``
    when it has none. A line one level under the header that is not an entry is returned
    as ``"<not an entry: ...>"``, so that a misindented continuation shows."""
    lines = inspect.cleandoc(doc).splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == header), None)
    if start is None:
        return None
    indent = len(lines[start]) - len(lines[start].lstrip())
    names: list[str] = []
    level = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth <= indent:
            break
        level = depth if level is None else level
        match = _ENTRY.match(line.strip()) if depth == level else None
        if depth <= level:  # an entry, or a line at or left of the entries' level that is not one
            names.append(match.group(1) if match else f"<not an entry: {line.strip()!r}>")
    return names


def is_record(obj: Any) -> bool:
    """A dataclass or a NamedTuple: its fields are its attributes."""
    return inspect.isclass(obj) and (
        dataclasses.is_dataclass(obj) or (issubclass(obj, tuple) and hasattr(obj, "_fields"))
    )


def record_fields(obj: Any) -> list[str]:
    if dataclasses.is_dataclass(obj):
        return [f.name for f in dataclasses.fields(obj)]
    return list(obj._fields)


def parameter_names(obj: Callable[..., Any]) -> list[str]:
    """The signature's parameters as an ``Args:`` section names them (``self`` is not one)."""
    stars = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
    return [
        stars.get(p.kind, "") + p.name
        for p in inspect.signature(obj).parameters.values()
        if p.name != "self"
    ]


def undocumented(obj: Any) -> list[str]:
    """What ``obj``'s own docstring fails to document; empty when it documents everything."""
    if is_record(obj):
        header, expected = "Attributes:", record_fields(obj)
    else:
        header, expected = "Args:", parameter_names(obj)
    if not expected:
        return []
    entries = section_entries(obj.__doc__ or "", header)
    if entries is None:
        return [f"no {header} section (expected {', '.join(expected)})"]
    problems = [f"{name}: no entry in {header}" for name in expected if name not in entries]
    problems += [f"{name}: an entry for no such name" for name in entries if name not in expected]
    problems += [f"{name}: two entries" for name in set(entries) if entries.count(name) > 1]
    return problems


def _public(package: str) -> Iterator[tuple[str, Any]]:
    module = importlib.import_module(package)
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            yield f"{package}.{name}", obj


def _cases() -> Iterator[object]:
    seen: set[int] = set()
    for package, framework in PACKAGES.items():
        if framework is not None and importlib.util.find_spec(framework) is None:
            why = f"{framework} is not installed (the [dev] extra brings it)"
            yield pytest.param(package, None, marks=pytest.mark.skip(reason=why), id=package)
            continue
        for qualified, obj in _public(package):
            if id(obj) in seen:  # a re-export (accelat_torch.LRFindResult is the core's)
                continue
            seen.add(id(obj))
            pending = PENDING.get(qualified)
            marks = [] if pending is None else [pytest.mark.xfail(reason=pending, strict=True)]
            yield pytest.param(qualified, obj, id=qualified, marks=marks)


@pytest.mark.parametrize(("name", "obj"), list(_cases()))
def test_public_name_documents_every_argument_and_field(name: str, obj: Any) -> None:
    problems = undocumented(obj)
    assert not problems, f"{name}'s docstring: " + "; ".join(problems)


def test_the_check_finds_a_missing_misnamed_or_misindented_entry() -> None:
    def documented(lr: float, steps: int = 1, *args: Any, **kwargs: Any) -> None:
        """Toy.

        Args:
            lr: the lr.
            steps (int): the steps,
                over two lines.
            *args: passed on.
            **kwargs: passed on.

        Returns:
            nothing.
        """

    def missing(lr: float, steps: int) -> None:
        """Toy.

        Args:
            lr: the lr.
            step: a misspelt steps.
          continued at the wrong depth.
        """

    assert undocumented(documented) == []
    assert undocumented(missing) == [
        "steps: no entry in Args:",
        "step: an entry for no such name",
        "<not an entry: 'continued at the wrong depth.'>: an entry for no such name",
    ]
    assert undocumented(lambda x: x) == ["no Args: section (expected x)"]
