"""The :class:`Trainer`: one run in progress, from its plan; the steps of the loop.

The loop (:func:`accelat_train.training.loop.run_plan`) calls these steps in order:
``start``, then per epoch ``train_epoch``, ``measure``, ``decide``, and at the end
``evaluate``; the listeners hear each event through the trainer's :attr:`~Trainer.view`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import torch

from accelat_train.adversarial.evaluation import epoch_seed
from accelat_train.adversarial.methods import FORWARD_ONLY, NonFiniteLoss, PassCounter, network
from accelat_train.callbacks.callback import Callbacks, RunView
from accelat_train.callbacks.record import EpochRecord, RunState
from accelat_train.checkpoint import load_weights
from accelat_train.data import stream
from accelat_train.training import distributed, optimizers
from accelat_train.training.plan import RunPlan
from accelat_train.training.run_checkpoint import restore


class TrainingDiverged(RuntimeError):
    """A run stopped on a NaN/inf loss; the message gives the epoch and batch."""


class Trainer:
    """One run in progress: its plan (:class:`~accelat_train.training.plan.RunPlan`), its
    counters (``state``) and its listeners (``events``, which hear it through ``view``).

    ``model`` is what trains (and what is saved for resume); ``evaluated`` is what the run
    evaluates (the monitor, ``best.pt``, the final test): the same model, or its average, as
    the plan says.
    """

    def __init__(self, plan: RunPlan) -> None:
        self.plan, setup = plan, plan.setup
        self.setup, self.run_dir, self.info = setup, plan.run_dir, setup.dist
        self.model: torch.nn.Module = setup.model
        self.evaluated: torch.nn.Module = plan.evaluated
        self.optimizer, self.schedule = setup.optimizer, plan.schedule
        self.state = RunState()
        self.events = Callbacks([])
        self.view = RunView(
            self.state, self.run_dir, self.model, self.evaluated, plan.config, plan.epochs,
            setup.batches_per_epoch, setup.updates_per_epoch, self.info.rank,
            self.info.world_size, self,
        )  # fmt: skip
        self._remember_hyper()

    @property
    def lr(self) -> float:
        """The lr the next weight update uses (the first param group's)."""
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.info.is_main

    def counting(self, model: torch.nn.Module | None = None) -> PassCounter:
        """Count ``model``'s passes (default: the training model's) outside training; a
        forward alone is 1/3 pass."""
        return PassCounter(network(model or self.model), forward_only=FORWARD_ONLY)

    def checkpoint_state(self) -> dict[str, Any] | None:
        """What ``checkpoint.pt`` holds now (:mod:`~accelat_train.training.run_checkpoint`),
        on rank 0; None elsewhere. Every rank must call it: each rank's method state (Free
        AT's perturbation is per shard) is gathered to rank 0."""
        setup = self.setup
        method_states = distributed.gather_objects(self.info, setup.method.state_dict())
        if not self.is_main:
            return None
        averaged = self.evaluated is not self.model
        return {
            "model": self.model.state_dict(),
            **({"evaluated": self.evaluated.state_dict()} if averaged else {}),
            "optimizer": setup.optimizer.state_dict(),
            "scheduler": self.schedule.state_json(),
            "method": {"ranks": method_states},
            "scaler": setup.scaler.state_dict() if setup.scaler is not None else {},
            "rng": {"torch": torch.get_rng_state()},
            "callbacks": self.events.state_dict(),
            **self.state.as_checkpoint(),
        }

    # -- the loop's steps ----------------------------------------------------------------
    def start(self) -> None:
        """Restore a resumed run's checkpoint (run state and listeners) and, with a new
        budget, its ``config.json``; or write a fresh run's config and empty metrics."""
        opened = self.plan.opened
        if opened.checkpoint is not None:
            restore(
                opened.checkpoint, self.run_dir.checkpoint, self.setup,
                evaluated=self.evaluated, schedule=self.schedule, listeners=self.events,
            )  # fmt: skip
            self.state.restore(opened.checkpoint)
            if self.is_main:
                self.run_dir.truncate_metrics(self.state.metrics_bytes)
        elif self.is_main:
            self.run_dir.write_config(self.plan.fresh_config())
            self.run_dir.metrics.write_bytes(b"")
        distributed.barrier(self.info)
        if opened.config is not None and self.is_main:
            self.run_dir.write_config(opened.config)  # the run's new budget, once restored

    def epochs(self) -> Iterator[int]:
        """The epochs still to train: until the budget or a stop."""
        while self.state.stopped is None and self.state.epoch < self.plan.epochs:
            yield self.state.epoch + 1

    def train_epoch(self, epoch: int) -> EpochRecord:
        """One epoch of training; its record (the training part)."""
        setup, state = self.setup, self.state
        setup.method.generator.manual_seed(epoch_seed(self.plan.seed, epoch, 1))
        self.events.on_epoch_begin(self.view, epoch)
        _sync(setup.device)
        t0 = time.perf_counter()
        optimizers.train_mode(setup.optimizer)
        sums = self._train_batches(epoch)
        _sync(setup.device)
        state.seconds += time.perf_counter() - t0
        state.consumed += setup.batches_per_epoch
        state.epoch = epoch
        loss_sum, correct, n, passes = distributed.sum_over_ranks(self.info, list(sums))
        state.passes += int(passes)
        for module in {id(m): m for m in (self.model, self.evaluated)}.values():
            distributed.broadcast_buffers(self.info, module)
        with self.counting() as counted:
            optimizers.eval_mode(
                setup.optimizer, setup.model, setup.loader.epoch(0), self.plan.bn_refresh
            )
        state.overhead_passes += counted.count
        return EpochRecord(
            epoch=epoch, lr=state.last_lr, momentum=state.last_momentum, passes=state.passes,
            seconds=round(state.seconds, 6), train_loss=loss_sum / n,
            train_adv_acc=correct / n, monitor=self.plan.validation.metric,
        )  # fmt: skip

    def _train_batches(self, epoch: int) -> tuple[float, int, int, int]:
        """One epoch-equivalent's minibatches: ``(loss_sum, correct, n, passes)`` summed."""
        setup, view = self.setup, self.view
        setup.model.train()
        setup.train_model.train()
        loss_sum, correct, n, passes = 0.0, 0, 0, 0
        batches = stream(setup.loader, self.state.consumed, setup.batches_per_epoch)
        for b, (x, y) in enumerate(batches, start=1):
            self.events.on_train_batch_begin(view, b)
            try:
                stats = setup.method.train_batch(
                    setup.train_model, setup.optimizer, x, y, on_step=self._after_step
                )
            except NonFiniteLoss as exc:
                raise self._diverged(exc, epoch, b) from None
            loss_sum, correct = loss_sum + stats.loss_sum, correct + stats.correct
            n, passes = n + stats.n, passes + stats.passes
            self.events.on_train_batch_end(view, b, stats)
        return loss_sum, correct, n, passes

    def _after_step(self) -> None:
        self._remember_hyper()
        self.schedule.after_update()
        self.events.on_optimizer_step(self.view)

    def _remember_hyper(self) -> None:
        group = self.optimizer.param_groups[0]
        momentum = group.get("momentum")
        self.state.last_lr = float(group["lr"])
        self.state.last_momentum = None if momentum is None else float(momentum)

    def measure(self, record: EpochRecord) -> None:
        """The validation monitor on the evaluated model (every ``validation.every`` epochs
        and at the last), and the test evaluation of every ``test.every`` epochs."""
        every, test, epochs = self.plan.validation.every, self.plan.test, self.plan.epochs
        if (every and record.epoch % every == 0) or record.epoch == epochs:
            self.validate(record)
        record.overhead_passes = self.state.overhead_passes
        due = test.every and record.epoch % test.every == 0 and record.epoch < epochs
        if self.is_main and due:
            result = test.run(self.evaluated)
            record.test_clean_acc = result["clean_acc"]
            record.test_robust_acc = result["robust_acc"]

    def validate(self, record: EpochRecord) -> None:
        """Clean and robust validation accuracy of the evaluated model, passes counted."""
        state, monitor = self.state, self.plan.validation.monitor
        with self.counting(self.evaluated) as counted:
            record.val_acc = monitor.clean(self.evaluated)
        state.val_passes += counted.count
        with self.counting(self.evaluated) as robust:
            record.robust_val_acc = monitor.robust(self.evaluated, record.epoch)
        state.monitor_passes += counted.count + robust.count
        record.monitor_passes, record.val_passes = state.monitor_passes, state.val_passes

    def decide(self, record: EpochRecord) -> None:
        """The policy reads the monitored metric (a metric-driven one); it may stop the run,
        and a stopped run's last epoch is validated."""
        if self.schedule.per_epoch:
            value = record.monitor_value
            assert value is not None, "a metric-driven policy's monitor runs every epoch"
            record.decision = self.schedule.after_epoch(value)
        if self.schedule.should_stop and record.epoch < self.plan.epochs:  # else: the budget
            policy = type(self.schedule.policy).__name__
            self.state.stop("policy", f"{policy} found no further gain")
        if self.state.stopped is not None and record.robust_val_acc is None:
            self.validate(record)

    def evaluate(self) -> dict[str, Any]:
        """The final test evaluation of the last and the best weights (rank 0; {} elsewhere),
        each from a fixed random state, so that the same weights get the same figures."""
        if not self.is_main:
            return {}
        test, state = self.plan.test, self.state
        result: dict[str, Any] = {"final": test.run_seeded(self.evaluated), "best": None}
        if state.best_epoch is not None:
            model = copy.deepcopy(self.evaluated)
            model.load_state_dict(load_weights(self.run_dir.best)["model"])
            result["best"] = {
                "epoch": state.best_epoch,
                "robust_val_acc": state.best_robust_val_acc,
                "test": test.run_seeded(model),
            }
        result["stopped"] = state.stopped or {
            "epoch": state.epoch, "reason": "budget", "message": f"{self.plan.epochs} epochs",
        }  # fmt: skip
        result["rollback"] = state.rollback
        # The weights "final" evaluated: the last epoch's, or best.pt's once a stop restored it.
        restored = (state.stopped or {}).get("restored_epoch") or (state.rollback or {}).get(
            "restored_epoch"
        )
        result["final_weights_epoch"] = restored or state.epoch
        result["evaluated"] = "weights" if self.evaluated is self.model else "averaged weights"
        return result

    def _diverged(self, exc: NonFiniteLoss, epoch: int, batch: int) -> TrainingDiverged:
        kept = self.run_dir.checkpoint_epoch()
        where = f"{self.run_dir.checkpoint} (epoch {kept})" if kept != "none yet" else kept
        return TrainingDiverged(
            f"loss is {exc.value} at epoch {epoch} batch {batch} "
            f"(method {self.plan.config['method']}, lr {self.lr:.4g}); "
            f"stopping; last good checkpoint: {where}"
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
