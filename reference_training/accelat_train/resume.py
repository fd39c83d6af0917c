"""Resume and best-checkpoint bookkeeping: one ``RunState`` saved into and restored from
``checkpoint.pt``, and ``best.pt``.

A checkpoint holds the model, optimizer, scheduler (JSON policy state), every rank's method
state (Free AT's perturbation is per shard), the GradScaler, the torch RNG and the
:class:`RunState` counters, written atomically (:mod:`accelat_train.checkpoint`) after each
epoch's ``metrics.jsonl`` line. ``metrics_bytes`` is that file's length then: a resumed run
cuts lines written after the checkpoint, so the file never holds an epoch twice.

``best.pt`` holds the weights of the epoch with the highest robust validation accuracy so
far (a tie keeps the earlier epoch), with that ``epoch`` and ``robust_val_acc``, against
robust overfitting (Rice et al. 2020). It is written before ``checkpoint.pt``: a run killed
between the two redoes the epoch on resume and writes the same ``best.pt`` again.

>>> RunState().epoch
0
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from accelat_train.averaging import Averaging
from accelat_train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from accelat_train.policies import TrainerSchedule
from accelat_train.setup import Setup


@dataclass
class RunState:
    """Where a run stands after ``epoch`` epochs."""

    epoch: int = 0
    consumed: int = 0  # minibatches taken from the loader's stream
    passes: int = 0
    monitor_passes: float = 0.0  # the per-epoch monitor's passes (forwards alone count 1/3)
    val_passes: float = 0.0  # of which the clean validation accuracy's
    overhead_passes: float = 0.0  # the overfitting check's and schedule-free BN refreshes'
    seconds: float = 0.0
    co_prev: float | None = None  # the overfitting check's last accuracy
    last_lr: float | None = None  # the hyperparameters of the last weight update
    last_momentum: float | None = None
    metrics_bytes: int = 0
    best_epoch: int | None = None  # the epoch saved in best.pt
    best_robust_val_acc: float | None = None
    rollback: dict[str, Any] | None = None  # the overfitting check's rollback, when it fired

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> RunState:
        return cls(
            epoch=int(ckpt["epoch"]),
            consumed=int(ckpt["consumed"]),
            passes=int(ckpt["passes"]),
            monitor_passes=float(ckpt.get("monitor_passes", 0.0)),
            val_passes=float(ckpt.get("val_passes", 0.0)),
            overhead_passes=float(ckpt.get("overhead_passes", 0.0)),
            seconds=float(ckpt["seconds"]),
            co_prev=ckpt.get("co_prev"),
            last_lr=float(ckpt["last_lr"]),
            last_momentum=ckpt.get("last_momentum"),
            metrics_bytes=int(ckpt["metrics_bytes"]),
            best_epoch=ckpt.get("best_epoch"),
            best_robust_val_acc=ckpt.get("best_robust_val_acc"),
        )

    def as_checkpoint(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "consumed": self.consumed,
            "passes": self.passes,
            "monitor_passes": self.monitor_passes,
            "val_passes": self.val_passes,
            "overhead_passes": self.overhead_passes,
            "seconds": self.seconds,
            "metrics_bytes": self.metrics_bytes,
            "last_lr": self.last_lr,
            "last_momentum": self.last_momentum,
            "co_prev": self.co_prev,
            "best_epoch": self.best_epoch,
            "best_robust_val_acc": self.best_robust_val_acc,
        }

    def improves(self, robust_val_acc: float) -> bool:
        """Is ``robust_val_acc`` a new maximum (NaN never is; a tie is not)?"""
        if not math.isfinite(robust_val_acc):
            return False
        return self.best_robust_val_acc is None or robust_val_acc > self.best_robust_val_acc


def save_best(path: Path, model: torch.nn.Module, epoch: int, robust_val_acc: float) -> None:
    """Write ``best.pt`` atomically: the weights, their epoch and robust val accuracy."""
    save_checkpoint(
        path, {"model": model.state_dict(), "epoch": epoch, "robust_val_acc": robust_val_acc}
    )


def save(
    path: Path,
    setup: Setup,
    schedule: TrainerSchedule,
    state: RunState,
    method_states: list[Any],
    averaging: Averaging | None = None,
) -> None:
    """Write the whole run (``method_states``: every rank's, in rank order) atomically."""
    save_checkpoint(
        path,
        {
            "model": setup.model.state_dict(),
            "optimizer": setup.optimizer.state_dict(),
            "scheduler": schedule.state_json(),
            "method": {"ranks": method_states},
            "scaler": setup.scaler.state_dict() if setup.scaler is not None else {},
            "rng": {"torch": torch.get_rng_state()},
            **({} if averaging is None else {"ema": averaging.state_dict()}),
            **state.as_checkpoint(),
        },
    )


def restore(
    ckpt: dict[str, Any],
    path: Path,
    setup: Setup,
    schedule: TrainerSchedule,
    averaging: Averaging | None = None,
) -> RunState:
    """Load ``ckpt`` (read from ``path``) into ``setup``, ``schedule`` and ``averaging``;
    its ``RunState``."""
    setup.model.load_state_dict(ckpt["model"])
    setup.optimizer.load_state_dict(ckpt["optimizer"])
    schedule.load_state_json(ckpt["scheduler"])
    method_states = ckpt["method"]["ranks"]
    info = setup.dist
    if len(method_states) != info.world_size:
        raise ValueError(
            f"{path} was written by {len(method_states)} rank(s); resume it with "
            f"the same number of processes, not {info.world_size}"
        )
    setup.method.load_state_dict(method_states[info.rank])
    if setup.scaler is not None and ckpt.get("scaler"):
        setup.scaler.load_state_dict(ckpt["scaler"])
    if averaging is not None:
        averaging.load_state_dict(ckpt["ema"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    return RunState.from_checkpoint(ckpt)


def checkpoint_epoch(path: Path) -> int | str:
    """The epoch of the checkpoint at ``path``, or ``"unreadable"``."""
    try:
        return int(load_checkpoint(path)["epoch"])
    except CheckpointError:
        return "unreadable"


def append_line(path: Path, line: str) -> int:
    """Append ``line`` + newline durably; return the file's new length in bytes."""
    with open(path, "ab") as f:
        f.write(line.encode("utf-8") + b"\n")
        f.flush()
        os.fsync(f.fileno())
        return f.tell()


def truncate(path: Path, length: int) -> None:
    """Cut ``path`` back to ``length`` bytes (lines written after the checkpoint go)."""
    if not path.exists():
        path.write_bytes(b"")
        return
    with open(path, "r+b") as f:
        f.truncate(length)
        f.flush()
        os.fsync(f.fileno())
