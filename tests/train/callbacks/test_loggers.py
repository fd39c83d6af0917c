"""The loggers against ``metrics.jsonl``, read back with each tool's own reader:

- the CSV has one row per epoch, ``metrics.jsonl``'s values;
- TensorBoard's ``EventAccumulator`` gives each epoch's scalars once, as ``metrics.jsonl``
  has them (to float32), each decision as text, the final accuracies and why the run stopped;
- W&B (when installed; offline, read back with ``wandb leet inspect``) the same;
- a run stopped by a NaN, or killed after the loggers wrote an epoch but before its
  checkpoint, and resumed leaves the CSV and TensorBoard files an uninterrupted run leaves.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from accelat_train import TrainConfig, TrainingDiverged, train
from accelat_train.callbacks import loggers
from accelat_train.callbacks.callback import Callback
from accelat_train.callbacks.loggers import CSVLogger, TensorBoardLogger, make_loggers
from tests.train.listeners import NanAt

pytestmark = pytest.mark.slow

torch.set_num_threads(1)

HAS_WANDB = importlib.util.find_spec("wandb") is not None
NAMES = ["csv", "tensorboard", *(["wandb"] if HAS_WANDB else [])]
#: What TensorBoard and W&B must carry per epoch: metrics.jsonl's keys.
PER_EPOCH = ("lr", "momentum", "train_loss", "train_adv_acc", "val_acc", "robust_val_acc",
             "passes", "monitor_passes", "overhead_passes")  # fmt: skip


def _cfg(out, **kw) -> TrainConfig:
    base = TrainConfig(
        dataset="digits", eps=0.1, batch_size=40, train_size=200, val_size=40, monitor_size=40,
        monitor_steps=2, eval_size=40, eval_steps=2, device="cpu", policy="accelat", window=1,
        lr_max=0.05, epochs=3, out=str(out),
        min_gain=0.5, eval_every=2,  # so that the policy cuts the lr, and a test mid-run
        anneal=None,  # else the anneal, ending by the 3-epoch budget, ends the run before a cut
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


class Killed(Exception):
    """The test's stand-in for a process killed at a chosen moment."""


class KillAfterLogging(Callback):
    """Raise at the end of epoch ``epoch``, after the loggers (listed before it) wrote the
    epoch and before its checkpoint: the run resumes from the previous epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record.epoch == self.epoch:
            raise Killed(f"killed after logging epoch {record.epoch}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run folders by name, each with every available logger: ``whole`` (uninterrupted),
    ``nan`` (a NaN in epoch 2, resumed), ``killed`` (killed after logging epoch 3, resumed)."""
    root = tmp_path_factory.mktemp("loggers")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            mp.setenv(name, str(root / "wandb-home"))
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        found = {"whole": _train(root / "whole")}
        found["nan"] = _train(root / "nan", [NanAt(2, 2)], TrainingDiverged, "epoch 2 batch 2")
        found["killed"] = _train(root / "killed", [KillAfterLogging(3)], Killed, "epoch 3")
    return found


def _train(out, fault=(), error=None, match=""):
    """Train into ``out`` with the loggers; with a ``fault``, expect ``error`` and resume."""
    cfg = _cfg(out)
    if fault:
        with pytest.raises(error, match=match):
            train(cfg, callbacks=[*make_loggers(NAMES, out), *fault], quiet=True)
        if HAS_WANDB:  # what W&B's exit hook does when a process dies of the exception
            import wandb

            wandb.finish(exit_code=1)
    return train(cfg, callbacks=make_loggers(NAMES, out), quiet=True, resume=bool(fault))


def _jsonl(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _csv(run_dir, drop=()):
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


def _cell(value):
    return "" if value is None else str(value)


def _f32(value):
    return float(np.float32(value))


def test_the_csv_has_one_row_per_epoch_with_metrics_jsonl_values(runs):
    whole = runs["whole"]
    rows, table = _jsonl(whole), _csv(whole)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert any(r["decision"] for r in rows)
    assert len(table) == len(rows)
    for row, line in zip(rows, table, strict=True):
        decision = row.pop("decision") or {}
        assert {k: line[k] for k in row} == {k: _cell(v) for k, v in row.items()}
        for key in ("gain", "old_lr", "new_lr"):
            assert line[f"decision_{key}"] == _cell(decision.get(key))


def _tensorboard(run_dir):
    """Every scalar as [(step, value)] and every text as [(step, text)], by tag, read with
    TensorBoard's own readers: ``EventAccumulator`` for the scalars and, for the texts, the
    one its web app reads through (the first one does not purge texts after a restart)."""
    from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator

    folder = str(run_dir / "tensorboard")
    acc = event_accumulator.EventAccumulator(folder, size_guidance={"scalars": 0})
    acc.Reload()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    app = plugin_event_accumulator.EventAccumulator(folder, size_guidance={"tensors": 0})
    app.Reload()
    texts = {
        t.split("/")[0]: [(e.step, e.tensor_proto.string_val[0].decode()) for e in app.Tensors(t)]
        for t in app.Tags()["tensors"]
        if app.SummaryMetadata(t).plugin_data.plugin_name == "text"
    }
    return scalars, texts


def test_tensorboard_reads_back_each_epoch_once_as_metrics_jsonl_has_it(runs):
    whole = runs["whole"]
    rows = _jsonl(whole)
    scalars, texts = _tensorboard(whole)
    for key in (*PER_EPOCH, "test_clean_acc", "test_robust_acc"):
        want = [(r["epoch"], _f32(r[key])) for r in rows if r[key] is not None]
        assert scalars[key] == want, key
    assert [step for step, _ in scalars["test_clean_acc"]] == [2]
    decisions = [(r["epoch"], loggers.decision_text(r["decision"])) for r in rows if r["decision"]]
    assert decisions  # the policy cut the lr at least once
    assert texts["decision"] == decisions
    report = json.loads((whole / "report.json").read_text())
    last = rows[-1]["epoch"]
    assert scalars["final/clean_acc"] == [(last, _f32(report["final"]["clean_acc"]))]
    assert scalars["final/robust_acc"] == [(last, _f32(report["final"]["robust_acc"]))]
    assert texts["stopped"] == [(last, loggers.stopped_text(report["stopped"]))]


@pytest.mark.parametrize("case", ["nan", "killed"])
def test_a_stopped_and_resumed_run_writes_the_csv_of_an_uninterrupted_run(runs, case):
    whole, resumed = runs["whole"], runs[case]
    assert _csv(resumed, drop=("seconds",)) == _csv(whole, drop=("seconds",))
    header = (resumed / "metrics.csv").read_text().splitlines()[0]
    assert header.split(",") == list(loggers.CSV_COLUMNS)


@pytest.mark.parametrize("case", ["nan", "killed"])
def test_a_stopped_and_resumed_run_gives_tensorboard_one_value_per_step(runs, case):
    whole, resumed = runs["whole"], runs[case]
    assert len(list((resumed / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert _tensorboard(resumed) == _tensorboard(whole)


def _wandb_records(run_dir, kind):
    """The ``kind`` records ("history", "summary") of the run's offline W&B runs, in order,
    read from the run files with ``wandb leet inspect`` (no network)."""
    records = []
    for folder in sorted((run_dir / "wandb").glob("offline-run-*")):
        cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(folder)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
        for line in out.stdout.splitlines():
            record = json.loads(line)
            if record.get("type") == kind:
                records.append(record[kind])
    return records


@pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (pip install 'accelat[wandb]')")
@pytest.mark.parametrize("case", ["whole", "nan"])
def test_wandb_offline_files_hold_each_epoch_once_as_metrics_jsonl_has_it(runs, case):
    whole, run_dir = runs["whole"], runs[case]
    rows = _jsonl(whole)
    history = [record["item"] for record in _wandb_records(run_dir, "history")]
    assert [item["_step"] for item in history] == [r["epoch"] for r in rows]
    for item, row in zip(history, rows, strict=True):
        logged = [k for k in PER_EPOCH if row[k] is not None]  # None: not measured that epoch
        assert {k: item[k] for k in logged} == {k: row[k] for k in logged}
        assert not set(item) & (set(PER_EPOCH) - set(logged))
        if row["decision"]:
            assert item["decision"] == loggers.decision_text(row["decision"])
    summary: dict = {}
    for record in _wandb_records(run_dir, "summary"):
        summary.update(record.get("update", {}))
    report = json.loads((whole / "report.json").read_text())
    assert summary["final/clean_acc"] == report["final"]["clean_acc"]
    assert summary["stopped"] == loggers.stopped_text(report["stopped"])


def test_loggers_write_nothing_off_rank_zero(tmp_path):
    trainer = SimpleNamespace(is_main=False, state=SimpleNamespace(epoch=0))
    for logger in (CSVLogger(tmp_path / "m.csv"), TensorBoardLogger(tmp_path / "tb")):
        logger.on_train_begin(trainer)
        logger.on_train_end(trainer, {})
    assert list(tmp_path.iterdir()) == []


def test_make_loggers_names_an_unknown_logger(tmp_path):
    with pytest.raises(ValueError, match="unknown logger 'mlflow'; choose from csv, tensorboard"):
        make_loggers(["csv", "mlflow"], tmp_path)
    with pytest.raises(ValueError, match="named once each"):
        make_loggers(["csv", "csv"], tmp_path)


def test_make_loggers_names_the_missing_package_and_its_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name)
    )
    with pytest.raises(ImportError, match=r"pip install 'accelat\[tensorboard\]'"):
        make_loggers(["tensorboard"], tmp_path)


def test_make_loggers_puts_the_files_in_the_run_folder(tmp_path):
    csv_logger, tb_logger = make_loggers(["csv", "tensorboard"], tmp_path)
    assert csv_logger.path == tmp_path / "metrics.csv"
    assert tb_logger.log_dir == tmp_path / "tensorboard"
