"""Run this folder's tests again on the other Keras backend, in a subprocess.

Keras fixes its backend at import (``KERAS_BACKEND``), so one process exercises one
backend: this process uses whichever the environment picked (TensorFlow by default), and
this test runs every other test here on the other one (torch, or TensorFlow).
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


@pytest.mark.skipif(bool(os.environ.get(INNER)), reason="already the other-backend run")
def test_keras_adapter_suite_passes_on_the_other_backend():
    other = "torch" if keras.backend.backend() == "tensorflow" else "tensorflow"
    env = {**os.environ, "KERAS_BACKEND": other, INNER: "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "pytest", str(HERE), "-q", "-x", "-p", "no:cacheprovider"]
    command += ["-W", "ignore::DeprecationWarning", "--rootdir", str(HERE.parents[1])]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (
        f"KERAS_BACKEND={other}:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
    )
    assert " passed" in run.stdout
