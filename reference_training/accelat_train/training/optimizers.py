"""The optimizers a run can train with (their records: :data:`accelat_train.registry.OPTIMIZERS`):
SGD, and the LR-free peers a user would pick instead of an lr schedule (``--optimizer``, or the
``schedulefree`` / ``prodigy`` policies of the catalogue, which imply them).

- ``schedulefree``: ``schedulefree.SGDScheduleFree`` (Defazio et al. 2024) at its defaults
  (lr 1.0, momentum 0.9) with a warmup of ``--schedulefree-warmup`` (5 %) of the updates, as
  its README recommends, and the run's weight decay. Its README's rules are kept: the
  optimizer is in ``train()`` mode only while it trains; attacks, the monitor, evaluations and
  checkpoints see the averaged weights (``eval()``), and BatchNorm statistics are recomputed
  at those weights (``--bn-refresh`` training batches, 50, forward only) before each of them.
- ``prodigy``: ``prodigyopt.Prodigy`` at lr 1 with ``safeguard_warmup=True`` and
  ``use_bias_correction=True`` (its README's settings for unstable starts) and the run's
  weight decay (decoupled).

Neither reads the lr finder (``--lr-max auto`` means their own lr 1.0), so none of its
passes are charged to them; the schedule writes their lr (momentum is not driven). Both come
from the ``[peers]`` extra.

>>> sgd([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9, weight_decay=0.0,
...     nesterov=False).defaults["momentum"]
0.9
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from accelat_train.extras import needs_extra


def sgd(
    params: Iterable[Any], *, lr: float, momentum: float, weight_decay: float, nesterov: bool,
    **_: Any,
) -> torch.optim.Optimizer:  # fmt: skip
    """``torch.optim.SGD``: the optimizer of the lr schedules."""
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
    )


def schedule_free(
    params: Iterable[Any], *, lr: float, momentum: float, weight_decay: float,
    total_updates: int, warmup: float, **_: Any,
) -> torch.optim.Optimizer:  # fmt: skip
    """``schedulefree.SGDScheduleFree``, warmed up over ``warmup`` of the run's updates."""
    with needs_extra("the optimizer 'schedulefree'"):
        from schedulefree import SGDScheduleFree

    return SGDScheduleFree(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay,
        warmup_steps=int(warmup * total_updates),
    )  # fmt: skip


def prodigy(
    params: Iterable[Any], *, lr: float, weight_decay: float, **_: Any
) -> torch.optim.Optimizer:
    """``prodigyopt.Prodigy`` with its README's settings for unstable starts."""
    with needs_extra("the optimizer 'prodigy'"):
        from prodigyopt import Prodigy

    return Prodigy(
        params, lr=lr, weight_decay=weight_decay, safeguard_warmup=True,
        use_bias_correction=True,
    )  # fmt: skip


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    return "train_mode" in optimizer.param_groups[0]


def train_mode(optimizer: torch.optim.Optimizer) -> None:
    """Before weight updates: a schedule-free optimizer's ``train()`` (others: nothing)."""
    if is_schedule_free(optimizer):
        optimizer.train()  # type: ignore[attr-defined]  # schedulefree's, not Optimizer's


def eval_mode(
    optimizer: torch.optim.Optimizer, model: nn.Module, batches: Iterable[Any], refresh: int
) -> None:
    """Before attacks, evaluations and checkpoints: a schedule-free optimizer's ``eval()``,
    then BatchNorm statistics recomputed at the averaged weights from ``refresh`` of
    ``batches``."""
    if not is_schedule_free(optimizer) or not optimizer.param_groups[0]["train_mode"]:
        return
    optimizer.eval()  # type: ignore[attr-defined]  # schedulefree's, not Optimizer's
    if not refresh or not any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()
    ):
        return
    was_training = model.training
    model.train()
    with torch.no_grad():
        for _, (x, _y) in zip(range(refresh), batches, strict=False):
            model(x)
    model.train(was_training)
