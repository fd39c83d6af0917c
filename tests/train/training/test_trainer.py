"""The trainer against what it stands for, computed in the same process (so on any CPU):

- a minimal hand-written Free AT loop with the same model, batches, seeds and schedule gives
  the same weights, losses, accuracies and lrs, bit for bit (the loop is the overhead
  benchmark's yardstick, benchmarks/trainer_overhead.py, so this also shows that the two
  sides of that benchmark do the same work);
- weight averaging equals a hand EMA of the weights after every update;
- a run stopped by a NaN and resumed equals the uninterrupted run, averaging included;
- the loop announces its events in order and as often as it should.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from accelat_core import StepDecay
from accelat_train import TrainConfig, TrainingDiverged, train
from accelat_train.checkpoint import load_checkpoint
from accelat_train.training.build import build
from accelat_train.training.events import Callback
from benchmarks.trainer_overhead import hand_free_at, step_schedule
from tests.train.listeners import NanAt

pytestmark = pytest.mark.slow

torch.set_num_threads(1)

EPS, LR, REPLAYS, BATCH, EPOCHS, SEED = 0.1, 0.05, 2, 32, 3, 1


def _cfg(tmp_path, name="run", **kw) -> TrainConfig:
    base = TrainConfig(
        dataset="digits", model="cnn", method="free", eps=EPS, replays=REPLAYS,
        policy="step", lr_max=LR, epochs=EPOCHS, batch_size=BATCH, train_size=100,
        val_size=40, monitor_size=40, monitor_steps=2, eval_steps=2, eval_size=40, seed=SEED,
        device="cpu", out=str(tmp_path / name),
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


def _rows(run_dir, drop=("seconds",)):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in lines]


def _hand_free_at(tmp_path, ema_decay=None):
    """Free AT by hand (benchmarks.trainer_overhead.hand_free_at, the benchmark's yardstick)
    on a fresh build of the same config: the same model init and batches; optionally an
    EMA of weights and buffers by hand."""
    setup = build(_cfg(tmp_path, "hand"))
    ema = {}

    def average(t, model):
        ema["state"] = _ema_step(ema.get("state"), model, ema_decay, t)

    epochs = hand_free_at(setup, step_schedule(setup, EPOCHS), EPOCHS, after_step=average)
    return setup.model, epochs, ema.get("state")


def _ema_step(ema, model, decay, t):
    """The average of weights and buffers: a copy after the first update, then
    ema <- d ema + (1 - d) w with d = decay(t)."""
    if decay is None:
        return None
    if ema is None:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    d = decay(t - 1)  # t - 1 updates were averaged before this one
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            ema[k].mul_(d).add_(v, alpha=1 - d)
        else:
            ema[k].copy_(v)
    return ema


def _assert_same_weights(got, want, **close):
    assert got.keys() == want.keys()
    for k in want:
        if close:
            torch.testing.assert_close(got[k], want[k], **close, msg=k)
        else:
            assert torch.equal(got[k], want[k]), k


def test_the_trainer_is_a_hand_written_free_at_loop(tmp_path):
    run_dir = train(_cfg(tmp_path), quiet=True)
    model, epochs, _ = _hand_free_at(tmp_path)
    rows = _rows(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row, hand in zip(rows, epochs, strict=True):
        assert {k: row[k] for k in hand} == hand
    _assert_same_weights(load_checkpoint(run_dir / "checkpoint.pt")["model"], model.state_dict())
    # 100 images in minibatches of 32, 2 per epoch from a running stream, each replayed twice.
    assert [r["passes"] for r in rows] == [2 * 64, 2 * 64 + 2 * 36, 2 * 64 + 2 * 36 + 2 * 64]


@pytest.mark.parametrize("warmup", [False, True])
def test_weight_averaging_is_an_ema_of_every_update_and_is_what_the_run_evaluates(tmp_path, warmup):
    horizon = 1.5  # epochs; 4 updates per epoch: d = 1 - 1 / 6
    run_dir = train(_cfg(tmp_path, ema_epochs=horizon, ema_warmup=warmup), quiet=True)
    d = 1 - 1 / (horizon * 4)

    def decay(n):
        return min(d, 1 - (1 + n) ** -0.75) if warmup else d

    model, _, ema = _hand_free_at(tmp_path, ema_decay=decay)
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    _assert_same_weights(ckpt["model"], model.state_dict())
    _assert_same_weights(ckpt["evaluated"], ema, rtol=1e-6, atol=1e-7)
    assert ckpt["callbacks"]["Averaging"] == {"updates": EPOCHS * 4}
    best = load_checkpoint(run_dir / "best.pt")
    if best["epoch"] == EPOCHS:
        _assert_same_weights(best["model"], ckpt["evaluated"])
    report = json.loads((run_dir / "report.json").read_text())
    assert report["evaluated"] == "averaged weights"


def test_averaging_costs_no_passes_and_leaves_training_as_it_was(tmp_path):
    plain = _rows(train(_cfg(tmp_path, "plain"), quiet=True))
    averaged = _rows(train(_cfg(tmp_path, "ema", ema_epochs=2.0), quiet=True))
    for a, b in zip(plain, averaged, strict=True):
        same = ("lr", "momentum", "passes", "train_loss", "train_adv_acc", "overhead_passes")
        assert {k: a[k] for k in same} == {k: b[k] for k in same}
    assert plain[-1]["monitor_passes"] == averaged[-1]["monitor_passes"]


@pytest.mark.parametrize("ema_epochs", [0.0, 1.0])
def test_a_run_stopped_by_a_nan_and_resumed_equals_the_uninterrupted_run(tmp_path, ema_epochs):
    want_dir = train(_cfg(tmp_path, "whole", ema_epochs=ema_epochs, policy="accelat",
                          window=1, stop_patience=0), quiet=True)  # fmt: skip
    cfg = _cfg(tmp_path, "resumed", ema_epochs=ema_epochs, policy="accelat", window=1,
               stop_patience=0)  # fmt: skip
    with pytest.raises(TrainingDiverged, match="epoch 2 batch 2"):
        train(cfg, callbacks=[NanAt(2, 2)], quiet=True)
    assert load_checkpoint(cfg.out + "/checkpoint.pt")["epoch"] == 1
    got_dir = train(cfg, quiet=True, resume=True)
    assert _rows(got_dir) == _rows(want_dir)
    want, got = (
        load_checkpoint(want_dir / "checkpoint.pt"),
        load_checkpoint(got_dir / "checkpoint.pt"),
    )
    for key in ("model", "evaluated") if ema_epochs else ("model",):
        _assert_same_weights(got[key], want[key])
    assert got["scheduler"] == want["scheduler"]


class _Events(Callback):
    def __init__(self):
        self.seen = []

    def on_train_begin(self, trainer):
        self.seen.append(("begin", trainer.state.epoch))

    def on_epoch_begin(self, trainer, epoch):
        self.seen.append(("epoch", epoch))

    def on_train_batch_begin(self, trainer, batch):
        self.seen.append(("batch", batch))

    def on_optimizer_step(self, trainer):
        self.seen.append(("step", trainer.state.last_lr))

    def on_train_batch_end(self, trainer, batch, stats):
        self.seen.append(("batch_end", stats.n))

    def on_epoch_end(self, trainer, record):
        self.seen.append(("epoch_end", record.epoch))

    def on_train_end(self, trainer, result):
        self.seen.append(("end", result["stopped"]["reason"]))


def test_the_loop_announces_its_events_in_order(tmp_path):
    events = _Events()
    train(_cfg(tmp_path, epochs=2), callbacks=[events], quiet=True)
    schedule = StepDecay.free_at(LR, 2 * 4)
    epoch_1 = [("epoch", 1)]
    for b, n, t in ((1, 32, 0), (2, 32, 2)):
        steps = [("step", schedule.at(t).lr), ("step", schedule.at(t + 1).lr)]
        epoch_1 += [("batch", b), *steps, ("batch_end", 2 * n)]
    assert events.seen[:1] == [("begin", 0)]
    assert events.seen[1 : 1 + len(epoch_1)] == epoch_1
    assert events.seen[1 + len(epoch_1)] == ("epoch_end", 1)
    assert [e for e in events.seen if e[0] in ("epoch", "epoch_end", "end")][-3:] == [
        ("epoch", 2), ("epoch_end", 2), ("end", "budget"),
    ]  # fmt: skip
    assert sum(e[0] == "step" for e in events.seen) == 2 * 4


class _StopAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record.epoch == self.epoch:
            trainer.stop("test", "asked to")


def test_a_listener_can_stop_the_run_and_the_report_says_why(tmp_path):
    run_dir = train(_cfg(tmp_path, epochs=3), callbacks=[_StopAt(2)], quiet=True)
    assert [r["epoch"] for r in _rows(run_dir)] == [1, 2]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["stopped"] == {"epoch": 2, "reason": "test", "message": "asked to"}
    # A resumed stopped run does not train on: it ends where it stopped.
    assert train(_cfg(tmp_path, epochs=3), quiet=True, resume=True) == run_dir
    assert [r["epoch"] for r in _rows(run_dir)] == [1, 2]


class _Counter(Callback):
    def __init__(self):
        self.n = 0

    def on_optimizer_step(self, trainer):
        self.n += 1

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def test_a_listeners_state_is_checkpointed_and_resumed(tmp_path):
    cfg = _cfg(tmp_path)
    with pytest.raises(TrainingDiverged):
        train(cfg, callbacks=[_Counter(), NanAt(3, 1)], quiet=True)
    assert load_checkpoint(cfg.out + "/checkpoint.pt")["callbacks"]["_Counter"] == {"n": 8}
    counter = _Counter()
    train(cfg, callbacks=[counter], quiet=True, resume=True)
    assert counter.n == 3 * 4
