"""What a run prints: bars and a line per epoch on a terminal, one plain line elsewhere."""

from __future__ import annotations

import io
from types import SimpleNamespace

from accelat_train.adversarial.methods import BatchStats
from accelat_train.callbacks.progress import Progress, epoch_line

ROW = {
    "epoch": 3, "lr": 0.05, "train_loss": 0.4357, "train_adv_acc": 0.8757, "val_acc": 0.91,
    "robust_val_acc": 0.53, "monitor": "robust_val_acc",
    "decision": {"index": 2, "gain": -0.04, "old_lr": 0.05, "new_lr": 0.025},
}  # fmt: skip


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_epoch_line_names_the_monitor_and_the_decision():
    assert epoch_line(ROW, 10) == (
        "epoch 3/10: lr 0.05, loss 0.4357, train_adv_acc 0.8757, val_acc 0.91, "
        "robust_val_acc 0.53 (monitor); lr 0.05 -> 0.025 (gain -0.04)"
    )
    assert epoch_line({**ROW, "decision": None, "monitor": "val_acc"}, 10).endswith(
        "val_acc 0.91 (monitor), robust_val_acc 0.53"
    )


def _trainer(epochs=5, batches=4, stopped=None):
    """What Progress reads of a trainer."""
    return SimpleNamespace(
        epochs=epochs,
        batches_per_epoch=batches,
        state=SimpleNamespace(last_lr=0.05, stopped=stopped),
    )


def _record(row):
    return SimpleNamespace(epoch=row["epoch"], to_json=lambda: row)


def _epoch(progress, trainer, row, batches=4):
    progress.on_epoch_begin(trainer, row["epoch"])
    for b in range(1, batches + 1):
        stats = BatchStats(loss_sum=1.0 / b * 10, correct=5, n=10, passes=10)
        progress.on_train_batch_end(trainer, b, stats)
    progress.on_epoch_end(trainer, _record(row))


def test_off_a_terminal_one_plain_line_per_epoch_and_no_bar():
    stream = io.StringIO()
    _epoch(Progress(quiet=False, stream=stream), _trainer(epochs=10), ROW)
    assert stream.getvalue() == epoch_line(ROW, 10) + "\n"


def test_quiet_prints_nothing():
    stream = _Terminal()
    progress = Progress(quiet=True, stream=stream)
    _epoch(progress, _trainer(), ROW)
    progress.write("epoch 1/1")
    assert stream.getvalue() == ""


def test_on_a_terminal_a_bar_per_epoch_with_lr_loss_and_accuracy_then_the_line():
    stream = _Terminal()
    _epoch(Progress(quiet=False, stream=stream), _trainer(epochs=5), {**ROW, "epoch": 2})
    text = stream.getvalue()
    assert "epoch 2/5: 100%" in text and "4/4" in text
    # the running means after the 4th batch: loss (10 + 5 + 3.33 + 2.5) / 40, accuracy 20 / 40
    assert "adv_acc=0.500" in text and "lr=0.05" in text and "loss=0.5208" in text
    assert text.rstrip().endswith(epoch_line({**ROW, "epoch": 2}, 5))


def test_a_stop_at_this_epoch_is_said_after_its_line():
    stream = io.StringIO()
    stopped = {"epoch": 3, "reason": "policy", "message": "AccelAT found no further gain"}
    _epoch(Progress(quiet=False, stream=stream), _trainer(epochs=10, stopped=stopped), ROW)
    assert stream.getvalue().splitlines() == [
        epoch_line(ROW, 10),
        "stopping after epoch 3: AccelAT found no further gain",
    ]
