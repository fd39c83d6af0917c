"""The listener that keeps a run resumable and its best weights: ``best.pt`` and
``checkpoint.pt`` after every epoch (rank 0), atomically.

``best.pt`` holds the evaluated weights of the epoch with the highest robust validation
accuracy so far (a tie keeps the earlier epoch), with that ``epoch`` and ``robust_val_acc``,
against robust overfitting (Rice et al. 2020). It is written before ``checkpoint.pt``: a run
killed between the two redoes the epoch on resume and writes the same ``best.pt`` again.
``checkpoint.pt`` holds the whole run
(:mod:`accelat_train.training.run_checkpoint` says what), after the epoch's line is in
``metrics.jsonl`` (:class:`~accelat_train.callbacks.metrics_log.MetricsLog`), so that it
knows that line's end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from accelat_train.callbacks.callback import Callback

if TYPE_CHECKING:
    from accelat_train.callbacks.callback import RunView
    from accelat_train.callbacks.record import EpochRecord


class CheckpointSaver(Callback):
    """Writes ``best.pt`` (a new best epoch) and ``checkpoint.pt`` after every epoch."""

    def on_epoch_end(self, trainer: RunView, record: EpochRecord) -> None:
        state, run_dir = trainer.state, trainer.run_dir
        if trainer.is_main and state.improves(record.robust_val_acc):
            state.best_epoch, state.best_robust_val_acc = record.epoch, record.robust_val_acc
            best = {"model": trainer.evaluated.state_dict(), "epoch": record.epoch,
                    "robust_val_acc": record.robust_val_acc}  # fmt: skip
            run_dir.save_checkpoint(run_dir.best, best)
        checkpoint = trainer.checkpoint_state()  # every rank takes part; rank 0 gets it
        if checkpoint is not None:
            run_dir.save_checkpoint(run_dir.checkpoint, checkpoint)
