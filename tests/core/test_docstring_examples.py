"""Every docstring example in accelat_core runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import accelat_core

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(accelat_core.__path__, prefix="accelat_core.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_the_examples_exist():
    examples = sum(
        doctest.testmod(importlib.import_module(name), report=False).attempted for name in MODULES
    )
    assert examples >= 20, f"only {examples} docstring examples in accelat_core"
