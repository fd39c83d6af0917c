"""LR-free peers a user would pick instead of an lr schedule, as ``--policy`` names.

- ``schedulefree``: ``schedulefree.SGDScheduleFree`` (Defazio et al. 2024) at its defaults
  (lr 1.0, momentum 0.9) with a warmup of :data:`WARMUP_FRACTION` of the updates, as its
  README recommends, and the run's weight decay. Its README's rules are kept: the optimizer
  is in ``train()`` mode only while it trains; attacks, the monitor, evaluations and
  checkpoints see the averaged weights (``eval()``), and BatchNorm statistics are recomputed
  at those weights (:data:`BN_BATCHES` training batches, forward only) before each of them.
- ``prodigy``: ``prodigyopt.Prodigy`` at lr 1 with ``safeguard_warmup=True`` and
  ``use_bias_correction=True`` (its README's settings for unstable starts) and the run's
  weight decay (decoupled).

Neither reads the lr finder, so none of its passes are charged to them; both hold a
constant lr of 1.0 (the trainer's scheduler writes it, momentum is not driven). Both come
from the ``[peers]`` extra.

>>> PEERS
('schedulefree', 'prodigy', 'prodigy-cosine')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

PEERS = ("schedulefree", "prodigy", "prodigy-cosine")
#: The optimizer each peer policy trains with.
PEER_OPTIMIZER = {"schedulefree": "schedulefree", "prodigy": "prodigy", "prodigy-cosine": "prodigy"}
PEER_LR = 1.0
WARMUP_FRACTION = 0.05
BN_BATCHES = 50


def optimizer_name(cfg: Any) -> str:
    """The optimizer a run trains with: ``cfg.optimizer``, else its peer policy's, else SGD."""
    if cfg.optimizer is not None:
        return str(cfg.optimizer)
    if cfg.policy_config is None and cfg.policy in PEERS:
        return PEER_OPTIMIZER[cfg.policy]
    return "sgd"


def make_optimizer(
    name: str, params: Iterable[Any], *, momentum: float, weight_decay: float, total_updates: int
) -> torch.optim.Optimizer:
    """The peer's optimizer (``name`` in :data:`PEERS`), built as its README says."""
    try:
        if name == "schedulefree":
            from schedulefree import SGDScheduleFree

            return SGDScheduleFree(
                params, lr=PEER_LR, momentum=momentum, weight_decay=weight_decay,
                warmup_steps=int(WARMUP_FRACTION * total_updates),
            )  # fmt: skip
        from prodigyopt import Prodigy

        return Prodigy(
            params, lr=PEER_LR, weight_decay=weight_decay, safeguard_warmup=True,
            use_bias_correction=True,
        )  # fmt: skip
    except ImportError as exc:
        raise ValueError(
            f"policy {name!r} needs the [peers] extra (pip install 'accelat[peers]'): {exc}"
        ) from None


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    return "train_mode" in optimizer.param_groups[0]


def train_mode(optimizer: torch.optim.Optimizer) -> None:
    """Before weight updates: a schedule-free optimizer's ``train()`` (others: nothing)."""
    if is_schedule_free(optimizer):
        optimizer.train()


def eval_mode(optimizer: torch.optim.Optimizer, model: nn.Module, batches: Iterable[Any]) -> None:
    """Before attacks, evaluations and checkpoints: a schedule-free optimizer's ``eval()``,
    then BatchNorm statistics recomputed at the averaged weights from ``batches``."""
    if not is_schedule_free(optimizer) or not optimizer.param_groups[0]["train_mode"]:
        return
    optimizer.eval()
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    was_training = model.training
    model.train()
    with torch.no_grad():
        for _, (x, _y) in zip(range(BN_BATCHES), batches, strict=False):
            model(x)
    model.train(was_training)
