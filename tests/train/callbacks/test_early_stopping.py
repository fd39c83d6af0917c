"""Early stopping for any policy (``--early-stop``): the rule on metric trajectories, and
tiny runs whose robust validation accuracy a listener scripts, so that the stop epoch and
``best.pt`` are known in the test.

The rule is Keras' ``EarlyStopping`` (and Lightning's): an epoch improves when
``value - min_delta > best``; the run stops at the ``patience``-th measured epoch in a row
without an improvement.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from accelat_train import TrainConfig, TrainingDiverged, load_run, train
from accelat_train.callbacks.callback import Callback
from accelat_train.callbacks.early_stopping import EarlyStopping
from accelat_train.checkpoint import load_checkpoint
from accelat_train.compare import arm_changes
from accelat_train.reporting.summary import charged_passes
from tests.train.listeners import NanAt

torch.set_num_threads(1)


def keras_stop_epoch(values, patience, min_delta=0.0):
    """Keras' EarlyStopping.on_epoch_end, written out: the 1-based epoch it stops at (None:
    never); a None value is an epoch without the metric, which Keras skips."""
    best, wait = -math.inf, 0
    for epoch, value in enumerate(values, start=1):
        if value is None:
            continue
        wait += 1
        if value - min_delta > best:
            best, wait = value, 0
            continue
        if wait >= patience:
            return epoch
    return None


def best_epoch(values):
    """best.pt's epoch: the highest value, the earlier of a tie."""
    measured = [(v, -e) for e, v in enumerate(values, start=1) if v is not None]
    return -max(measured)[1]


def _stop_epoch(values, patience, min_delta=0.0):
    stopper = EarlyStopping(patience, min_delta=min_delta)
    for epoch, value in enumerate(values, start=1):
        if stopper.observe(epoch, value):
            return epoch
    return None


# -- the rule ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "patience", "min_delta", "stop"),
    [
        ([0.3, 0.5, 0.5, 0.4], 2, 0.0, 4),  # a tie is no improvement
        ([0.3, 0.5, 0.4, 0.6, 0.5, 0.5], 2, 0.0, 6),  # the wait restarts at 0.6
        ([0.30, 0.32, 0.33, 0.34], 2, 0.05, 3),  # rises smaller than min_delta do not count
        ([0.30, 0.36, 0.37, 0.38], 3, 0.05, None),
        ([0.3, None, 0.2, None, 0.2], 2, 0.0, 5),  # unmeasured epochs are not counted
        ([0.5, 0.4], 1, 0.0, 2),
    ],
)
def test_the_stop_epoch_follows_keras_rule_on_a_trajectory(values, patience, min_delta, stop):
    assert keras_stop_epoch(values, patience, min_delta) == stop
    assert _stop_epoch(values, patience, min_delta) == stop


@given(
    values=st.lists(st.one_of(st.none(), st.sampled_from([0.1, 0.2, 0.25, 0.3, 0.5])), max_size=30),
    patience=st.integers(1, 5),
    min_delta=st.sampled_from([0.0, 0.04, 0.1]),
)
def test_the_stop_epoch_equals_keras_on_any_trajectory(values, patience, min_delta):
    assert _stop_epoch(values, patience, min_delta) == keras_stop_epoch(values, patience, min_delta)


def test_mode_min_watches_a_loss():
    stopper = EarlyStopping(2, monitor="train_loss", mode="min", min_delta=0.1)
    # 2.0, then 1.95 (not 0.1 lower), 1.5 (is), 1.45, 1.42: the second miss after 1.5 stops
    assert [stopper.observe(e, v) for e, v in enumerate([2.0, 1.95, 1.5, 1.45, 1.42], 1)] == [
        False, False, False, False, True,
    ]  # fmt: skip
    assert (stopper.best, stopper.best_epoch) == (1.5, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patience": 0}, "patience must be an integer >= 1, got 0"),
        ({"patience": 2, "min_delta": -0.1}, "min_delta must be"),
        ({"patience": 2, "monitor": "accuracy"}, "monitor must be one of .*got 'accuracy'"),
        ({"patience": 2, "mode": "auto"}, "mode must be one of 'max', 'min', got 'auto'"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**kwargs)


def test_the_config_refuses_early_stopping_on_a_metric_measured_only_at_the_end():
    with pytest.raises(
        ValueError, match="early_stop watches robust_val_acc, which monitor_every=0"
    ):
        TrainConfig(early_stop=3, monitor_every=0)
    # train_adv_acc is measured by training itself, every epoch
    TrainConfig(early_stop=3, early_stop_monitor="train_adv_acc", monitor_every=0)
    assert arm_changes("constant:early_stop=4") == {"policy": "constant", "early_stop": 4}


def test_an_early_stopped_run_is_charged_the_monitor_it_reads():
    row = {"passes": 1000, "overhead_passes": 0.0, "monitor_passes": 300.0, "val_passes": 100.0}
    constant = {"policy": "constant", "monitor": "train_adv_acc"}
    assert charged_passes(constant, row) == 1000  # validation only logged: not charged
    assert charged_passes({**constant, "early_stop": 3}, row) == 1000 + 200  # the PGD part
    both = {**constant, "early_stop": 3, "early_stop_monitor": "val_acc"}
    assert charged_passes(both, row) == 1000 + 100
    accelat = {"policy": "accelat", "monitor": "val_acc", "early_stop": 2}
    assert charged_passes(accelat, row) == 1000 + 300  # clean and robust, each once


# -- tiny runs -------------------------------------------------------------------------------
class ScriptedRobustValAcc(Callback):
    """Replace each epoch's robust validation accuracy by ``values[epoch - 1]`` (before early
    stopping and best.pt read it: the caller's listeners come first)."""

    def __init__(self, values):
        self.values = values

    def on_epoch_end(self, trainer, record):
        record.robust_val_acc = self.values[record.epoch - 1]


def _cfg(tmp_path, name="run", **kw) -> TrainConfig:
    base = TrainConfig(
        dataset="digits", model="cnn", method="free", eps=0.1, replays=2, policy="constant",
        lr_max=0.05, epochs=8, batch_size=32, train_size=100, val_size=40, monitor_size=40,
        monitor_steps=2, eval_steps=2, eval_size=40, device="cpu", early_stop=2,
        out=str(tmp_path / name),
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


def _rows(run_dir, drop=("seconds",)):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in lines]


def _untimed(evaluation):
    return {k: v for k, v in evaluation.items() if k != "attack_seconds"}


CURVE = [0.30, 0.50, 0.45, 0.55, 0.52, 0.54, 0.60, 0.61]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("policy", "extra"),
    [("constant", {}), ("step", {}), ("accelat", {"window": 1, "stop_patience": 0})],
)
def test_early_stopping_stops_any_policy_where_the_rule_says_and_restores_best_pt(
    tmp_path, policy, extra
):
    patience = 2
    stop = keras_stop_epoch(CURVE, patience)
    best = best_epoch(CURVE[:stop])
    assert (stop, best) == (6, 4)  # the curve's point: it stops before its late rise
    run_dir = train(_cfg(tmp_path, policy=policy, early_stop=patience, **extra),
                    callbacks=[ScriptedRobustValAcc(CURVE)], quiet=True)  # fmt: skip
    assert [r["epoch"] for r in _rows(run_dir)] == list(range(1, stop + 1))
    report = json.loads((run_dir / "report.json").read_text())
    assert report["stopped"]["epoch"] == stop and report["stopped"]["reason"] == "early_stop"
    assert report["stopped"]["restored_epoch"] == best
    assert f"restored best.pt (epoch {best})" in report["stopped"]["message"]
    assert report["final_weights_epoch"] == best and report["best"]["epoch"] == best
    # The final evaluation is of best.pt's weights: the evaluated model (the average) holds them.
    assert _untimed(report["final"]) == _untimed(report["best"]["test"])
    saved, best_pt = (
        load_checkpoint(run_dir / "checkpoint.pt"),
        load_checkpoint(run_dir / "best.pt"),
    )
    assert best_pt["epoch"] == best and best_pt["robust_val_acc"] == CURVE[best - 1]
    evaluated = saved["evaluated"]  # weight averaging is on by default
    assert all(torch.equal(evaluated[k], best_pt["model"][k]) for k in best_pt["model"])
    assert not all(torch.equal(saved["model"][k], best_pt["model"][k]) for k in saved["model"])
    # load_run (and accelat eval) name the epoch the last checkpoint's weights are from
    assert load_run(run_dir).epoch == best == load_run(run_dir, "best").epoch


@pytest.mark.slow
def test_restoring_without_averaging_puts_best_pt_into_the_trained_model(tmp_path):
    run_dir = train(_cfg(tmp_path, ema_epochs=0.0), callbacks=[ScriptedRobustValAcc(CURVE)],
                    quiet=True)  # fmt: skip
    saved, best_pt = (
        load_checkpoint(run_dir / "checkpoint.pt"),
        load_checkpoint(run_dir / "best.pt"),
    )
    assert "evaluated" not in saved and best_pt["epoch"] == 4
    assert all(torch.equal(saved["model"][k], best_pt["model"][k]) for k in best_pt["model"])


@pytest.mark.slow
def test_the_budget_ends_a_run_before_patience_runs_out_without_a_restore(tmp_path):
    run_dir = train(_cfg(tmp_path, epochs=5, early_stop=3),
                    callbacks=[ScriptedRobustValAcc(CURVE)], quiet=True)  # fmt: skip
    report = json.loads((run_dir / "report.json").read_text())
    assert report["stopped"]["reason"] == "budget" and report["final_weights_epoch"] == 5


@pytest.mark.slow
def test_a_run_resumed_mid_patience_stops_where_the_uninterrupted_run_stops(tmp_path):
    curve = [0.30, 0.50, 0.40, 0.45, 0.42, 0.60, 0.61, 0.62]
    assert keras_stop_epoch(curve, 3) == 5  # the wait: 1 after epoch 3, 2 after 4, 3 after 5
    whole = train(_cfg(tmp_path, "whole", early_stop=3), callbacks=[ScriptedRobustValAcc(curve)],
                  quiet=True)  # fmt: skip
    cfg = _cfg(tmp_path, "resumed", early_stop=3)
    with pytest.raises(TrainingDiverged, match="epoch 4 batch 1"):
        train(cfg, callbacks=[ScriptedRobustValAcc(curve), NanAt(4, 1)], quiet=True)
    saved = load_checkpoint(cfg.out + "/checkpoint.pt")
    assert saved["epoch"] == 3
    assert saved["callbacks"]["EarlyStopping"] == {"best": 0.5, "best_epoch": 2, "wait": 1}
    resumed = train(cfg, callbacks=[ScriptedRobustValAcc(curve)], quiet=True, resume=True)
    assert _rows(resumed) == _rows(whole)
    got, want = (json.loads((d / "report.json").read_text()) for d in (resumed, whole))
    assert got["stopped"] == want["stopped"] and got["stopped"]["epoch"] == 5
    assert _untimed(got["final"]) == _untimed(want["final"])
    a, b = load_checkpoint(resumed / "checkpoint.pt"), load_checkpoint(whole / "checkpoint.pt")
    for key in ("model", "evaluated"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
