"""The torch examples run offline, exit 0 and report a trained model and AccelAT's cuts."""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from accelat_core import from_config

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


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (registered, as its dataclasses need) under a private name."""
    qualified = f"accelat_examples_{name}"
    spec = importlib.util.spec_from_file_location(qualified, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules[qualified] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def averaged_tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    """What AveragedModel(use_buffers=True) averages: parameters, then floating buffers."""
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    return [t.detach().clone().double() for t in [*module.parameters(), *buffers]]


def hand_ema(snapshots: list[list[torch.Tensor]], decay: float) -> list[torch.Tensor]:
    """torch's EMA in float64: the first update copies, then e = decay * e + (1 - decay) * w."""
    ema = snapshots[0]
    for weights in snapshots[1:]:
        ema = [decay * e + (1 - decay) * w for e, w in zip(ema, weights, strict=True)]
    return ema


@pytest.mark.slow
def test_torch_ema_example_averages_every_update_and_feeds_the_averaged_accuracy_to_accelat():
    example = load_example("torch_ema")
    batches, (x_val, y_val) = example.blobs()
    per_epoch, first = len(batches), 6
    live, averaged_early = [], []
    accs: dict[str, list[float]] = {"averaged": [], "live": []}

    def after_update(update, model, averaged):
        if update <= first:
            live.append(averaged_tensors(model))
            averaged_early.append(averaged_tensors(averaged.module))
        if update % per_epoch == 0:  # the last update of an epoch: evaluated next
            accs["averaged"].append(example.accuracy(averaged, x_val, y_val))
            accs["live"].append(example.accuracy(model, x_val, y_val))

    torch.set_num_threads(1)
    run = example.train(epochs=8, horizon_epochs=1.0, after_update=after_update)

    decay = 1 - 1 / (1.0 * per_epoch)
    assert run.decay == decay
    n_params = len(list(run.model.parameters()))
    assert len(live[0]) == n_params + 2  # BatchNorm's running mean and variance
    eps = torch.finfo(torch.float32).eps
    for k in range(first):
        want = hand_ema(live[: k + 1], decay)
        # float32 lerp: a few ulps of the largest magnitude per update, accumulated
        scale = max(t.abs().max().item() for ts in live[: k + 1] for t in ts)
        tol = 4 * (k + 1) * eps * scale
        for got, expected in zip(averaged_early[k], want, strict=True):
            torch.testing.assert_close(got, expected, rtol=0, atol=tol)
        # the check tells the average from the live values, in the weights and in the
        # BatchNorm statistics (averaged too: use_buffers=True, not copied from the model)
        if k > 0:
            gaps = [(e - w).abs().max().item() for e, w in zip(want, live[k], strict=True)]
            assert max(gaps[:n_params]) > 10 * tol and min(gaps[n_params:]) > 10 * tol

    # AccelAT read the averaged model's accuracy, not the live model's, every epoch
    assert run.val_accs == accs["averaged"] != accs["live"]
    reference = from_config(run.policy.to_config())
    assert run.lrs == [reference.step(acc).lr for acc in run.val_accs]
    assert reference.decisions == run.policy.decisions and reference.decisions


def test_torch_ema_example_runs_as_a_script():
    out = run("torch_ema.py", "--epochs", "3", "--horizon-epochs", "2")
    assert "decay=0.984375" in out  # 1 - 1 / (2 * 32)
    assert len(EPOCH_LR.findall(out)) == 3 and FINAL.search(out)
