"""The trainer as a tool: your own model and data through ``fit`` and ``--model
module:factory`` (both resume exactly after a kill), loggers from the command line, and a
run's own ``config.json`` fed back with ``--config``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from accelat_train import TrainingDiverged, fit
from accelat_train.checkpoint import load_checkpoint
from tests.train.listeners import NanAt

pytestmark = pytest.mark.slow

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
TINY = [
    "--dataset", "digits", "--eps", "0.1", "--batch-size", "40", "--train-size", "200",
    "--val-size", "40", "--monitor-size", "40", "--monitor-steps", "2", "--eval-size", "40",
    "--eval-steps", "2", "--device", "cpu", "--quiet", "--lr-max", "0.05", "--seed", "3",
]  # fmt: skip


class MyNet(nn.Module):
    """A user's network: no normalisation, no accelat class, images in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * 2 - 1)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(160, 3, 12, 12, generator=g)
    y = (x.mean(dim=(1, 2, 3)) * 40).long() % 4
    return (x[:120], y[:120]), (x[120:], y[120:])


def _fresh_net() -> MyNet:
    torch.manual_seed(7)
    return MyNet()


def _rows(run_dir, drop=("seconds",)):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in lines]


SETTINGS = dict(eps=0.05, epochs=4, lr_max=0.05, batch_size=32, val_size=20, monitor_size=20,
                monitor_steps=2, eval_steps=2, method="free", replays=2, policy="accelat",
                window=1, ema_epochs=1.0, device="cpu", quiet=True)  # fmt: skip


def test_fit_trains_a_users_network_on_users_tensors_and_resumes_exactly(tmp_path):
    train, test = _data()
    whole = fit(_fresh_net(), train, test=test, out=str(tmp_path / "whole"), **SETTINGS)
    assert whole.config["model"] == whole.config["dataset"] == "given"
    assert [r["epoch"] for r in whole.metrics] == [1, 2, 3, 4]
    assert isinstance(whole.model, MyNet) and not whole.model.training
    assert whole.report["evaluated"] == "averaged weights"
    # the evaluated model is the averaged one, and its clean accuracy is the report's
    x, y = test
    clean = (whole.model(x).argmax(1) == y).float().mean().item()
    assert clean == pytest.approx(whole.report["final"]["clean_acc"])

    out = str(tmp_path / "resumed")
    with pytest.raises(TrainingDiverged, match="epoch 3 batch 1"):
        fit(_fresh_net(), train, test=test, out=out, callbacks=[NanAt(3, 1)], **SETTINGS)
    resumed = fit(_fresh_net(), train, test=test, out=out, resume=True, **SETTINGS)
    assert _rows(out) == _rows(tmp_path / "whole")
    for key in ("model", "evaluated"):
        a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")[key]
        b = load_checkpoint(Path(out) / "checkpoint.pt")[key]
        assert all(torch.equal(a[k], b[k]) for k in a), key
    assert resumed.report["final"]["clean_acc"] == whole.report["final"]["clean_acc"]


def test_fit_streams_a_dataset_in_a_seeded_order_and_resumes_exactly(tmp_path):
    (x, y), test = _data()
    data = torch.utils.data.TensorDataset(x, y)
    settings = {**SETTINGS, "ema_epochs": 0.0, "epochs": 3}
    fit(_fresh_net(), data, test=test, out=str(tmp_path / "whole"), **settings)
    out = str(tmp_path / "resumed")
    with pytest.raises(TrainingDiverged):
        fit(_fresh_net(), data, test=test, out=out, callbacks=[NanAt(2, 2)], **settings)
    fit(_fresh_net(), data, test=test, out=out, resume=True, **settings)
    assert _rows(out) == _rows(tmp_path / "whole")


def _pythonpath() -> str:
    """The repository (for tests.train.factories) before the caller's own path."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def _accelat(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONPATH=_pythonpath())
    return subprocess.run([sys.executable, "-m", "accelat_train.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


FACTORY = ["train", *TINY, "--model", "tests.train.factories:tiny_net", "--epochs", "6",
           "--method", "free", "--replays", "2", "--policy", "onecycle"]  # fmt: skip


def test_a_factory_model_from_the_command_line_resumes_exactly_after_kill_9(tmp_path):
    whole = tmp_path / "whole"
    done = _accelat(*FACTORY, "--out", str(whole))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONPATH=_pythonpath())
    proc = subprocess.Popen([sys.executable, "-m", "accelat_train.cli", *FACTORY, "--out",
                             str(out)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(_rows(out)) < 6, "killed too late to test a mid-run resume"
    done = _accelat(*FACTORY, "--out", str(out), "--resume")
    assert done.returncode == 0, done.stderr
    assert _rows(out) == _rows(whole)
    assert (
        json.loads((out / "config.json").read_text())["model"] == "tests.train.factories:tiny_net"
    )


def test_a_runs_own_config_json_reproduces_its_metrics(tmp_path):
    first = tmp_path / "first"
    done = _accelat("train", *TINY, "--epochs", "3", "--lr-max", "auto", "--lr-find-steps", "10",
                    "--ema-epochs", "1", "--out", str(first))  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = _accelat("train", "--config", str(first / "config.json"), "--out",
                       str(tmp_path / "x"), "--print-config")  # fmt: skip
    saved = json.loads((first / "config.json").read_text())
    assert json.loads(printed.stdout)["lr_max"] == saved["lr_max"]  # the finder's, resolved
    again = tmp_path / "again"
    done = _accelat("train", "--config", str(first / "config.json"), "--out", str(again))
    assert done.returncode == 0, done.stderr
    assert _rows(again) == _rows(first)
    # a flag beside --config overrides the file
    printed = _accelat("train", "--config", str(first / "config.json"), "--epochs", "5",
                       "--out", str(tmp_path / "y"), "--print-config")  # fmt: skip
    assert json.loads(printed.stdout)["epochs"] == 5


def test_log_csv_and_tensorboard_from_the_command_line_write_one_row_per_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    done = _accelat("train", *TINY, "--epochs", "3", "--monitor-every", "1", "--log",
                    "tensorboard,csv", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = _rows(out, drop=())
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 1 + len(rows)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    for key in ("lr", "robust_val_acc"):
        got = [(e.step, e.value) for e in events.Scalars(key)]
        assert got == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in rows], key


def test_version_flag_prints_the_package_version():
    from accelat_core import __version__

    done = _accelat("--version", timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"accelat {__version__}"


def test_the_readmes_own_model_example_trains_and_leaves_a_run_folder(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "fit_own_model.py"),
                           str(tmp_path / "run")], capture_output=True, text=True, env=env,
                          timeout=600, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    final = report["final"]
    assert last == (f"final clean={final['clean_acc']:.3f} robust={final['robust_acc']:.3f} "
                    f"stopped={report['stopped']['reason']}")  # fmt: skip
    assert report["config"]["model"] == "given" and report["evaluated"] == "averaged weights"
    assert final["clean_acc"] > 0.5  # ten digits: chance is 0.1


def test_accelat_with_no_sensible_budget_stops_by_itself_and_says_why(tmp_path):
    # The digits study's setting with a budget of a billion epochs: the trainer's defaults
    # (averaging, a floor at lr_max/8, two no-gain decisions there, then an anneal over 0.3 of
    # the epochs so far) end the run where the accuracy plateaus, before the 40 epochs of the
    # study's longest budget.
    out = tmp_path / "run"
    done = _accelat("train", "--dataset", "digits", "--method", "free", "--replays", "4",
                    "--eps", "0.1", "--epochs", "1000000000", "--policy", "accelat",
                    "--eval-size", "100", "--eval-steps", "5", "--device", "cpu", "--seed", "0",
                    "--out", str(out), timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    stopped = report["stopped"]
    assert stopped["reason"] == "policy" and stopped["epoch"] < 40
    assert report["epochs"] == stopped["epoch"] == len(_rows(out))
    assert f"stopping after epoch {stopped['epoch']}: AccelAT found no further gain" in done.stderr
    assert f"stopped after epoch {stopped['epoch']}" in done.stdout
