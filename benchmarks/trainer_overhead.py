"""What the trainer's loop costs: its epochs against a minimal hand-written Free AT loop on the
same model, data and batch order (CPU, one thread).

Run one side as a whole process (set-up included, the same in both), e.g. each of::

    python -m benchmarks.trainer_overhead trainer --epochs 20
    python -m benchmarks.trainer_overhead hand --epochs 20

or the in-process pair with pytest-benchmark: ``python -m pytest
benchmarks/test_trainer_overhead.py --benchmark-only``. Both print the training passes per
second of the epochs alone. The target is the trainer at >= 0.98x the hand loop's passes/s;
results in docs/benchmarks.md.

:func:`hand_free_at` is the yardstick, and ``tests/train/training/test_trainer.py`` checks that
the trainer gives its weights and losses bit for bit, so both sides do the same work: the
trainer adds its events, its listeners' per-batch hooks, pass counting and the schedule's
plumbing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from accelat_core import Policy, StepDecay
from accelat_train import TrainConfig
from accelat_train.data import stream
from accelat_train.run_dir import RunDir
from accelat_train.training.build import Setup, build
from accelat_train.training.distributed import DistInfo
from accelat_train.training.listeners import listeners
from accelat_train.training.plan import RunPlan, plan_run
from accelat_train.training.trainer import Trainer

#: The benchmark's run: digits, the small CNN, Free AT m=4, batches of 128, step schedule.
CONFIG = dict(dataset="digits", model="cnn", method="free", replays=4, eps=0.1, lr_max=0.1,
              policy="step", batch_size=128, device="cpu", seed=0)  # fmt: skip


def hand_free_at(
    setup: Setup,
    schedule: Policy,
    epochs: int,
    *,
    after_step: Callable[[int, torch.nn.Module], Any] | None = None,
) -> list[dict[str, float]]:
    """Free AT (Shafahi et al. 2019) written out on ``setup``'s model, optimizer and batches:
    each minibatch replayed ``replays`` times, the perturbation carried over and stepped by
    eps * sign(its gradient), the lr ``schedule.at(t)`` set before update ``t``;
    ``after_step(t, model)`` after each update. Per epoch: the lr of its last update, the
    mean training loss and accuracy, summed in the trainer's order."""
    model, opt = setup.model, setup.optimizer
    eps, replays, per_epoch = setup.method.eps, setup.method.replays, setup.batches_per_epoch
    delta, t, epochs_out = None, 0, []
    for epoch in range(epochs):
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for x, y in stream(setup.loader, epoch * per_epoch, per_epoch):
            n = len(y)
            if delta is None:
                delta = torch.zeros_like(x, requires_grad=True)
            batch_loss = 0.0  # summed per minibatch, then per epoch, as the trainer sums
            for _ in range(replays):
                for group in opt.param_groups:
                    group["lr"] = schedule.at(t).lr
                logits = model((x + delta[:n]).clamp(0, 1))
                loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                delta.grad = None
                loss.backward()
                opt.step()
                t += 1
                batch_loss += loss.item() * n
                correct += int((logits.argmax(1) == y).sum())
                seen += n
                with torch.no_grad():
                    delta[:n].add_(eps * delta.grad[:n].sign()).clamp_(-eps, eps)
                if after_step is not None:
                    after_step(t, model)
            loss_sum += batch_loss
        epochs_out.append({"lr": schedule.at(t - 1).lr, "train_loss": loss_sum / seen,
                           "train_adv_acc": correct / seen})  # fmt: skip
    return epochs_out


def step_schedule(setup: Setup, epochs: int) -> Policy:
    """Free AT's step schedule over ``epochs`` epochs of ``setup``'s updates, from the lr
    ``setup``'s SGD was built with (the config's ``lr_max``)."""
    lr_max = float(setup.optimizer.param_groups[0]["lr"])
    return StepDecay.free_at(lr_max, epochs * setup.updates_per_epoch)


def trainer_epochs(plan: RunPlan, epochs: int) -> None:
    """The trainer's ``train_epoch`` on ``plan`` with its default listeners, ``epochs`` times."""
    trainer = Trainer(plan)
    trainer.events = listeners(plan, [], quiet=True)
    for epoch in range(1, epochs + 1):
        trainer.train_epoch(epoch)


def passes_per_second(side: str, epochs: int) -> float:
    """Build the benchmark's run and time ``epochs`` epochs of ``side`` ("trainer" or
    "hand"); training passes per second (the epochs alone)."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        cfg = TrainConfig(**CONFIG, epochs=epochs, out=folder)  # type: ignore[arg-type]
        plan = plan_run(cfg, RunDir(folder), DistInfo()) if side == "trainer" else None
        setup = build(cfg) if plan is None else plan.setup
        images = sum(len(y) for _, y in stream(setup.loader, 0, setup.batches_per_epoch * epochs))
        start = time.perf_counter()
        if plan is not None:
            trainer_epochs(plan, epochs)
        else:
            hand_free_at(setup, step_schedule(setup, epochs), epochs)
        seconds = time.perf_counter() - start
    return images * setup.method.replays / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=("trainer", "hand"))
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"{args.side}: {passes_per_second(args.side, args.epochs):.0f} passes/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
