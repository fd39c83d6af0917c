"""Resume and best-checkpoint bookkeeping: the :class:`CheckpointSaver` listener, and
:func:`restore`.

After each epoch the saver appends the epoch's line to ``metrics.jsonl``, updates ``best.pt``
and writes ``checkpoint.pt`` (rank 0), atomically. A checkpoint holds the training model,
the evaluated model when it is another one (weight averaging), the optimizer, the schedule
(JSON policy state), every rank's method state (Free AT's perturbation is per shard), the
GradScaler, the torch RNG, every stateful listener's state and the
:class:`~accelat_train.training.record.RunState` counters. ``metrics_bytes`` is the length of
``metrics.jsonl`` then: a resumed run cuts lines written after the checkpoint, so the file
never holds an epoch twice.

``best.pt`` holds the evaluated weights of the epoch with the highest robust validation
accuracy so far (a tie keeps the earlier epoch), with that ``epoch`` and ``robust_val_acc``,
against robust overfitting (Rice et al. 2020). It is written before ``checkpoint.pt``: a run
killed between the two redoes the epoch on resume and writes the same ``best.pt`` again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import torch

from accelat_train.training import distributed
from accelat_train.training.events import Callback
from accelat_train.training.record import RunState

if TYPE_CHECKING:
    from accelat_train.training.events import Trainer
    from accelat_train.training.record import EpochRecord


class CheckpointSaver(Callback):
    """Writes ``metrics.jsonl``, ``best.pt`` and ``checkpoint.pt`` after every epoch."""

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        state, run_dir = trainer.state, trainer.run_dir
        # Each rank's method state (Free AT's perturbation is per shard) goes to rank 0.
        method_states = distributed.gather_objects(trainer.info, trainer.setup.method.state_dict())
        if trainer.is_main:
            state.metrics_bytes = run_dir.append_metrics(
                json.dumps(record.to_json(), allow_nan=False)
            )
            if state.improves(record.robust_val_acc):
                state.best_epoch, state.best_robust_val_acc = record.epoch, record.robust_val_acc
                best = {"model": trainer.evaluated.state_dict(), "epoch": record.epoch,
                        "robust_val_acc": record.robust_val_acc}  # fmt: skip
                run_dir.save_checkpoint(run_dir.best, best)
            run_dir.save_checkpoint(run_dir.checkpoint, _checkpoint(trainer, method_states))
        distributed.barrier(trainer.info)


def _checkpoint(trainer: Trainer, method_states: list[Any]) -> dict[str, Any]:
    setup = trainer.setup
    averaged = trainer.evaluated is not trainer.model
    return {
        "model": trainer.model.state_dict(),
        **({"evaluated": trainer.evaluated.state_dict()} if averaged else {}),
        "optimizer": setup.optimizer.state_dict(),
        "scheduler": trainer.schedule.state_json(),
        "method": {"ranks": method_states},
        "scaler": setup.scaler.state_dict() if setup.scaler is not None else {},
        "rng": {"torch": torch.get_rng_state()},
        "callbacks": trainer.events.state_dict(),
        **trainer.state.as_checkpoint(),
    }


def restore(ckpt: dict[str, Any], trainer: Trainer) -> RunState:
    """Load ``ckpt`` into ``trainer`` (models, optimizer, schedule, method, listeners); its
    :class:`RunState`."""
    setup = trainer.setup
    method_states = ckpt["method"]["ranks"]
    info = trainer.info
    if len(method_states) != info.world_size:
        raise ValueError(
            f"{trainer.run_dir.checkpoint} was written by {len(method_states)} rank(s); "
            f"resume it with the same number of processes, not {info.world_size}"
        )
    trainer.model.load_state_dict(ckpt["model"])
    if "evaluated" in ckpt:
        trainer.evaluated.load_state_dict(ckpt["evaluated"])
    setup.optimizer.load_state_dict(ckpt["optimizer"])
    trainer.schedule.load_state_json(ckpt["scheduler"])
    setup.method.load_state_dict(method_states[info.rank])
    if setup.scaler is not None and ckpt.get("scaler"):
        setup.scaler.load_state_dict(ckpt["scaler"])
    trainer.events.load_state_dict(ckpt.get("callbacks", {}))
    torch.set_rng_state(ckpt["rng"]["torch"])
    return RunState.from_checkpoint(ckpt)
