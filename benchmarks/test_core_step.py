"""Cost of one ``step()`` for every core policy, next to torch's own schedulers.

Run: ``pytest benchmarks/test_core_step.py --benchmark-only --benchmark-columns=median,ops``.
Target: every core policy's median ``step()`` <= 1.0 us. Each instance has a long horizon so
the measurement stays on the live formula rather than the held value past the horizon.
AccelAT is fed a constant metric with ``min_gain=-1``: a full decision (gain computed, no
cut) at every call, so its decisions list does not grow over millions of rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from accelat_core import (
    AccelAT,
    Constant,
    Cyclical,
    ExponentialDecay,
    Hyper,
    LinearDecay,
    OneCycle,
    Policy,
    RangeTest,
    StepDecay,
    WarmRestarts,
    join,
    warmup,
)

LONG = 10**9


def accelat(gain: str) -> AccelAT:
    return AccelAT(0.1, 1e-4, min_gain=-1.0, factor=0.5, window=5, cooldown=0, gain=gain)


CORE: dict[str, callable] = {
    "Constant": lambda: Constant(0.1),
    "StepDecay": lambda: StepDecay(0.1, milestones=[LONG // 2, LONG], factor=0.1),
    "LinearDecay": lambda: LinearDecay(0.1, 1e-4, total_steps=LONG),
    "ExponentialDecay": lambda: ExponentialDecay(0.1, rate=0.999999, decay_steps=1),
    "OneCycle": lambda: OneCycle(0.1, total_steps=LONG),
    "OneCycle.paper": lambda: OneCycle.paper(0.1, total_steps=LONG),
    "Cyclical": lambda: Cyclical(1e-3, 0.1, step_size_up=2000),
    "WarmRestarts": lambda: WarmRestarts(0.1, period=2000, lr_min=1e-4, period_mult=2.0),
    "RangeTest": lambda: RangeTest(1e-7, 10.0, num_steps=LONG),
    "AccelAT(endpoint)": lambda: accelat("endpoint"),
    "AccelAT(windows)": lambda: accelat("windows"),
    "AccelAT(slope)": lambda: accelat("slope"),
    "Warmup(OneCycle)": lambda: warmup(OneCycle(0.1, total_steps=LONG), steps=0),
    "Warmup(AccelAT)": lambda: warmup(accelat("endpoint"), steps=0),
    "Join(OneCycle, Cyclical)": lambda: join(
        [(OneCycle(0.1, total_steps=100), 100), (Cyclical(1e-3, 0.1, step_size_up=2000), None)]
    ),
}


def warmed(policy: Policy) -> Policy:
    """Past any start-up branch (warmups, the first Join phase, AccelAT's first window)."""
    for _ in range(200):
        policy.step(0.5)
    return policy


@pytest.mark.benchmark(group="core step()")
@pytest.mark.parametrize("name", CORE)
def test_core_policy_step(benchmark, name) -> None:
    policy = warmed(CORE[name]())
    h = benchmark(policy.step, 0.5)
    assert 0 < h.lr <= 10.0


# -- torch's schedulers, the reference --------------------------------------------------


def torch_schedulers() -> dict[str, callable]:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from torch.optim import SGD
    from torch.optim import lr_scheduler as S

    def sgd() -> SGD:
        return SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)

    return {
        "torch OneCycleLR": lambda: S.OneCycleLR(sgd(), max_lr=0.1, total_steps=LONG),
        "torch CyclicLR": lambda: S.CyclicLR(sgd(), 1e-3, 0.1, step_size_up=2000),
        "torch CosineAnnealingWarmRestarts": lambda: S.CosineAnnealingWarmRestarts(
            sgd(), T_0=2000, T_mult=2, eta_min=1e-4
        ),
        "torch ReduceLROnPlateau": lambda: S.ReduceLROnPlateau(sgd(), patience=5),
    }


# The optimizer never steps here: only the schedulers' own cost is measured.
quiet_torch = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
TORCH = ["torch OneCycleLR", "torch CyclicLR", "torch CosineAnnealingWarmRestarts"]


@quiet_torch
@pytest.mark.benchmark(group="core step()")
@pytest.mark.parametrize("name", TORCH)
def test_torch_scheduler_step(benchmark, name) -> None:
    scheduler = torch_schedulers()[name]()
    for _ in range(200):
        scheduler.step()
    benchmark(scheduler.step)


@quiet_torch
@pytest.mark.benchmark(group="core step()")
def test_torch_reduce_lr_on_plateau_step(benchmark) -> None:
    scheduler = torch_schedulers()["torch ReduceLROnPlateau"]()
    for _ in range(200):
        scheduler.step(0.5)
    benchmark(scheduler.step, 0.5)


# -- why Hyper is a NamedTuple ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HyperDataclass:
    lr: float
    momentum: float | None = None


@pytest.mark.benchmark(group="Hyper creation")
@pytest.mark.parametrize(
    "kind", [Hyper, HyperDataclass], ids=["NamedTuple", "frozen slots dataclass"]
)
def test_hyper_creation(benchmark, kind) -> None:
    h = benchmark(kind, 0.1, 0.9)
    assert h.lr == 0.1
