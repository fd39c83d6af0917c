"""The lr range test on the run's own adversarial loss.

The loss of a batch is the cross-entropy on adversarial examples of the run's method:
FGSM-RS for free / fgsm-rs (Free AT's replayed perturbation has no per-batch form; FGSM-RS
is the one-step attack of the same strength), PGD-k for pgd and the Foolbox methods, clean
images for natural.

>>> result = find_lr(prepare(TrainConfig(dataset="digits", eps=0.1)))  # doctest: +SKIP
>>> result.suggestion.lr_max  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from accelat_core.finder import LRFindResult
from accelat_torch import lr_find
from accelat_train import attacks
from accelat_train.loader import DeviceLoader
from accelat_train.setup import Setup, stream


def find_lr(setup: Setup, *, num_steps: int | None = None) -> LRFindResult:
    """The range test on ``setup``'s adversarial loss (model and optimizer restored).

    Every rank reads the whole training set in the same order; the caller broadcasts
    rank 0's suggestion.
    """
    cfg = setup.cfg
    generator = torch.Generator(device=setup.device).manual_seed(cfg.seed + 7919)

    def batch_loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        if cfg.method in ("free", "fgsm-rs"):
            x = attacks.fgsm_rs(m, x, y, cfg.eps, generator=generator)
        elif cfg.method != "natural":
            x = attacks.pgd(m, x, y, cfg.eps, cfg.pgd_steps, generator=generator)
        return F.cross_entropy(m(x), y)

    loader = DeviceLoader(
        setup.splits.train,
        cfg.batch_size,
        device=setup.device,
        augment=setup.splits.augment,
        seed=cfg.seed,
    )
    return lr_find(
        setup.model,
        setup.optimizer,
        None,
        _Reiterable(stream(loader, 0, None)),
        start_lr=1e-5,
        end_lr=10.0,
        num_steps=num_steps or cfg.lr_find_steps,
        batch_loss=batch_loss,
        method="paper",
    )


class _Reiterable:
    """An iterable over one shared (endless) iterator: lr_find may re-iterate it."""

    def __init__(self, it: Iterator[Any]) -> None:
        self._it = it

    def __iter__(self) -> Iterator[Any]:
        return self._it
