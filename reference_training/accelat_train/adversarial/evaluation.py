"""Clean and robust accuracy: the per-epoch monitor and the final test evaluation.

The monitor steers the schedule from a validation split held out of the training set: clean
accuracy on all of it, and accuracy under our PGD-``monitor_steps`` (random start, seeded per
epoch) on its first ``monitor_size`` images. The final evaluation runs the configured attacks
on a fixed subset of the test set.

>>> x, y = torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
>>> [t.shape[0] for t in eval_subset(x, y, 2)]
[2, 2]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from accelat_train.adversarial import attacks, robust
from accelat_train.data.loader import unit_pixels


def as_tensors(data: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """An ``ArrayData`` split as ``(x float32 N x C x H x W in [0, 1], y int64)`` on ``device``."""
    x = unit_pixels(torch.from_numpy(data.x).permute(0, 3, 1, 2)).to(device)
    return x.contiguous(), torch.from_numpy(data.y).long().to(device)


def eval_subset(
    x: torch.Tensor, y: torch.Tensor, size: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random subset of ``size`` examples (all when None).

    Random, not the first ``size``: an image-folder test split is sorted by class, so its
    first 300 CIFAR images are all airplanes. The same subset for every run and ``accelat eval``.
    A ``size`` beyond the split is refused (:func:`check_subset_size`), not cut to it.
    """
    check_subset_size(size, len(y))
    if size is None or size == len(y):
        return x, y
    keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:size]
    keep = keep.to(y.device)
    return x[keep], y[keep]


def check_subset_size(size: int | None, available: int) -> None:
    """Raise ``ValueError`` naming ``eval_size`` when ``size`` asks for more test images than
    the ``available`` ones: a report on fewer images than asked for would say otherwise."""
    if size is not None and (type(size) is not int or size < 1):
        raise ValueError(f"eval_size must be an integer >= 1 (or None: all), got {size!r}")
    if size is not None and size > available:
        raise ValueError(f"eval_size must be at most the test set's {available} images, got {size}")


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A generator seed that depends only on (seed, epoch, stream)."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{stream}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def clean_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``attacks.clean_accuracy``, or NaN for an empty split (a run with ``val_size=0``)."""
    return float("nan") if len(y) == 0 else float(attacks.clean_accuracy(model, x, y))


def pgd_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    *,
    seed: int,
    batch_size: int = 500,
) -> float:
    """Accuracy under our PGD-``steps`` (eval mode, random start from ``seed``)."""
    if len(y) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    correct = 0
    try:
        for i in range(0, len(y), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            x_adv = attacks.pgd(model, xb, yb, eps, steps, generator=generator)
            with torch.no_grad():
                correct += int((model(x_adv).argmax(1) == yb).sum().item())
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return correct / len(y)


class Monitor:
    """The per-epoch validation metrics of one run: ``clean(model)`` (``val_acc``) and
    ``robust(model, epoch)`` (``robust_val_acc``)."""

    def __init__(
        self, val: tuple[torch.Tensor, torch.Tensor], *, size: int, steps: int, eps: float,
        seed: int,
    ) -> None:  # fmt: skip
        self.val_x, self.val_y = val
        self.mon_x, self.mon_y = self.val_x[:size], self.val_y[:size]
        self.steps, self.eps, self.seed = steps, eps, seed

    def clean(self, model: nn.Module) -> float:
        """Clean accuracy on the whole validation split."""
        return clean_accuracy(model, self.val_x, self.val_y)

    def robust(self, model: nn.Module, epoch: int) -> float:
        """PGD accuracy on the first ``size`` validation images, seeded per epoch."""
        return pgd_accuracy(
            model, self.mon_x, self.mon_y, self.eps, self.steps,
            seed=epoch_seed(self.seed, epoch, 2),
        )  # fmt: skip


@dataclass(frozen=True)
class TestEvaluation:
    """A run's test evaluation: its fixed subset of the test set (``x``, ``y``: images in
    [0, 1] on the run's device, :func:`eval_subset`), the ``attacks`` at ``eps`` with
    ``steps`` each, and every how many epochs it also runs during training (``every``; 0:
    only at the end)."""

    x: torch.Tensor
    y: torch.Tensor
    attacks: tuple[str, ...]
    eps: float
    steps: int
    every: int = 0

    def run(self, model: nn.Module) -> dict[str, Any]:
        """:func:`evaluate_test` of ``model`` (drawing on torch's random generator)."""
        return evaluate_test(model, self.x, self.y, self.attacks, self.eps, steps=self.steps)

    def run_seeded(self, model: nn.Module) -> dict[str, Any]:
        """:meth:`run` from a fixed random state (as ``accelat eval``'s), so that the same
        weights get the same figures; torch's generators are left as they were."""
        device = self.x.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(0)
            return self.run(model)


def evaluate_test(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack_names: tuple[str, ...] | list[str],
    eps: float | list[float],
    *,
    steps: int = 20,
    progress: bool = False,
) -> dict[str, Any]:
    """The test evaluation: clean accuracy, each attack's robust accuracy per eps, and the
    worst case over attacks (:func:`accelat_train.adversarial.robust.evaluate`).

    ``{"clean_acc", "robust_acc" (first attack, first eps), "attacks": {name: {eps: acc}},
    "worst_case": {eps: acc}, "attack_seconds", "attack_details"}`` with eps keys as
    ``str(float)``.
    """
    eps_list = [float(e) for e in (eps if isinstance(eps, (list, tuple)) else [eps])]
    return robust.evaluate(
        model, x, y, list(attack_names), eps_list, steps=steps, progress=progress
    )
