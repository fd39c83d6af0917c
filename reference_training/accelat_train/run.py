"""The epoch loop: train, monitor, let the policy decide, save; then the final evaluation.

Units and conventions (they matter for comparing policies):

- **Epoch = epoch-equivalent.** One epoch is one pass of gradient work over the training
  set. For Free AT with ``m`` replays it is ``ceil(len(loader) / m)`` minibatches, each
  replayed ``m`` times, taken from a running stream of loader epochs (the next epoch
  continues where this one stopped), so every method does about ``len(loader)`` weight
  updates per epoch.
- **Gradient passes** are counted by :mod:`accelat_train.methods`; under DDP the count is
  summed over ranks.
- **Scheduler unit**: see :mod:`accelat_train.policies`.

A run directory holds ``config.json``, one ``metrics.jsonl`` line and an atomic
``checkpoint.pt`` per epoch, and after the final test evaluation ``report.json`` and
``curves.png``.

>>> from accelat_train import TrainConfig, train
>>> train(TrainConfig(dataset="digits", eps=0.1, epochs=2, out="runs/a"))  # doctest: +SKIP
PosixPath('runs/a')
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from accelat_train import distributed, hooks, peers, report, resume
from accelat_train.averaging import Averaging
from accelat_train.checkpoint import atomic_write_text, load_checkpoint
from accelat_train.config import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    METRICS_NAME,
    TrainConfig,
    check_resume_config,
)
from accelat_train.evaluation import (
    CO_DROP,
    Monitor,
    OverfitCheck,
    as_tensors,
    epoch_seed,
    eval_subset,
    evaluate_test,
)
from accelat_train.load import BEST_NAME
from accelat_train.lr_finder import find_lr
from accelat_train.methods import FORWARD_ONLY, NonFiniteLoss, PassCounter, network
from accelat_train.peers import PEER_LR, optimizer_name
from accelat_train.policies import TrainerSchedule
from accelat_train.progress import Progress, epoch_line
from accelat_train.resume import RunState
from accelat_train.setup import Setup, prepare, resolve_device, stream


class TrainingDiverged(RuntimeError):
    """A run stopped on a NaN/inf loss; the message gives the epoch and batch."""


def train(cfg: TrainConfig, *, quiet: bool = False, resume: bool = False) -> Path:
    """Train ``cfg`` into ``cfg.out``; return the run dir.

    ``resume=True`` continues from ``checkpoint.pt`` (or starts afresh if there is none)
    and reproduces the uninterrupted run's metrics on CPU. Raises
    :class:`TrainingDiverged` on a NaN/inf loss (the last checkpoint is kept).
    """
    cfg.validate()
    info = distributed.init_from_env(resolve_device(cfg.device).type)
    try:
        run_dir = _train(cfg, info, quiet=quiet or not info.is_main, resume=resume)
        # Every rank waits for rank 0's test evaluation and report before any leaves.
        distributed.barrier(info)
        return run_dir
    finally:
        distributed.shutdown(info)


def _train(cfg: TrainConfig, info: distributed.DistInfo, *, quiet: bool, resume: bool) -> Path:
    if cfg.method == "free":
        cfg = dataclasses.replace(cfg, replays=cfg.num_replays)
    cfg, checkpoint = _open_run(cfg, resume)
    setup = prepare(cfg, dist_info=info)
    cfg, lr_max, found = _resolve_lr_max(cfg, setup)
    loop = EpochLoop(cfg, setup, lr_max, quiet=quiet)
    loop.start(checkpoint, found)
    for epoch in loop.epochs():
        row = loop.train_epoch(epoch)
        if loop.overfitted(epoch):
            break
        row["decision"] = loop.schedule.after_epoch(epoch, row["monitor_value"])
        loop.evaluate_test_every(row, epoch)
        loop.save(row)
        loop.log(row)
        if loop.schedule.should_stop:
            break
    return loop.finish()


def _open_run(cfg: TrainConfig, resume: bool) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The config to run (the saved lr_max on resume) and the checkpoint to resume from."""
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / CHECKPOINT_NAME
    if not ckpt_path.exists():
        return cfg, None
    if not resume:
        raise ValueError(
            f"{run_dir} already holds a run ({ckpt_path.name}); pass --resume to continue it "
            "or choose another --out"
        )
    checkpoint = load_checkpoint(ckpt_path)
    saved = json.loads((run_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    check_resume_config(cfg, saved, run_dir)
    return dataclasses.replace(cfg, lr_max=saved["lr_max"]), checkpoint


def _resolve_lr_max(
    cfg: TrainConfig, setup: Setup
) -> tuple[TrainConfig, float | None, dict[str, Any] | None]:
    """``lr_max`` as a float (the finder's suggestion for ``"auto"``; None with a policy
    config, which carries its own), and the finder's record when it ran."""
    if cfg.policy_config is not None:
        return cfg, None, None
    if optimizer_name(cfg) != "sgd" and cfg.lr_max == "auto":  # LR-free: their own lr
        return dataclasses.replace(cfg, lr_max=PEER_LR), PEER_LR, None
    if cfg.lr_max != "auto":
        return cfg, float(cfg.lr_max), None
    info = setup.dist
    finding = find_lr(setup)
    lr_max = distributed.broadcast_float(info, finding.lr_max)
    found = {**finding.record(), "lr_max": lr_max}
    if info.is_main:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        finding.plot(Path(cfg.out) / "lr_find.png")
    return dataclasses.replace(cfg, lr_max=lr_max), lr_max, found


class EpochLoop:
    """One run's training state between epochs: its setup, schedule, monitor and counters."""

    def __init__(
        self, cfg: TrainConfig, setup: Setup, lr_max: float | None, *, quiet: bool
    ) -> None:
        self.cfg, self.setup, self.quiet = cfg, setup, quiet
        self.info = setup.dist
        self.run_dir = Path(cfg.out)
        self.ckpt_path = self.run_dir / CHECKPOINT_NAME
        self.metrics_path = self.run_dir / METRICS_NAME
        self.best_path = self.run_dir / BEST_NAME
        total = cfg.epochs * setup.updates_per_epoch
        self.schedule = TrainerSchedule(
            cfg, setup.optimizer, lr_max, total, samples=monitor_samples(cfg, setup)
        )
        self.state = RunState()
        self.averaging = (
            Averaging(
                setup.model, horizon_updates=max(1.0, cfg.ema_epochs * setup.updates_per_epoch),
                warmup=cfg.ema_warmup,
            )
            if cfg.ema_epochs > 0
            else None
        )  # fmt: skip
        self._remember_hyper()
        setup.method.after_update = self._after_update
        device = setup.device
        self.monitor = Monitor(
            as_tensors(setup.splits.val, device), size=cfg.monitor_size,
            steps=cfg.monitor_steps, eps=cfg.eps, seed=cfg.seed,
        )  # fmt: skip
        self.test = eval_subset(*as_tensors(setup.splits.test, device), cfg.eval_size)
        self.co = (
            OverfitCheck(next(setup.loader.epoch(0)), cfg.eps, cfg.seed) if cfg.co_check else None
        )
        self.inject = hooks.nan_injection()
        self.lrs: list[float] = []
        self.progress = Progress(quiet=quiet)

    def _remember_hyper(self) -> None:
        group = self.setup.optimizer.param_groups[0]
        momentum = group.get("momentum")
        self.state.last_lr = float(group["lr"])
        self.state.last_momentum = None if momentum is None else float(momentum)

    @property
    def evaluated(self) -> torch.nn.Module:
        """The model the run evaluates: the averaged one when averaging is on."""
        return self.setup.model if self.averaging is None else self.averaging.module

    def _after_update(self) -> None:
        if self.averaging is not None:
            self.averaging.update(self.setup.model)
        self._remember_hyper()
        self.schedule.after_update()

    # -- the loop's steps ----------------------------------------------------------------
    def start(self, checkpoint: dict[str, Any] | None, found: dict[str, Any] | None) -> None:
        """Restore ``checkpoint``, or write a fresh run's ``config.json``."""
        if checkpoint is not None:
            self.state = resume.restore(
                checkpoint, self.ckpt_path, self.setup, self.schedule, self.averaging
            )
            if self.co is not None:
                self.co.previous = self.state.co_prev
            if self.info.is_main:
                resume.truncate(self.metrics_path, self.state.metrics_bytes)
        elif self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            resolved = self.cfg.to_json()
            resolved["lr_find"] = found or self.cfg.lr_find
            resolved["world_size"] = self.info.world_size
            resolved["resolved_device"] = str(self.setup.device)
            resolved["updates_per_epoch"] = self.setup.updates_per_epoch
            atomic_write_text(self.run_dir / CONFIG_NAME, json.dumps(resolved, indent=2) + "\n")
            self.metrics_path.write_bytes(b"")
        distributed.barrier(self.info)

    def epochs(self) -> range:
        return range(self.state.epoch + 1, self.cfg.epochs + 1)

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One epoch of training and the monitor; the epoch's metrics row."""
        setup, cfg, state = self.setup, self.cfg, self.state
        setup.method.generator = torch.Generator(device=setup.device).manual_seed(
            epoch_seed(cfg.seed, epoch, 1)
        )
        _sync(setup.device)
        t0 = time.perf_counter()
        peers.train_mode(setup.optimizer)
        sums = self._train_batches(epoch)
        state.seconds += time.perf_counter() - t0
        state.consumed += setup.batches_per_epoch
        loss_sum, correct, n, passes = distributed.sum_over_ranks(self.info, list(sums))
        state.passes += int(passes)
        distributed.broadcast_buffers(self.info, setup.model)
        if self.averaging is not None:
            distributed.broadcast_buffers(self.info, self.averaging.module)
        with self._counting() as counted:
            peers.eval_mode(setup.optimizer, setup.model, setup.loader.epoch(0))
        state.overhead_passes += counted.count
        with self._counting() as counted:
            val_acc = self.monitor.clean(self.evaluated)
        state.val_passes += counted.count
        state.monitor_passes += counted.count
        with self._counting() as counted:
            robust_val_acc = self.monitor.robust(self.evaluated, epoch)
        state.monitor_passes += counted.count
        row: dict[str, Any] = {
            "epoch": epoch,
            "lr": state.last_lr,
            "momentum": state.last_momentum,
            "passes": state.passes,
            "seconds": round(state.seconds, 6),
            "train_loss": loss_sum / n,
            "train_adv_acc": correct / n,
            "val_acc": val_acc,
            "robust_val_acc": robust_val_acc,
            "monitor": cfg.monitor,
            "monitor_passes": state.monitor_passes,
            "val_passes": state.val_passes,
            "overhead_passes": state.overhead_passes,
        }
        row["monitor_value"] = row[cfg.monitor]
        return row

    def _counting(self) -> PassCounter:
        """Passes of the network outside training: forwards alone count a third."""
        return PassCounter(network(self.setup.model), forward_only=FORWARD_ONLY)

    def _train_batches(self, epoch: int) -> tuple[float, int, int, int]:
        """One epoch-equivalent's batches: ``(loss_sum, correct, n, passes)`` summed."""
        setup = self.setup
        setup.model.train()
        setup.train_model.train()
        loss_sum, correct, n, passes = 0.0, 0, 0, 0
        bar = self.progress.batches(
            stream(setup.loader, self.state.consumed, setup.batches_per_epoch),
            epoch=epoch, epochs=self.cfg.epochs, total=setup.batches_per_epoch,
        )  # fmt: skip
        for b, (x, y) in enumerate(bar, start=1):
            if self.inject == (epoch, b):
                x = torch.full_like(x, float("nan"))
            try:
                stats = setup.method.train_batch(setup.train_model, setup.optimizer, x, y)
            except NonFiniteLoss as exc:
                raise _diverged(setup, exc, epoch, b, self.ckpt_path) from None
            loss_sum += stats.loss_sum
            correct += stats.correct
            n += stats.n
            passes += stats.passes
            bar.set_postfix(
                lr=f"{self.state.last_lr:.3g}", loss=f"{loss_sum / n:.4f}",
                adv_acc=f"{correct / n:.3f}",
            )  # fmt: skip
        _sync(setup.device)
        return loss_sum, correct, n, passes

    def overfitted(self, epoch: int) -> bool:
        """FGSM-RS's check fired: roll the model back to the best checkpoint (rank 0 reads
        it; every rank restores the same weights) and say so."""
        if self.co is None:
            return False
        with self._counting() as counted:
            fired = self.co.fired(self.setup.model, epoch)
        self.state.overhead_passes += counted.count
        if not fired:
            return False
        state = self.state
        restored = state.best_epoch if self.best_path.exists() else None
        if restored is not None:
            weights = load_checkpoint(self.best_path)["model"]
            self.setup.model.load_state_dict(weights)
            self.evaluated.load_state_dict(weights)
        state.rollback = {"epoch": epoch, "restored_epoch": restored}
        message = (
            f"catastrophic overfitting at epoch {epoch}: PGD accuracy on the check batch fell "
            f"by more than {CO_DROP:.0%}; "
            + (f"rolled back to the best epoch {restored}" if restored else "no epoch to keep")
        )
        if self.info.is_main and not self.quiet:
            self.progress.write(message)
        return True

    def evaluate_test_every(self, row: dict[str, Any], epoch: int) -> None:
        """The test evaluation at ``eval_every`` epochs (the last epoch's is the final one)."""
        cfg = self.cfg
        row["test_clean_acc"] = None
        row["test_robust_acc"] = None
        due = cfg.eval_every and epoch % cfg.eval_every == 0 and epoch < cfg.epochs
        if self.info.is_main and due:
            result = evaluate_test(
                self.setup.model, *self.test, cfg.attacks, cfg.eps, steps=cfg.eval_steps
            )
            row["test_clean_acc"] = result["clean_acc"]
            row["test_robust_acc"] = result["robust_acc"]

    def save(self, row: dict[str, Any]) -> None:
        """Append ``row`` to metrics.jsonl, then write the checkpoint (rank 0)."""
        self.lrs.append(row["lr"])
        state = self.state
        state.co_prev = None if self.co is None else self.co.previous
        # Each rank's method state (Free AT's perturbation is per shard) goes to rank 0.
        method_states = distributed.gather_objects(self.info, self.setup.method.state_dict())
        if self.info.is_main:
            line = json.dumps(row, allow_nan=False)
            state.metrics_bytes = resume.append_line(self.metrics_path, line)
            state.epoch = row["epoch"]
            if state.improves(row["robust_val_acc"]):
                state.best_epoch, state.best_robust_val_acc = row["epoch"], row["robust_val_acc"]
                resume.save_best(self.best_path, self.evaluated, *self.best())
            resume.save(
                self.ckpt_path, self.setup, self.schedule, state, method_states, self.averaging
            )
        distributed.barrier(self.info)

    def best(self) -> tuple[int, float]:
        return int(self.state.best_epoch), float(self.state.best_robust_val_acc)

    def log(self, row: dict[str, Any]) -> None:
        """The epoch's line: its monitor values and any decision the policy took."""
        if self.info.is_main and not self.quiet:
            self.progress.write(epoch_line(row, self.cfg.epochs))

    def finish(self) -> Path:
        """The final test evaluation, of the last and of the best checkpoint, and the
        report (rank 0)."""
        hooks.dump_rank(self.info.rank, self.setup.model, self.lrs)
        if self.info.is_main:
            final = self._evaluate(self.evaluated)
            best = None
            if self.state.best_epoch is not None:
                model = copy.deepcopy(self.evaluated)
                model.load_state_dict(load_checkpoint(self.best_path)["model"])
                epoch, value = self.best()
                best = {"epoch": epoch, "robust_val_acc": value, "test": self._evaluate(model)}
            report.write_run_report(
                self.run_dir, final, best=best, rollback=self.state.rollback,
                evaluated="weights" if self.averaging is None else "ema",
            )  # fmt: skip
        return self.run_dir

    def _evaluate(self, model: torch.nn.Module) -> dict[str, Any]:
        cfg = self.cfg
        return evaluate_test(
            model, *self.test, cfg.attacks, cfg.eps, steps=cfg.eval_steps,
            # attacks' bar is always on when asked for; ask only on a terminal.
            progress=not self.quiet and sys.stderr.isatty(),
        )  # fmt: skip


def monitor_samples(cfg: TrainConfig, setup: Setup) -> int:
    """How many examples one value of the monitored metric averages over: the monitored
    validation images, the validation split, or an epoch's distinct training images."""
    if cfg.monitor == "robust_val_acc":
        return min(cfg.monitor_size, len(setup.splits.val.y))
    if cfg.monitor == "val_acc":
        return len(setup.splits.val.y)
    return setup.batches_per_epoch * cfg.batch_size


def _diverged(
    setup: Setup, exc: NonFiniteLoss, epoch: int, batch: int, ckpt_path: Path
) -> TrainingDiverged:
    kept = (
        f"{ckpt_path} (epoch {resume.checkpoint_epoch(ckpt_path)})"
        if ckpt_path.exists()
        else "none yet"
    )
    return TrainingDiverged(
        f"loss is {exc.value} at epoch {epoch} batch {batch} "
        f"(method {setup.cfg.method}, lr {setup.optimizer.param_groups[0]['lr']:.4g}); "
        f"stopping; last good checkpoint: {kept}"
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
