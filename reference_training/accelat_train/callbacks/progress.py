"""What a run prints while it trains, as Keras' ``fit`` does: a listener.

On a terminal: one tqdm bar per epoch whose postfix shows the lr, the running loss and the
running adversarial accuracy, left in place when the epoch ends, then one line with the
monitor's values and any decision the policy took. Off a terminal: that one plain line per
epoch, to stderr. ``quiet``: nothing. Messages from other listeners (a rollback, a stop) go
through :meth:`Progress.write`, which prints them above a bar.

>>> row = {"epoch": 2, "lr": 0.1, "train_loss": 1.5, "train_adv_acc": 0.25, "val_acc": 0.5,
...        "robust_val_acc": 0.3, "monitor": "robust_val_acc",
...        "decision": {"gain": 0.001, "old_lr": 0.1, "new_lr": 0.05}}
>>> print(epoch_line(row, 10))  # doctest: +ELLIPSIS
epoch 2/10: lr 0.1, loss 1.5, ..., robust_val_acc 0.3 (monitor); lr 0.1 -> 0.05 (gain 0.001)
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from accelat_train.callbacks.callback import Callback
from accelat_train.extras import needs_extra

if TYPE_CHECKING:
    from accelat_train.adversarial.methods import BatchStats
    from accelat_train.callbacks.callback import RunView
    from accelat_train.callbacks.record import EpochRecord


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """One epoch's summary: the lr it used, its training loss and accuracy, the monitor."""
    parts = [f"lr {row['lr']:.4g}", f"loss {row['train_loss']:.4g}"]
    for key in ("train_adv_acc", "val_acc", "robust_val_acc"):
        mark = " (monitor)" if row.get("monitor") == key else ""
        value = "-" if row[key] is None else f"{row[key]:.4g}"
        parts.append(f"{key} {value}{mark}")
    line = f"epoch {row['epoch']}/{epochs}: " + ", ".join(parts)
    decision = row.get("decision")
    if decision:
        line += (
            f"; lr {decision['old_lr']:.4g} -> {decision['new_lr']:.4g} "
            f"(gain {decision['gain']:.4g})"
        )
    return line


class Progress(Callback):
    """Bars on a terminal, plain lines elsewhere, nothing when ``quiet``."""

    def __init__(self, *, quiet: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.bars = not quiet and self.stream.isatty()
        self._bar: Any = None
        self._sums = [0.0, 0, 0]  # loss sum, correct, n of the epoch so far

    def on_epoch_begin(self, trainer: RunView, epoch: int) -> None:
        self._sums = [0.0, 0, 0]
        if self.bars:
            with needs_extra("progress bars"):
                from tqdm.auto import tqdm  # tqdm.auto probes for IPython: only on a terminal

            total = trainer.batches_per_epoch
            desc = f"epoch {epoch}/{trainer.epochs}"
            self._bar = tqdm(desc=desc, total=total, file=self.stream)

    def on_train_batch_end(self, trainer: RunView, batch: int, stats: BatchStats) -> None:
        if self._bar is None:
            return
        sums = self._sums
        sums[0] += stats.loss_sum
        sums[1] += stats.correct
        sums[2] += stats.n
        self._bar.set_postfix(
            lr=f"{trainer.state.last_lr:.3g}", loss=f"{sums[0] / sums[2]:.4f}",
            adv_acc=f"{sums[1] / sums[2]:.3f}",
        )  # fmt: skip
        self._bar.update(1)

    def on_epoch_end(self, trainer: RunView, record: EpochRecord) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.write(epoch_line(record.to_json(), trainer.epochs))
        stopped = trainer.state.stopped
        if stopped is not None and stopped["epoch"] == record.epoch:
            self.write(f"stopping after epoch {record.epoch}: {stopped['message']}")

    def write(self, line: str) -> None:
        if self.quiet:
            return
        if self.bars:
            with needs_extra("progress bars"):
                from tqdm.auto import tqdm

            tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)
