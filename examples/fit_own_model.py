"""The reference trainer on your own network and your own data, from Python.

    python examples/fit_own_model.py [OUT]     # default: runs/fit-own-model

Free adversarial training of a small network of our own (not one of the trainer's) on
scikit-learn's digits, held as plain tensors in [0, 1], with AccelAT deciding the lr and an
average of the weights evaluated; the run folder holds what ``accelat train`` writes. Runs
offline on CPU in about a minute. The last line reads
``final clean=<acc> robust=<acc> stopped=<reason>``.
"""

from __future__ import annotations

import sys

import torch
from sklearn.datasets import load_digits
from torch import nn

from accelat_train import fit

torch.manual_seed(0)
x, y = load_digits(return_X_y=True)
images = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)  # in [0, 1]
labels = torch.tensor(y)
train, test = (images[:1400], labels[:1400]), (images[1400:], labels[1400:])

net = nn.Sequential(  # any nn.Module that takes [0, 1] images and returns logits
    nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
    nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
)  # fmt: skip

run = fit(
    net, train, test=test,
    method="free", eps=0.1, epochs=10, policy="accelat", lr_max="auto", ema_epochs=2,
    out=sys.argv[1] if len(sys.argv) > 1 else "runs/fit-own-model", device="cpu", quiet=True,
)  # fmt: skip
final = run.report["final"]
print(
    f"final clean={final['clean_acc']:.3f} robust={final['robust_acc']:.3f} "
    f"stopped={run.report['stopped']['reason']}"
)
