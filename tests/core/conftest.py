"""Hypothesis settings for mutation runs of the core's tests.

Under ``mutmut`` (which runs the tests from its ``mutants/`` copy of the repository) or with
``ACCELAT_MUTATION=1``, every property runs 10 derandomized examples without the example
database: each mutant's run stays short, and the same mutant meets the same examples on
every run, so a score does not move by luck. Elsewhere the profile of ``tests/conftest.py``
("ci" by default) applies unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

settings.register_profile(
    "mutation",
    max_examples=10,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
if Path(__file__).resolve().parents[2].name == "mutants" or os.environ.get("ACCELAT_MUTATION"):
    settings.load_profile("mutation")
