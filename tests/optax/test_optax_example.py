"""examples/optax_loop.py runs offline and trains: both policies reach a useful accuracy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_optax_loop_example_trains_with_accelat_and_one_cycle_momentum():
    command = [sys.executable, str(ROOT / "examples" / "optax_loop.py"), "--epochs", "4"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    accelat, one_cycle = run.stdout.split("OneCycle")
    accuracies = [float(a) for a in re.findall(r"val_accuracy (\d\.\d+)", accelat)]
    assert len(accuracies) == 4 and accuracies[-1] > 0.85
    accuracies = [float(a) for a in re.findall(r"val_accuracy (\d\.\d+)", one_cycle)]
    momenta = [float(m) for m in re.findall(r"momentum (\d\.\d+)", one_cycle)]
    lrs = [float(lr) for lr in re.findall(r"last lr (\S+)", one_cycle)]
    assert len(accuracies) == 4 and accuracies[-1] > 0.85
    # momentum near its low (0.85) after the first epoch, back at its high at the end; the
    # lr at the end of the cycle is at its floor (0.2 / 25 / 1e4 = 8e-7)
    assert len(momenta) == 4 and momenta[0] < 0.9 < momenta[-1] == 0.95
    assert lrs[-1] == 8e-7 and max(lrs) > 0.1
