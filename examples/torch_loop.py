"""A plain PyTorch loop on the digits data with accelat_torch.

    python examples/torch_loop.py                    # lr_find, then AccelAT on val accuracy
    python examples/torch_loop.py --policy onecycle  # OneCycle stepped every batch

Runs offline on CPU in a few seconds. The last line reads
``final val_acc=<acc> lr=<lr> cuts=<n>``.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

from accelat_core import AccelAT, OneCycle
from accelat_torch import lr_find, scheduler_for


def digits_batches(batch_size: int = 64):
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, val = order[:1400], order[1400:]
    batches = [(x[i], y[i]) for i in train.split(batch_size)]
    return batches, (x[val], y[val])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", choices=["accelat", "onecycle"], default="accelat")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()

    torch.manual_seed(0)
    batches, (x_val, y_val) = digits_batches()
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    if args.policy == "accelat":
        # The range test leaves model and optimizer exactly as they were.
        found = lr_find(model, optimizer, F.cross_entropy, batches, 1e-4, 10.0, num_steps=100)
        lr_max, lr_min = found.suggestion.lr_max, found.suggestion.lr_min
        print(f"lr_find: lr_max={lr_max:.6g} lr_min={lr_min:.6g}")
        policy = AccelAT(lr_max, lr_min, min_gain=0.01, factor=0.5, window=2)
    else:
        policy = OneCycle(0.3, total_steps=args.epochs * len(batches))
    # AccelAT reads a metric (a PlateauPolicyScheduler), OneCycle none (a PolicyScheduler).
    scheduler = scheduler_for(optimizer, policy)

    for epoch in range(args.epochs):
        for x, y in batches:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            if not policy.needs_metric:
                scheduler.step()  # a per-batch shape
        val_acc = accuracy(model, x_val, y_val)
        if policy.needs_metric:
            scheduler.step(val_acc)  # once per evaluation
        print(f"epoch {epoch}: val_acc={val_acc:.4f} next lr={scheduler.get_last_lr()[0]:.6g}")
        if scheduler.should_stop:
            break

    cuts = len(getattr(policy, "decisions", []))
    print(f"final val_acc={val_acc:.4f} lr={scheduler.get_last_lr()[0]:.6g} cuts={cuts}")


if __name__ == "__main__":
    main()
