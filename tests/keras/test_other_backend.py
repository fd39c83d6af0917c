"""Run this folder's tests again on the other Keras backends, each in a subprocess.

Keras fixes its backend at import (``KERAS_BACKEND``), so one process exercises one
backend: this process uses whichever the environment picked (TensorFlow by default), and
one test per other backend (TensorFlow, torch, JAX) runs every other test here on it.
The JAX run also runs ``tests/test_three_frameworks.py`` (with fewer examples per kind),
whose Keras side then writes JAX-backed variables.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

HERE = Path(__file__).resolve().parent
INNER = "ACCELAT_KERAS_OTHER_BACKEND_RUN"
BACKENDS = ("tensorflow", "torch", "jax")
#: Extra test files each backend's run takes besides this folder.
ALSO = {"jax": [HERE.parent / "test_three_frameworks.py"]}


@pytest.mark.skipif(bool(os.environ.get(INNER)), reason="already an other-backend run")
@pytest.mark.parametrize("other", [b for b in BACKENDS if b != keras.backend.backend()])
def test_keras_adapter_suite_passes_on_the_other_backend(other):
    env = {**os.environ, "KERAS_BACKEND": other, INNER: "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if other == "jax":
        env["JAX_PLATFORMS"] = "cpu"  # no accelerator probing; the CI machines have none
    command = [sys.executable, "-m", "pytest", str(HERE), *map(str, ALSO.get(other, []))]
    command += ["-q", "-x", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"]
    command += ["--rootdir", str(HERE.parents[1])]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (
        f"KERAS_BACKEND={other}:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
    )
    assert " passed" in run.stdout


@pytest.mark.skipif(not os.environ.get(INNER), reason="only inside an other-backend run")
def test_an_other_backend_run_really_runs_that_backend():
    assert keras.backend.backend() == os.environ["KERAS_BACKEND"]
