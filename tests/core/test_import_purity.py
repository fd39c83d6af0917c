"""``import accelat_core`` loads the standard library only: no numpy, torch, TensorFlow, Keras."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
before = set(sys.modules)
import accelat_core
import accelat_core.compose, accelat_core.finder, accelat_core.config
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def modules_loaded_by_import() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-I", "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def test_import_loads_no_framework() -> None:
    loaded = set(modules_loaded_by_import())
    assert not loaded & {"numpy", "torch", "tensorflow", "keras", "jax", "pandas"}


def test_import_loads_only_stdlib_and_accelat_core() -> None:
    foreign = [
        name
        for name in modules_loaded_by_import()
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] != "accelat_core"
    ]
    assert foreign == []
