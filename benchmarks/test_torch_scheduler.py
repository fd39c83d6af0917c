"""Cost of one ``PolicyScheduler.step()`` next to its torch built-in twin.

Run: ``pytest benchmarks/test_torch_scheduler.py --benchmark-only
--benchmark-columns=median,ops``.

Target: ours <= 0.5x the built-in's time per step. Both run on an SGD optimizer
(momentum 0.9) with two param groups. Each test benchmarks ours with pytest-benchmark,
then times ours and the twin alternately in the same process (best of several
``timeit`` rounds each, the least noisy estimate of the cost) and records both and their
ratio in ``extra_info`` (``--benchmark-json`` keeps it). AccelAT is fed a constant metric
with ``min_gain=-1``: a full decision, no cut, at every call; ``ReduceLROnPlateau`` gets
the same metric with an unreachable patience, so neither changes the lr.
"""

from __future__ import annotations

import timeit
import warnings
from collections.abc import Callable

import pytest
import torch
from torch.optim import lr_scheduler

from accelat_core import AccelAT, Cyclical, OneCycle, WarmRestarts
from accelat_torch import PlateauPolicyScheduler, PolicyScheduler

LONG = 10**9
TARGET = 0.5
METRIC = 0.5

Factory = Callable[[torch.optim.Optimizer], lr_scheduler.LRScheduler]

TWINS: dict[str, tuple[Factory, Factory, float | None]] = {
    "OneCycle": (
        lambda opt: PolicyScheduler(opt, OneCycle(0.1, total_steps=LONG)),
        lambda opt: lr_scheduler.OneCycleLR(opt, max_lr=[0.1, 0.01], total_steps=LONG),
        None,
    ),
    "Cyclical": (
        lambda opt: PolicyScheduler(opt, Cyclical(1e-3, 0.1, step_size_up=2000)),
        lambda opt: lr_scheduler.CyclicLR(opt, [1e-3, 1e-4], [0.1, 0.01], step_size_up=2000),
        None,
    ),
    "WarmRestarts": (
        lambda opt: PolicyScheduler(opt, WarmRestarts(0.1, period=2000, lr_min=1e-4)),
        lambda opt: lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=2000, eta_min=1e-4),
        None,
    ),
    "AccelAT": (
        lambda opt: PlateauPolicyScheduler(
            opt, AccelAT(0.1, 1e-4, min_gain=-1.0, factor=0.5, window=5, cooldown=0)
        ),
        lambda opt: lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=LONG),
        METRIC,
    ),
}


def two_group_sgd() -> torch.optim.SGD:
    groups = [
        {"params": [torch.zeros(4, requires_grad=True)]},
        {"params": [torch.zeros(4, requires_grad=True)], "lr": 0.01},
    ]
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


def stepper(make: Factory, metric: float | None) -> Callable[[], None]:
    scheduler = make(two_group_sgd())
    step = scheduler.step
    call = step if metric is None else (lambda: step(metric))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's step-order warning on its first steps
        for _ in range(100):
            call()
    return call


def per_step_seconds(call: Callable[[], None], number: int = 20_000) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number


@pytest.mark.parametrize("name", list(TWINS))
def test_policy_scheduler_step_vs_torch_twin(benchmark, name):
    ours_factory, twin_factory, metric = TWINS[name]
    ours = stepper(ours_factory, metric)
    benchmark.group = f"torch scheduler step: {name}"
    benchmark(ours)
    if benchmark.disabled:
        return
    twin = stepper(twin_factory, metric)
    ours_s, twin_s = [], []
    for _ in range(3):  # interleaved, so a noisy spell hits both
        ours_s.append(per_step_seconds(ours))
        twin_s.append(per_step_seconds(twin))
    ratio = min(ours_s) / min(twin_s)
    benchmark.extra_info.update(
        ours_us=min(ours_s) * 1e6, torch_us=min(twin_s) * 1e6, ratio_vs_torch=ratio
    )
    print(
        f"{name}: ours {min(ours_s) * 1e6:.2f} us, torch {min(twin_s) * 1e6:.2f} us, {ratio:.2f}x"
    )
    assert ratio <= TARGET, f"{name}: {ratio:.2f}x the built-in's time, target {TARGET}x"
