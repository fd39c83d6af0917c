"""An exponential moving average (EMA) of the weights beside AccelAT, in a plain torch loop.

    python examples/torch_ema.py                      # horizon 1 epoch
    python examples/torch_ema.py --horizon-epochs 3

The EMA is torch's own ``AveragedModel`` with ``get_ema_multi_avg_fn(decay)``, updated
after every ``optimizer.step()``. It is the model you evaluate: AccelAT is stepped once
per epoch with the validation accuracy **of the averaged model**, so its cuts follow
the weights you will keep. The decay comes from a horizon in epochs,
``decay = 1 - 1 / (horizon_epochs * updates_per_epoch)``: an update's share of the
average falls by ``1/e`` over about ``horizon_epochs`` epochs, whatever the batch size.

Synthetic data, CPU, a few seconds. The last line reads
``final val_acc=<acc> lr=<lr> cuts=<n>``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from accelat_core import AccelAT
from accelat_torch import PlateauPolicyScheduler

#: after_update(update, model, averaged): called after each optimizer step and EMA update.
AfterUpdate = Callable[[int, nn.Module, AveragedModel], None]


@dataclass
class Run:
    decay: float
    val_accs: list[float]  # of the averaged model, one per epoch
    lrs: list[float]  # the lr after each scheduler.step(val_acc)
    model: nn.Module
    averaged: AveragedModel
    policy: AccelAT


Batch = tuple[torch.Tensor, torch.Tensor]


def blobs(batch_size: int = 64) -> tuple[list[Batch], Batch]:
    """Training batches and a validation set of four overlapping Gaussian classes in 20-d."""
    g = torch.Generator().manual_seed(0)
    centers = 0.6 * torch.randn(4, 20, generator=g)
    y = torch.randint(0, 4, (2048 + 1024,), generator=g)
    x = centers[y] + torch.randn(len(y), 20, generator=g)
    train = list(zip(x[:2048].split(batch_size), y[:2048].split(batch_size), strict=True))
    return train, (x[2048:], y[2048:])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was_training = model.training
    model.eval()  # BatchNorm reads its running statistics
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train(was_training)
    return acc


def train(
    epochs: int = 12, horizon_epochs: float = 1.0, after_update: AfterUpdate | None = None
) -> Run:
    torch.manual_seed(0)
    batches, (x_val, y_val) = blobs()
    model = nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    decay = 1 - 1 / (horizon_epochs * len(batches))
    # use_buffers=True averages BatchNorm's running mean and variance with the weights, so
    # the statistics the averaged model evaluates with follow the averaged weights. With
    # False they would be copies of the live model's, which belong to other weights (or
    # recompute them with torch.optim.swa_utils.update_bn before each evaluation).
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    policy = AccelAT(lr_max=0.1, min_lr=0.001, min_gain=0.005, factor=0.5, window=2)
    scheduler = PlateauPolicyScheduler(optimizer, policy)

    val_accs: list[float] = []
    lrs: list[float] = []
    update = 0
    for epoch in range(epochs):
        for xb, yb in batches:
            optimizer.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            optimizer.step()
            averaged.update_parameters(model)  # after every optimizer step
            update += 1
            if after_update is not None:
                after_update(update, model, averaged)
        val_acc = accuracy(averaged, x_val, y_val)  # the averaged model is what we keep
        scheduler.step(val_acc)  # once per epoch
        val_accs.append(val_acc)
        lrs.append(scheduler.get_last_lr()[0])
        print(f"epoch {epoch}: val_acc={val_acc:.4f} next lr={lrs[-1]:.6g}")
        if scheduler.should_stop:
            break
    return Run(decay, val_accs, lrs, model, averaged, policy)


def main(argv: list[str] | None = None) -> Run:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--horizon-epochs", type=float, default=1.0)
    args = parser.parse_args(argv)
    run = train(args.epochs, args.horizon_epochs)
    print(f"decay={run.decay!r}")
    cuts = len(run.policy.decisions)
    print(f"final val_acc={run.val_accs[-1]:.4f} lr={run.lrs[-1]:.6g} cuts={cuts}")
    return run


if __name__ == "__main__":
    main()
