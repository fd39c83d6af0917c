"""The torch examples run offline, exit 0 and report a trained model and AccelAT's cuts."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FINAL = re.compile(r"^final val_acc=([\d.]+) lr=([\deE.+-]+) cuts=(\d+)$", re.MULTILINE)
EPOCH_LR = re.compile(r"^epoch \d+: val_acc=[\d.]+ (?:next )?lr=([\deE.+-]+)$", re.MULTILINE)


def run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def lr_changes(lrs: list[str]) -> int:
    return sum(a != b for a, b in itertools.pairwise(lrs))


@pytest.mark.slow
def test_torch_loop_example_trains_and_cuts_the_lr():
    out = run("torch_loop.py")
    lr_max, lr_min = map(float, re.search(r"lr_max=(\S+) lr_min=(\S+)", out).groups())
    acc, lr, cuts = FINAL.search(out).groups()
    epoch_lrs = EPOCH_LR.findall(out)
    assert float(acc) > 0.9
    assert 0 < lr_min <= lr_max
    assert lr_min <= float(lr) <= lr_max
    # every cut AccelAT reports shows up as a change of the lr between printed epochs,
    # unless it was clamped at lr_min
    assert lr_changes([f"{lr_max:.6g}", *epoch_lrs]) <= int(cuts)
    assert int(cuts) >= 1 and float(epoch_lrs[-1]) < lr_max


@pytest.mark.slow
def test_lightning_example_feeds_val_acc_to_accelat():
    out = run("lightning_accelat.py")
    acc, lr, cuts = FINAL.search(out).groups()
    epoch_lrs = EPOCH_LR.findall(out)  # the lr used in each epoch
    assert float(acc) > 0.9
    assert len(epoch_lrs) == 12 and epoch_lrs[0] == "0.1"
    assert int(cuts) >= 1 and float(lr) < 0.1
    assert 1 <= lr_changes([*epoch_lrs, f"{float(lr):.4g}"]) <= int(cuts)
