"""Early stopping for any policy, as Keras' and Lightning's ``EarlyStopping``: a listener.

After each epoch it reads one metric of the epoch's record (``monitor``, by default the
robust validation accuracy; an epoch the validation monitor skipped is not counted). With
``b`` the best value so far, an epoch *improves* when

.. math:: a - \\delta > b \\ (\\text{mode max}), \\qquad a + \\delta < b \\ (\\text{mode min})

(``δ = min_delta``; the first value always improves), as both Keras and Lightning test it.
``wait`` counts the measured epochs since the last improvement; when it reaches
``patience`` the listener ends the run (``trainer.stop("early_stop", ...)``, so the log and
``report.json``'s ``stopped`` say why) and, with ``restore_best_weights``, puts the run's
best weights back into the evaluated model (the averaged one under weight averaging) before
the final test evaluation: ``best.pt``'s weights, the epoch with the highest robust
validation accuracy (a tie keeps the earlier), the one best checkpoint a run keeps (as
Lightning's ``ckpt_path="best"`` after its ``EarlyStopping``). ``stopped["restored_epoch"]``
says which epoch that was (``None``: the run had no ``best.pt`` to restore).

Its state (``best``, ``best_epoch``, ``wait``) is saved in the checkpoint, so a run resumed
mid-patience stops where the uninterrupted run stops. It works the same whatever the
policy, beside a policy's own stop (AccelAT's): whichever stops first names the reason.

>>> stopper = EarlyStopping(patience=2)  # stop after 2 epochs without a new best
>>> [stopper.observe(epoch, acc) for epoch, acc in enumerate([0.3, 0.5, 0.5, 0.4], start=1)]
[False, False, False, True]
>>> stopper.best, stopper.best_epoch
(0.5, 2)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from accelat_core._validate import choice, integer, real
from accelat_train.callbacks.callback import Callback

if TYPE_CHECKING:
    from accelat_train.callbacks.callback import RunView
    from accelat_train.callbacks.record import EpochRecord

#: The epoch metrics it can watch (fields of the epoch's record).
METRICS = ("robust_val_acc", "val_acc", "train_adv_acc", "train_loss")


class EarlyStopping(Callback):
    """Stop the run once ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` measured epochs; restore the best weights (``best.pt``) when it stops.

    Args:
        patience: measured epochs without an improvement before the run stops (>= 1).
        min_delta: the least change that counts as an improvement (>= 0, in the metric's
            units).
        monitor: the epoch record's field it reads, one of :data:`METRICS`.
        mode: ``"max"`` (an accuracy) or ``"min"`` (a loss).
        restore_best_weights: load ``best.pt`` into the evaluated model when it stops.

    ``TrainConfig(early_stop=N)`` (``--early-stop N``) adds one watching
    ``early_stop_monitor``; from Python, pass one (not both) among the callbacks:

    >>> from accelat_train import EarlyStopping, TrainConfig, train
    >>> cfg = TrainConfig(dataset="digits", eps=0.1, epochs=40, out="runs/es")
    >>> train(cfg, callbacks=[EarlyStopping(5, monitor="val_acc")])  # doctest: +SKIP
    """

    def __init__(
        self,
        patience: int,
        *,
        min_delta: float = 0.0,
        monitor: str = "robust_val_acc",
        mode: str = "max",
        restore_best_weights: bool = True,
    ) -> None:
        self.patience = integer("patience", patience, lo=1)
        self.min_delta = real("min_delta", min_delta, lo=0.0)
        self.monitor = choice("monitor", monitor, METRICS)
        self.mode = choice("mode", mode, ("max", "min"))
        self.restore_best_weights = restore_best_weights
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0

    def improves(self, value: float) -> bool:
        """Is ``value`` better than the best so far by more than ``min_delta``?"""
        if self.best is None:
            return True
        if self.mode == "max":
            return value - self.min_delta > self.best
        return value + self.min_delta < self.best

    def observe(self, epoch: int, value: float | None) -> bool:
        """Take epoch ``epoch``'s ``value`` (None or NaN: not measured, not counted); should
        the run stop now?"""
        if value is None or not math.isfinite(value):
            return False
        if self.improves(value):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            return False
        self.wait += 1
        return self.wait >= self.patience

    def on_epoch_end(self, trainer: RunView, record: EpochRecord) -> None:
        value = getattr(record, self.monitor)
        if not self.observe(record.epoch, None if value is None else float(value)):
            return
        if trainer.state.stopped is not None:  # another listener or the policy ended it first
            return
        trainer.stop(
            "early_stop",
            f"{self.monitor} has not improved by more than {self.min_delta:g} for "
            f"{self.wait} epoch(s) (best {self.best:.4g} at epoch {self.best_epoch})",
        )
        stopped = trainer.state.stopped
        assert stopped is not None
        if self.restore_best_weights:
            restored = self.restore(trainer, record)
            stopped["restored_epoch"] = restored
            stopped["message"] += (
                f"; restored best.pt (epoch {restored})" if restored else "; no best.pt to restore"
            )

    @staticmethod
    def restore(trainer: RunView, record: EpochRecord) -> int | None:
        """Put ``best.pt``'s weights (as they stand once this epoch is saved) into the
        evaluated model; the epoch they are from (None: no epoch was validated)."""
        state = trainer.state
        if state.improves(record.robust_val_acc):
            return record.epoch  # this epoch becomes best.pt: its weights are in place
        if state.best_epoch is None:
            return None
        weights = trainer.run_dir.load_checkpoint(trainer.run_dir.best)["model"]
        trainer.evaluated.load_state_dict(weights)
        return state.best_epoch

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
