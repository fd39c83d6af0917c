"""What a run records: one :class:`EpochRecord` per epoch (a line of ``metrics.jsonl``) and
the :class:`RunState` counters a checkpoint carries.

Units: ``passes`` counts gradient passes (forward + backward of one image = 1; a forward
alone 1/3), cumulative over the run and summed over ranks; ``seconds`` is training time,
cumulative. ``monitor_passes`` is the per-epoch monitor's (clean and robust validation),
``val_passes`` the clean part alone, ``overhead_passes`` what a method or optimizer needs
beyond training (the overfitting check, schedule-free BatchNorm refreshes).

>>> record = EpochRecord(epoch=1, lr=0.1, momentum=0.9, passes=100, seconds=1.5,
...                      train_loss=2.0, train_adv_acc=0.25, monitor="train_adv_acc")
>>> record.to_json()["monitor_value"]
0.25
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass
class EpochRecord:
    """One epoch, as ``metrics.jsonl`` holds it (the same keys, in the same order)."""

    epoch: int
    lr: float | None  # the lr (and momentum) of the epoch's last weight update
    momentum: float | None
    passes: int
    seconds: float
    train_loss: float
    train_adv_acc: float
    val_acc: float | None = None  # None on epochs the validation monitor skipped
    robust_val_acc: float | None = None
    monitor: str = "robust_val_acc"  # which of the accuracies the policy reads
    monitor_passes: float = 0.0
    val_passes: float = 0.0
    overhead_passes: float = 0.0
    decision: dict[str, Any] | None = None  # the policy's cut at this epoch, if any
    test_clean_acc: float | None = None  # the test evaluation of --eval-every epochs
    test_robust_acc: float | None = None

    @property
    def monitor_value(self) -> float | None:
        """The monitored accuracy: what a metric-driven policy reads (None when skipped)."""
        value = getattr(self, self.monitor)
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        decision = row.pop("decision")
        tests = {k: row.pop(k) for k in ("test_clean_acc", "test_robust_acc")}
        return {**row, "monitor_value": self.monitor_value, "decision": decision, **tests}


@dataclass
class RunState:
    """Where a run stands after ``epoch`` epochs; saved in and restored from checkpoints."""

    epoch: int = 0
    consumed: int = 0  # minibatches taken from the loader's stream
    passes: int = 0
    monitor_passes: float = 0.0
    val_passes: float = 0.0
    overhead_passes: float = 0.0
    seconds: float = 0.0
    last_lr: float | None = None  # the hyperparameters of the last weight update
    last_momentum: float | None = None
    metrics_bytes: int = 0  # metrics.jsonl's length when the checkpoint was written
    best_epoch: int | None = None  # the epoch saved in best.pt
    best_robust_val_acc: float | None = None
    stopped: dict[str, Any] | None = None  # {"epoch", "reason"} once the run ended early
    rollback: dict[str, Any] | None = None  # the overfitting check's rollback, when it fired

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> RunState:
        """The state saved in ``ckpt`` (fields a checkpoint predates take their defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in ckpt.items() if k in names})

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Become the state saved in ``ckpt`` (:meth:`from_checkpoint`), in place: whoever
        holds this state sees the restored one."""
        saved = RunState.from_checkpoint(ckpt)
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(saved, f.name))

    def stop(self, reason: str, message: str = "") -> None:
        """End the run after the current epoch (``report.json``'s ``stopped`` says why); the
        first stop stands."""
        if self.stopped is None:
            self.stopped = {"epoch": self.epoch, "reason": reason, "message": message}

    def as_checkpoint(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def improves(self, robust_val_acc: float | None) -> bool:
        """Is ``robust_val_acc`` a new maximum (None and NaN never are; a tie is not)?"""
        if robust_val_acc is None or not math.isfinite(robust_val_acc):
            return False
        return self.best_robust_val_acc is None or robust_val_acc > self.best_robust_val_acc
