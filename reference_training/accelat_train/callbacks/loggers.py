"""Loggers: listeners that copy each epoch's record to a CSV file, TensorBoard or W&B.

Each writes on rank 0 only, one entry per epoch with ``step = epoch``. A run resumed
after a crash leaves the CSV and TensorBoard files an uninterrupted run leaves, however late
the crash came (even after the loggers wrote an epoch whose checkpoint was never written).

- :class:`CSVLogger` (``RUN/metrics.csv``): one row per epoch, ``metrics.jsonl``'s keys as
  columns and the policy's decision as ``decision_gain``, ``decision_old_lr`` and
  ``decision_new_lr`` (empty when it took none). On every start it rewrites the file from
  ``metrics.jsonl``, which the trainer has cut back to the checkpoint's epoch.
- :class:`TensorBoardLogger` (``RUN/tensorboard/``): the scalars of :data:`SCALARS`
  under their ``metrics.jsonl`` names, each decision as text (``decision``), and at the
  end the test accuracies (``final/*``, ``best/*``) and why the run stopped (``stopped``,
  text). It opens its writer with ``purge_step = epoch + 1``: TensorBoard drops the steps a
  crashed run wrote after its checkpoint (its web app drops every kind; the older
  ``event_accumulator.EventAccumulator`` drops scalars but keeps texts).
- :class:`WandbLogger` (``RUN/wandb/``): the same scalars through ``wandb.log``; the W&B
  run id is in the checkpoint, so a resumed run continues the same W&B run. W&B cannot
  un-log a step (see the class).

If training raises (a NaN loss, Ctrl-C), ``on_train_end`` is not called: every completed
epoch is already on disk (the CSV is appended and TensorBoard flushed after each epoch);
the TensorBoard file stays open until :meth:`TensorBoardLogger.close`, the logger's next
start or the process's end, and W&B's exit hook finishes its run when the process ends.

>>> from accelat_train import TrainConfig, train
>>> run = "runs/a"
>>> train(TrainConfig(dataset="digits", eps=0.1, out=run),
...       callbacks=make_loggers(["csv", "tensorboard"], run))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import importlib
import io
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelat_train.atomic_writes import atomic_write_text
from accelat_train.callbacks.callback import Callback
from accelat_train.callbacks.record import EpochRecord
from accelat_train.deprecations import moved
from accelat_train.extras import needs_extra, require
from accelat_train.registry import LOGGERS
from accelat_train.run_dir import RunDir

if TYPE_CHECKING:
    from accelat_train.callbacks.callback import RunView

#: The per-epoch scalars TensorBoard and W&B get (those that are not None).
SCALARS = (
    "lr", "momentum", "train_loss", "train_adv_acc", "val_acc", "robust_val_acc", "passes",
    "monitor_passes", "overhead_passes", "test_clean_acc", "test_robust_acc",
)  # fmt: skip
DECISION_KEYS = ("gain", "old_lr", "new_lr")


def epoch_scalars(row: dict[str, Any]) -> dict[str, float]:
    """The :data:`SCALARS` of one ``metrics.jsonl`` row, None values left out."""
    return {key: float(row[key]) for key in SCALARS if row.get(key) is not None}


def decision_text(decision: dict[str, Any]) -> str:
    """A policy's cut in words: ``lr 0.1 -> 0.05 (gain 0.001)``."""
    return f"lr {decision['old_lr']:.4g} -> {decision['new_lr']:.4g} (gain {decision['gain']:.4g})"


def final_scalars(result: dict[str, Any]) -> dict[str, float]:
    """The final test evaluation's accuracies: ``final/*`` (the last weights) and, when a
    best epoch was saved, ``best/*`` (its weights) and ``best/epoch``."""
    scalars = {f"final/{k}": float(result["final"][k]) for k in ("clean_acc", "robust_acc")}
    best = result.get("best")
    if best is not None:
        scalars.update({f"best/{k}": float(best["test"][k]) for k in ("clean_acc", "robust_acc")})
        scalars["best/epoch"] = float(best["epoch"])
    return scalars


def stopped_text(stopped: dict[str, Any]) -> str:
    """Why the run ended: ``after epoch 3: budget (3 epochs)``."""
    why = f" ({stopped['message']})" if stopped.get("message") else ""
    return f"after epoch {stopped['epoch']}: {stopped['reason']}{why}"


# -- CSV ------------------------------------------------------------------------------------
def _csv_columns() -> tuple[str, ...]:
    keys = list(EpochRecord(0, None, None, 0, 0.0, 0.0, 0.0).to_json())  # its order
    at = keys.index("decision")
    return (*keys[:at], *(f"decision_{k}" for k in DECISION_KEYS), *keys[at + 1 :])


#: The CSV's header: ``metrics.jsonl``'s keys, the decision spread over three columns.
CSV_COLUMNS = _csv_columns()


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """One ``metrics.jsonl`` row as a CSV row (None becomes an empty cell)."""
    decision = row.get("decision") or {}
    flat = {k: v for k, v in row.items() if k != "decision"}
    flat.update({f"decision_{k}": decision.get(k) for k in DECISION_KEYS})
    return {k: "" if flat.get(k) is None else flat[k] for k in CSV_COLUMNS}


class CSVLogger(Callback):
    """One row per epoch in the CSV file ``path`` (rank 0); see the module docstring.

    >>> train(cfg, callbacks=[CSVLogger("runs/a/metrics.csv")])  # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_run(cls, folder: Path) -> CSVLogger:
        """The run's own: ``folder/metrics.csv`` (``--log csv``)."""
        return cls(folder / "metrics.csv")

    def on_train_begin(self, trainer: RunView) -> None:
        if trainer.is_main:
            # metrics.jsonl holds exactly the checkpoint's epochs: a crashed run's later rows go.
            atomic_write_text(self.path, _csv_text(trainer.run_dir.rows(), header=True))

    def on_epoch_end(self, trainer: RunView, record: EpochRecord) -> None:
        if trainer.is_main:
            with open(self.path, "a", encoding="utf-8", newline="") as f:
                f.write(_csv_text([record.to_json()], header=False))


def _csv_text(rows: Sequence[dict[str, Any]], *, header: bool) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(csv_row(row) for row in rows)
    return out.getvalue()


# -- TensorBoard ----------------------------------------------------------------------------
class TensorBoardLogger(Callback):
    """Per-epoch scalars, decisions and the final result in TensorBoard event files under
    ``log_dir`` (``torch.utils.tensorboard.SummaryWriter``, rank 0).

    >>> train(cfg, callbacks=[TensorBoardLogger("runs/a/tensorboard")])  # doctest: +SKIP
    """

    def __init__(self, log_dir: str | Path) -> None:
        require(("tensorboard",), "the tensorboard logger")
        self.log_dir = Path(log_dir)
        self.writer: Any = None

    @classmethod
    def in_run(cls, folder: Path) -> TensorBoardLogger:
        """The run's own: event files in ``folder/tensorboard/`` (``--log tensorboard``)."""
        return cls(folder / "tensorboard")

    def on_train_begin(self, trainer: RunView) -> None:
        self.close()  # a writer a raising train() left open
        if trainer.is_main:
            self.writer = _summary_writer(self.log_dir, purge_step=trainer.state.epoch + 1)

    def on_epoch_end(self, trainer: RunView, record: EpochRecord) -> None:
        if self.writer is None:
            return
        for tag, value in epoch_scalars(record.to_json()).items():
            self.writer.add_scalar(tag, value, global_step=record.epoch)
        if record.decision:
            self.writer.add_text("decision", decision_text(record.decision), record.epoch)
        self.writer.flush()

    def on_train_end(self, trainer: RunView, result: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = trainer.state.epoch
        for tag, value in final_scalars(result).items():
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.add_text("stopped", stopped_text(result["stopped"]), step)
        self.close()

    def close(self) -> None:
        """Flush and close the event file (safe to call twice)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _summary_writer(log_dir: Path, *, purge_step: int) -> Any:
    """A ``SummaryWriter`` on ``log_dir`` whose events at steps >= ``purge_step`` replace
    those earlier files hold there."""
    # TensorBoard imports TensorFlow when it is installed (16 s, its threads and logs) unless
    # its `notf` marker is importable; the stub it falls back to writes the same files.
    if "tensorflow" not in sys.modules:
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("notf"))
    with needs_extra("the tensorboard logger"):
        from torch.utils.tensorboard import SummaryWriter

    # TensorBoard reads a folder's event files in name order, which starts with the creation
    # second: a writer opened in the same second as an earlier one (a crash and its resume in
    # one process) waits for the next, so that its purge comes after what it purges.
    newest = max((_created(p) for p in log_dir.glob("events.out.tfevents.*")), default=0)
    if newest == int(time.time()):  # (a file from a clock ahead of ours is not waited for)
        time.sleep(newest + 1 - time.time())
    return SummaryWriter(str(log_dir), purge_step=purge_step)


def _created(path: Path) -> int:
    field = path.name.split(".")[3]  # events.out.tfevents.SECONDS.HOST...
    return int(field) if field.isdigit() else 0


# -- Weights & Biases -----------------------------------------------------------------------
class WandbLogger(Callback):
    """Per-epoch scalars and decisions in a W&B run (``wandb.log(..., step=epoch)``), the
    final result in its summary; rank 0. ``init`` goes to ``wandb.init`` (``mode="offline"``,
    ``entity``, ``tags``...); ``WANDB_MODE`` and the other W&B variables apply as usual.

    The W&B run id is saved in the checkpoint: a resumed training run continues the same W&B
    run from the checkpoint's epoch. W&B cannot un-log a step: an epoch logged after the last
    checkpoint by a run that then crashed (a window of one checkpoint write) is logged again
    on resume, so the W&B files hold that step twice (with equal values on a deterministic
    run); which one W&B's server shows after a sync is W&B's choice.

    >>> train(cfg, callbacks=[WandbLogger(project="accelat", save_dir="runs/a")])  # doctest: +SKIP
    """

    def __init__(
        self, project: str = "accelat", save_dir: str | Path | None = None, **init: Any
    ) -> None:
        require(("wandb",), "the wandb logger")
        self.project, self.save_dir, self.init = project, save_dir, init
        self.run_id: str | None = None
        self.run: Any = None

    @classmethod
    def in_run(cls, folder: Path) -> WandbLogger:
        """The run's own: a W&B run in ``folder/wandb/`` (``--log wandb``)."""
        return cls(save_dir=folder)

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")

    def on_train_begin(self, trainer: RunView) -> None:
        self.finish(exit_code=1)  # a run a raising train() left open
        if not trainer.is_main:
            return
        with needs_extra("the wandb logger"):
            wandb = importlib.import_module("wandb")  # optional: untyped here when missing
        save_dir = Path(self.save_dir or trainer.run_dir.path)
        save_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=self.project, id=self.run_id, resume="allow", dir=str(save_dir),
            name=trainer.run_dir.path.name, config=trainer.config, **self.init,
        )  # fmt: skip
        self.run_id = self.run.id  # W&B's own on a fresh run

    def on_epoch_end(self, trainer: RunView, record: EpochRecord) -> None:
        if self.run is None:
            return
        values: dict[str, Any] = dict(epoch_scalars(record.to_json()))
        if record.decision:
            values["decision"] = decision_text(record.decision)
        self.run.log(values, step=record.epoch)

    def on_train_end(self, trainer: RunView, result: dict[str, Any]) -> None:
        if self.run is None:
            return
        self.run.summary.update(final_scalars(result))
        self.run.summary["stopped"] = stopped_text(result["stopped"])
        self.finish(exit_code=0)

    def finish(self, exit_code: int = 0) -> None:
        """Finish the W&B run (safe to call twice)."""
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None


# -- by name --------------------------------------------------------------------------------
def make_loggers(names: Sequence[str], run_dir: RunDir | str | Path) -> list[Callback]:
    """The loggers ``names`` (registered ones, :data:`accelat_train.registry.LOGGERS`) writing
    into the run folder: ``RUN/metrics.csv``, ``RUN/tensorboard/``, ``RUN/wandb/``.

    Raises ``ValueError`` naming an unknown logger and
    :class:`~accelat_train.extras.MissingExtra` (an ``ImportError``) naming the package a
    logger needs and the extra that installs it.

    >>> make_loggers(["csv"], "runs/a")[0].path
    PosixPath('runs/a/metrics.csv')
    """
    folder = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise ValueError(f"unknown logger {unknown[0]!r}; choose from {', '.join(LOGGERS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"loggers must be named once each, got {', '.join(names)}")
    return [LOGGERS[name].load()(folder.path) for name in names]


__all__ = [
    "SCALARS",
    "CSVLogger",
    "TensorBoardLogger",
    "WandbLogger",
    "make_loggers",
]


#: A name that became the logger records' (deprecated since 0.2, gone in 0.4).
__getattr__ = moved(__name__, {
    "LOGGER_NAMES": (lambda: tuple(LOGGERS), "tuple(accelat_train.registry.LOGGERS)"),
})  # fmt: skip
