"""A training method of your own, offered by ``accelat train`` like a built-in one: its code
(a ``Method`` subclass) and one record (``MethodEntry``) registered before the command line
runs. Attacks, datasets, networks, loggers and optimizers are added the same way (README,
"Extending the trainer").

    python examples/register_method.py [OUT]     # default: runs/register-method

Trains the small CNN on digits for 2 epochs on images moved by uniform noise in the eps-ball,
on CPU in seconds. The last line reads ``final clean=<acc> robust=<acc> method=noise``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

from accelat_train import registry
from accelat_train.adversarial.methods import Method
from accelat_train.cli import main


class UniformNoise(Method):
    """Training on images moved by uniform noise in the eps-ball: one pass an image."""

    def _adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        noise = torch.rand(x.shape, generator=self.generator) * 2 - 1
        return (x + self.eps * noise).clamp(0, 1)


entry = registry.MethodEntry(
    name="noise", help="uniform noise in the eps-ball", build=UniformNoise, finder_attack="clean"
)
registry.METHODS.register(entry)

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/register-method")
main(["train", "--method", "noise", "--out", str(out), "--restart", "--epochs", "2",
      "--train-size", "300", "--eval-size", "100", "--eval-steps", "3", "--quiet"])  # fmt: skip
report = json.loads((out / "report.json").read_text())
final = report["final"]
print(f"final clean={final['clean_acc']:.3f} robust={final['robust_acc']:.3f} "
      f"method={report['config']['method']}")  # fmt: skip
