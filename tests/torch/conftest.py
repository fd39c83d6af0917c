"""Shared fixtures for the torch adapter tests: one CPU thread, small optimizers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

torch.set_num_threads(1)


def _make_sgd(lrs: tuple[float, ...] = (0.1,), momentum: float = 0.9) -> torch.optim.SGD:
    groups = [{"params": [torch.zeros(3, requires_grad=True)], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], momentum=momentum)


@pytest.fixture
def make_sgd() -> Callable[..., torch.optim.SGD]:
    """``make_sgd(lrs=(0.1,), momentum=0.9)``: SGD with one param group per lr."""
    return _make_sgd
