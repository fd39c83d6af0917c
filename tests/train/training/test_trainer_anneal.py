"""The trainer carries AccelAT's final anneal update by update, and resumes it exactly.

The expected lrs are the core's closed form (:class:`Anneal` over the anneal's epochs x the
updates per epoch), with the anneal's start and length computed here from the rule.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from accelat_core import Anneal
from accelat_train import TrainConfig, train
from accelat_train.training.events import Callback

pytestmark = pytest.mark.slow

torch.set_num_threads(1)


class Lrs(Callback):
    """The lr of every weight update (fgsm-rs makes one per minibatch)."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.lrs: list[float] = []
        self.interrupt_at = interrupt_at

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.interrupt_at:
            raise KeyboardInterrupt

    def on_train_batch_begin(self, trainer, batch):
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])


def _cfg(tmp_path, name: str) -> TrainConfig:
    # Every decision finds too little gain (min_gain 1e9). Window 1 (6 epochs): the decision
    # at evaluation 2 cuts to the floor lr_max/2. An anneal then would last round(1.0 x 3) = 3
    # epochs, all the budget leaves: it starts there, so that the run ends annealed.
    return TrainConfig(
        dataset="digits", model="cnn", method="fgsm-rs", eps=0.1, policy="accelat",
        lr_max=0.05, lr_min="lr_max/2", min_gain=1e9, accelat_z=0.0, stop_patience=1,
        anneal=1.0, anneal_shape="cosine", ema_epochs=0.0, epochs=6, batch_size=32,
        train_size=96, val_size=40, monitor_size=40, monitor_steps=2, eval_steps=2,
        eval_size=40, seed=3, device="cpu", out=str(tmp_path / name),
    )  # fmt: skip


def test_the_anneal_moves_the_lr_every_update_and_ends_with_the_budget(tmp_path) -> None:
    listener = Lrs()
    run = train(_cfg(tmp_path, "a"), callbacks=[listener], quiet=True)
    updates = 3  # 96 images in batches of 32, one update each
    closed = Anneal(0.025, 3 * updates, shape="cosine")
    expected = [0.05] * 3 * updates + [closed.at(t).lr for t in range(3 * updates)]
    assert listener.lrs == expected
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[-1]["lr"] == closed.at(3 * updates - 1).lr  # the last update's lr
    report = json.loads((run / "report.json").read_text())
    assert report["stopped"]["reason"] == "budget"  # the anneal ended with it, by design


def test_a_run_interrupted_in_the_anneal_resumes_to_the_same_run(tmp_path) -> None:
    whole = Lrs()
    train(_cfg(tmp_path, "whole"), callbacks=[whole], quiet=True)
    cfg = _cfg(tmp_path, "split")
    head = Lrs(interrupt_at=6)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[head], quiet=True)
    tail = Lrs()
    train(dataclasses.replace(cfg), callbacks=[tail], quiet=True, resume=True)
    assert head.lrs + tail.lrs == whole.lrs

    def rows(name):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]

    assert rows("split") == rows("whole")
