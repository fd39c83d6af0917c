"""The scheduler module's examples show each of its public names at work (tests/test_docstrings.py
runs every example)."""

from __future__ import annotations

import doctest
import importlib


def test_the_scheduler_module_shows_each_public_name_at_work():
    scheduler = importlib.import_module("accelat_torch.scheduler")
    finder = doctest.DocTestFinder()
    shown = {t.name.rsplit(".", 1)[-1] for t in finder.find(scheduler) if t.examples}
    assert {"PolicyScheduler", "PlateauPolicyScheduler", "scheduler_for"} <= shown
