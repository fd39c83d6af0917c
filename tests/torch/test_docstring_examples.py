"""Every docstring example in accelat_torch runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import accelat_torch

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(accelat_torch.__path__, prefix="accelat_torch.")
)


@pytest.mark.parametrize("name", ["accelat_torch", *MODULES])
def test_docstring_examples_hold(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_the_scheduler_module_shows_each_public_name_at_work():
    scheduler = importlib.import_module("accelat_torch.scheduler")
    finder = doctest.DocTestFinder()
    shown = {t.name.rsplit(".", 1)[-1] for t in finder.find(scheduler) if t.examples}
    assert {"PolicyScheduler", "PlateauPolicyScheduler", "scheduler_for"} <= shown
