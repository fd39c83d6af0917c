"""examples/keras_fit.py runs offline and trains: both policies reach a useful accuracy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    bool(os.environ.get("ACCELAT_KERAS_OTHER_BACKEND_RUN")),
    reason="the example is run once, on the main run's backend",
)
def test_keras_fit_example_trains_with_accelat_and_one_cycle_momentum():
    command = [sys.executable, str(ROOT / "examples" / "keras_fit.py"), "--epochs", "4"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    accelat, one_cycle = run.stdout.split("OneCycle")
    accuracies = [float(a) for a in re.findall(r"val_accuracy (\d\.\d+)", accelat)]
    momenta = [float(m) for m in re.findall(r"momentum (\d\.\d+)", one_cycle)]
    assert len(accuracies) == 4 and accuracies[-1] > 0.85
    # the cycled momentum is logged per epoch: near its low (0.85) after the first epoch,
    # back at its high (0.95) at the end; the optimizer was built with 0.9
    assert len(momenta) == 4 and momenta[0] < 0.9 < momenta[-1] == 0.95
