"""Adding a training method, an evaluation attack, a dataset and a logger is each one's code
and one record (:mod:`accelat_train.registry`), nothing else: this module defines a toy of
each outside the package, registers it, and runs ``accelat train`` and ``accelat eval``
through the command line with them.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from accelat_train import registry
from accelat_train.adversarial.methods import Method
from accelat_train.callbacks.callback import Callback
from accelat_train.cli import main
from accelat_train.config import TrainConfig
from accelat_train.data.arrays import ArrayData
from accelat_train.flags import build_parser

torch.set_num_threads(1)


class UniformNoise(Method):
    """Training on images moved by uniform noise in the ε-ball (a toy method: 1 pass an image)."""

    def _adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        noise = torch.rand(x.shape, generator=self.generator) * 2 - 1
        return (x + self.eps * noise).clamp(0, 1)


class Brighten:
    """A toy evaluation attack: every pixel raised by ε."""

    def describe(self, steps: int) -> str:
        return f"every pixel + eps ({steps} steps unused)"

    @contextlib.contextmanager
    def runner(self, model, x, epsilons, steps, batch_size) -> Iterator:
        def run(xb, yb):
            out = []
            for eps in epsilons:
                x_adv = (xb + eps).clamp(0, 1)
                with torch.no_grad():
                    out.append((x_adv, model(x_adv).argmax(1) != yb))
            return out

        yield run


def read_stripes(data_dir, *, cache_dir=None, download=False):
    """A toy dataset: 8x8 grey images of three classes, a bright row at 2, 4 or 6, noisy."""
    rng = np.random.default_rng(0)

    def split(n):
        y = np.arange(n) % 3
        x = rng.integers(0, 60, (n, 8, 8, 1), dtype=np.uint8)
        x[np.arange(n), 2 + 2 * y] += 180
        return ArrayData(x, y.astype(np.int64))

    return split(90), split(30), ("low", "middle", "high")


class EpochLines(Callback):
    """A toy logger: one line per epoch in RUN/epochs.txt."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / "epochs.txt"

    def on_epoch_end(self, trainer, record):
        if trainer.is_main:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{record.epoch} {record.train_loss:.6f}\n")


RECORDS = [
    (registry.METHODS, registry.MethodEntry(
        name="noise", help="uniform noise in the eps-ball (a toy)", build=UniformNoise,
        finder_attack="clean")),
    (registry.ATTACKS, registry.AttackEntry(
        name="brighten", help="every pixel + eps (a toy)", build=Brighten())),
    (registry.DATASETS, registry.DatasetEntry(
        name="stripes", help="three classes of striped 8x8 images (a toy)", build=read_stripes,
        data_dir="refused", val_size=15)),
    (registry.LOGGERS, registry.LoggerEntry(
        name="lines", help="RUN/epochs.txt (a toy)", build=EpochLines)),
]  # fmt: skip


@pytest.fixture
def toys():
    for kind, entry in RECORDS:
        kind.register(entry)
    yield
    for kind, entry in RECORDS:
        kind.unregister(entry.name)


TRAIN = [
    "train", "--dataset", "stripes", "--method", "noise", "--log", "lines",
    "--attacks", "brighten,linfpgd", "--model", "cnn", "--eps", "0.1", "--epochs", "2",
    "--batch-size", "15", "--policy", "constant", "--lr-max", "auto", "--lr-find-steps", "5",
    "--monitor-size", "10", "--monitor-steps", "1", "--eval-steps", "2", "--ema-epochs", "0",
    "--device", "cpu", "--quiet",
]  # fmt: skip


def test_a_toy_method_attack_dataset_and_logger_run_through_the_command_line(
    toys, tmp_path, capsys
):
    run = tmp_path / "run"
    assert main([*TRAIN, "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["dataset"], config["method"], config["log"]) == ("stripes", "noise", ["lines"])
    assert config["lr_find"]["steps"] == 5  # the finder ran, on the method's record's attack
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # 90 - 15 validation images, one pass each per epoch (the toy's noise costs none)
    assert [r["passes"] for r in rows] == [75, 150]
    assert (run / "epochs.txt").read_text().splitlines() == [
        f"{r['epoch']} {r['train_loss']:.6f}" for r in rows
    ]
    report = json.loads((run / "report.json").read_text())
    assert set(report["final"]["attacks"]) == {"brighten", "linfpgd"}
    assert report["final"]["attack_details"]["brighten"] == Brighten().describe(2)
    capsys.readouterr()

    assert main(["eval", "--checkpoint", str(run), "--attacks", "brighten", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["attacks"]) == ["brighten"]
    assert result["images"] == 30


def test_a_registered_name_is_offered_and_checked_like_a_built_in_one(toys):
    train_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "noise" in train_help and "uniform noise in the eps-ball (a toy)" in train_help
    assert "brighten" in train_help
    cfg = TrainConfig(dataset="stripes", method="noise", attacks=("brighten",), log=("lines",))
    assert cfg.num_replays == 1
    with pytest.raises(ValueError, match="data_dir applies to"):
        TrainConfig(dataset="stripes", data_dir="somewhere")
    with pytest.raises(ValueError, match="replays applies only to method 'free'"):
        TrainConfig(method="noise", replays=2)


def test_a_taken_name_is_refused_and_an_unregistered_one_is_gone(toys):
    with pytest.raises(ValueError, match="method 'noise' is already registered"):
        registry.METHODS.register(RECORDS[0][1])
    with pytest.raises(ValueError, match="attack 'pgd' is already registered"):
        registry.ATTACKS.register(registry.AttackEntry(name="pgd", help="", build=Brighten()))
    with pytest.raises(ValueError, match="plain words"):
        registry.MODELS.register(registry.ModelEntry(name="a:b", help="", build=nn.Linear))
    registry.LOGGERS.unregister("lines")
    with pytest.raises(ValueError, match="log must name some of csv, tensorboard, wandb"):
        TrainConfig(log=("lines",))
    registry.LOGGERS.register(RECORDS[3][1])


def test_the_readmes_example_registers_a_method_and_trains_with_it(tmp_path):
    example = Path(__file__).resolve().parents[2] / "examples" / "register_method.py"
    done = subprocess.run([sys.executable, str(example), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1].endswith("method=noise")


def test_a_method_record_says_what_the_finder_attacks():
    with pytest.raises(ValueError, match="finder_attack must be one of fgsm-rs, pgd, clean"):
        registry.MethodEntry(name="x", help="", build=UniformNoise, finder_attack="cw")
    assert {e.finder_attack for e in registry.METHODS.values()} == {"fgsm-rs", "pgd", "clean"}
