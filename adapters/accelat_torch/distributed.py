"""Metric averaging over ``torch.distributed`` ranks.

Every rank must take the same AccelAT decision, or the ranks' learning rates drift
apart; averaging the metric before the policy sees it guarantees that.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist


def should_sync(sync_metric: Literal["auto"] | bool) -> bool:
    """Whether to average a metric over ranks now.

    ``"auto"``: when a process group with more than one rank is initialised.
    ``True``: always; raises ``RuntimeError`` if no process group is initialised.
    ``False``: never.
    """
    if sync_metric is False:
        return False
    ready = dist.is_available() and dist.is_initialized()
    if sync_metric is True and not ready:
        raise RuntimeError(
            "sync_metric=True needs an initialised torch.distributed process group "
            "(call torch.distributed.init_process_group first, or pass sync_metric='auto')"
        )
    return ready and (sync_metric is True or dist.get_world_size() > 1)


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over all ranks of the default group (float64 all-reduce).

    With two ranks passing 0.5 and 0.6, both get ``(0.5 + 0.6) / 2``.
    """
    buf = torch.tensor([value], dtype=torch.float64, device=comm_device())
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.item() / dist.get_world_size()


def comm_device() -> torch.device:
    """Where the default group's collectives take their tensors: the current CUDA device
    for NCCL (it reduces only CUDA tensors), the CPU for every other backend (gloo)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
