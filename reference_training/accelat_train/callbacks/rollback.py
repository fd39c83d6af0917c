"""FGSM-RS's catastrophic-overfitting check (Wong et al. 2020), as a listener.

Each epoch it measures PGD-10 accuracy on one fixed training batch (counted as overhead
passes). Once that accuracy falls by more than :data:`CO_DROP` from one epoch to the next,
the run has overfitted catastrophically: the listener rolls the model back to ``best.pt``
(rank 0 reads it; every rank restores the same weights), records the rollback and stops the
run. The epoch that collapsed is still logged, with its metrics measured before the rollback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from accelat_train.adversarial.evaluation import epoch_seed, pgd_accuracy
from accelat_train.callbacks.callback import Callback
from accelat_train.checkpoint import load_weights

if TYPE_CHECKING:
    from accelat_train.callbacks.callback import RunView
    from accelat_train.callbacks.record import EpochRecord

#: Stop when PGD accuracy on the check batch drops by more than this from one epoch to the
#: next (Wong et al. 2020 use 0.2).
CO_DROP = 0.2
#: PGD steps of the check.
CO_STEPS = 10


class OverfitRollback(Callback):
    """``--co-check``: roll back to ``best.pt`` and stop once the check batch's PGD accuracy
    falls by more than :data:`CO_DROP`. ``previous`` (the last accuracy) is saved for resume."""

    def __init__(self, batch: tuple[torch.Tensor, torch.Tensor], eps: float, seed: int) -> None:
        self.x, self.y = batch
        self.eps, self.seed = eps, seed
        self.previous: float | None = None

    def fired(self, model: torch.nn.Module, epoch: int) -> bool:
        """Measure this epoch's accuracy; has it fallen by more than CO_DROP?"""
        acc = pgd_accuracy(
            model, self.x, self.y, self.eps, CO_STEPS, seed=epoch_seed(self.seed, epoch, 3)
        )
        fired = self.previous is not None and self.previous - acc > CO_DROP
        self.previous = acc
        return fired

    def on_epoch_end(self, trainer: RunView, record: EpochRecord) -> None:
        with trainer.counting() as counted:
            fired = self.fired(trainer.model, record.epoch)
        trainer.state.overhead_passes += counted.count
        record.overhead_passes = trainer.state.overhead_passes
        if not fired:
            return
        state = trainer.state
        restored = state.best_epoch if trainer.run_dir.best.exists() else None
        if restored is not None:
            weights = load_weights(trainer.run_dir.best)["model"]
            trainer.model.load_state_dict(weights)
            trainer.evaluated.load_state_dict(weights)
        state.rollback = {"epoch": record.epoch, "restored_epoch": restored}
        kept = f"rolled back to the best epoch {restored}" if restored else "no epoch to keep"
        trainer.stop(
            "overfitting",
            f"catastrophic overfitting at epoch {record.epoch}: PGD accuracy on the check "
            f"batch fell by more than {CO_DROP:.0%}; {kept}",
        )

    def state_dict(self) -> dict[str, Any]:
        return {"previous": self.previous}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.previous = state["previous"]
