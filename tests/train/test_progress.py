"""What a run prints: bars and a line per epoch on a terminal, one plain line elsewhere."""

from __future__ import annotations

import io

from accelat_train.progress import Progress, epoch_line

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


def test_off_a_terminal_one_plain_line_per_epoch_and_no_bar():
    stream = io.StringIO()
    progress = Progress(quiet=False, stream=stream)
    batches = progress.batches(range(5), epoch=1, epochs=2, total=5)
    for _ in batches:
        batches.set_postfix(lr="0.1")
    progress.write(epoch_line(ROW, 10))
    assert stream.getvalue() == epoch_line(ROW, 10) + "\n"


def test_quiet_prints_nothing():
    stream = _Terminal()
    progress = Progress(quiet=True, stream=stream)
    assert list(progress.batches(range(3), epoch=1, epochs=1, total=3)) == [0, 1, 2]
    progress.write("epoch 1/1")
    assert stream.getvalue() == ""


def test_on_a_terminal_a_bar_per_epoch_with_lr_loss_and_accuracy_then_the_line():
    stream = _Terminal()
    progress = Progress(quiet=False, stream=stream)
    bar = progress.batches(range(4), epoch=2, epochs=5, total=4)
    for i in bar:
        bar.set_postfix(lr="0.05", loss=f"{1.0 / (i + 1):.4f}", adv_acc="0.500")
    bar.close()
    progress.write(epoch_line(ROW, 5))
    text = stream.getvalue()
    assert "epoch 2/5: 100%" in text and "4/4" in text
    assert "adv_acc=0.500" in text and "lr=0.05" in text and "loss=0.2500" in text
    assert text.rstrip().endswith(epoch_line(ROW, 5))
