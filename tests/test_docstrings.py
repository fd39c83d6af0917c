"""Every docstring example of the adapters and the trainer runs and prints what it shows.

accelat_core's examples run in tests/core/test_docstring_examples.py. Every module of each
package is walked with pkgutil; the only module left out is ``accelat_train.__main__``:
importing it runs the command line, and it holds no example.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
from collections.abc import Iterator

import pytest

# Each package, the framework it needs, and the fewest examples it holds today, so that a walk
# that finds no module, or an example deleted instead of fixed, shows.
PACKAGES = {
    "accelat_torch": ("torch", 20),
    "accelat_keras": ("keras", 10),
    "accelat_optax": ("optax", 15),
    "accelat_train": ("torch", 50),
}
LEFT_OUT = {"accelat_train.__main__"}


def modules(package: str) -> list[str]:
    """``package`` and all its modules but :data:`LEFT_OUT`."""
    path = importlib.import_module(package).__path__
    found = [m.name for m in pkgutil.walk_packages(path, prefix=f"{package}.")]
    return [package, *(name for name in found if name not in LEFT_OUT)]


def _installed(package: str) -> bool:
    return importlib.util.find_spec(PACKAGES[package][0]) is not None


def _cases() -> Iterator[object]:
    for package, (framework, _) in PACKAGES.items():
        if not _installed(package):
            why = f"{framework} is not installed (the [dev] extra brings it)"
            yield pytest.param(package, marks=pytest.mark.skip(reason=why), id=package)
            continue
        for name in modules(package):
            yield pytest.param(name, id=name)


@pytest.mark.parametrize("name", list(_cases()))
def test_docstring_examples_hold(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


@pytest.mark.parametrize("package", list(PACKAGES))
def test_every_package_keeps_its_examples(package: str) -> None:
    if not _installed(package):
        pytest.skip(f"{PACKAGES[package][0]} is not installed (the [dev] extra brings it)")
    finder = doctest.DocTestFinder()
    examples = sum(
        len(test.examples)
        for name in modules(package)
        for test in finder.find(importlib.import_module(name))
    )
    fewest = PACKAGES[package][1]
    assert examples >= fewest, f"{package} has {examples} docstring examples, had {fewest}+"
