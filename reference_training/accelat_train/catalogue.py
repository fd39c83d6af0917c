"""The policy catalogue: what each ``--policy`` name means, in one entry per policy.

An entry says how the policy is built from ``lr_max`` (the lr finder's suggestion when
``lr_max="auto"``) and the run's budget, whether it reads the monitored metric (then it
steps once per epoch with it; otherwise once per weight update), which optimizer it implies,
whether its shape depends on the budget, and its one-line help. The config, the command
line, the comparison and the reports read these entries; adding a policy is adding one.

``T`` is the run's weight updates (``epochs x updates per epoch``); ``w`` the window
(``--window``, default :func:`default_window`); ``lr_min`` the rule's floor (``--lr-min``).
The rule's defaults have one source, the core's :data:`accelat_core.policies.accelat.ANYTIME`
(the rule :meth:`AccelAT.anytime` builds, chosen by ablation on development seeds,
docs/benchmarks.md); ``Rule`` and ``TrainConfig`` read it. The released AccelAT code's rule
(``min_gain=0.005``, ``window=cooldown=5`` epochs, ``lr_min = lr_max / 1000``,
``factor=0.8``, for runs of 50-500 epochs) is ``--policy accelat-paper``
(:meth:`AccelAT.paper`); add ``--monitor robust_val_acc --ema-epochs 0`` for the paper's
whole setup.

>>> step = CATALOGUE["step"].build(lr_max=0.2, total_steps=100, epochs=10)
>>> [round(step.at(t).lr, 12) for t in (49, 50, 75)]
[0.2, 0.02, 0.002]
>>> CATALOGUE["accelat"].reads_metric, CATALOGUE["schedulefree"].optimizer
(True, 'schedulefree')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accelat_core import (
    AccelAT,
    Constant,
    Cyclical,
    ExponentialDecay,
    LinearDecay,
    OneCycle,
    Plateau,
    Policy,
    StepDecay,
    WarmRestarts,
)
from accelat_core.policies.accelat import ANYTIME
from accelat_train.parsers import lr_min_value

#: Where the decaying fixed shapes end: lr_max / 1000.
FLOOR_RATIO = 1e-3
#: The lr the LR-free optimizers are run at (their own default).
LR_FREE_LR = 1.0


def default_window(epochs: int) -> int:
    """AccelAT window (and plateau patience) for a budget: ``clamp(epochs // 10, 1, 2)``: a
    tenth of a short budget, and 2 epochs for any longer one (or none: ``--epochs`` huge), so
    that the rule reacts, and stops, where the accuracy plateaus rather than where the budget
    ends."""
    return max(1, min(ANYTIME.window, epochs // 10))


@dataclass(frozen=True)
class Rule:
    """The knobs of the metric-driven rules (AccelAT, plateau), defaulting to the core's
    :data:`~accelat_core.policies.accelat.ANYTIME` rule."""

    window: int | None = None  # None: default_window(epochs)
    min_gain: float = ANYTIME.min_gain
    factor: float = ANYTIME.factor
    lr_min: float | str | None = None  # a value, or "lr_max/N"; None: lr_max * ANYTIME.min_lr_ratio
    z: float = ANYTIME.z
    samples: int | None = None
    stop_patience: int = ANYTIME.stop_patience or 0  # 0: never stop
    anneal: float | None = ANYTIME.anneal  # where it would stop, anneal over this fraction
    anneal_shape: str = ANYTIME.anneal_shape


@dataclass(frozen=True)
class Entry:
    """One policy: its name, help line and how it is built and stepped."""

    name: str
    help: str
    make: Callable[[float, int, int, Rule], Policy]
    reads_metric: bool = False  # steps once per epoch with the monitored metric
    optimizer: str = "sgd"  # the optimizer it trains with unless --optimizer says otherwise
    budget_shaped: bool = True  # its shape is scaled to the run's budget

    def build(
        self, lr_max: float, *, total_steps: int, epochs: int, rule: Rule | None = None
    ) -> Policy:
        """The policy for a run of ``epochs`` epochs and ``total_steps`` weight updates."""
        return self.make(lr_max, max(1, total_steps), epochs, rule or Rule())


def _accelat(lr_max: float, _total: int, epochs: int, rule: Rule) -> Policy:
    noisy = rule.z and rule.samples
    noise: dict[str, Any] = {"samples": rule.samples, "z": rule.z} if noisy else {}
    anneal: dict[str, Any] = {}
    if rule.anneal is not None and rule.stop_patience:  # it starts where the rule would stop,
        # and ends by the budget if the rule has not ended it first
        anneal = {"anneal": rule.anneal, "anneal_shape": rule.anneal_shape, "budget": epochs}
    return AccelAT(
        lr_max,
        _floor(lr_max, rule),
        min_gain=rule.min_gain,
        factor=rule.factor,
        window=rule.window or default_window(epochs),
        stop_patience=rule.stop_patience or None,
        **noise,
        **anneal,
    )


def _plateau(lr_max: float, _total: int, epochs: int, rule: Rule) -> Policy:
    return Plateau(
        lr_max,
        mode="max",
        factor=rule.factor,
        patience=rule.window or default_window(epochs),
        threshold=rule.min_gain,
        threshold_mode="abs",
        min_lr=_floor(lr_max, rule),
    )


def _floor(lr_max: float, rule: Rule) -> float:
    """The rule's lowest lr: ``lr_min`` (``lr_max/N`` resolved against ``lr_max``), at most
    ``lr_max``."""
    if rule.lr_min is None:
        return lr_max * ANYTIME.min_lr_ratio
    return min(lr_min_value(rule.lr_min, lr_max), lr_max)


def _restarts(lr_max: float, total: int, _epochs: int, _rule: Rule) -> Policy:
    period = max(1.0, total / 7)  # three doubling cycles; a restart lasts at least one step
    return WarmRestarts(lr_max, period=period, lr_min=lr_max * FLOOR_RATIO, period_mult=2.0)


_ENTRIES = (
    Entry(
        "constant", "lr_max throughout", lambda lr, t, e, r: Constant(lr), budget_shaped=False
    ),
    Entry(
        "step", "Free AT's schedule: lr_max, /10 at 50 % and /100 at 75 % of the run",
        lambda lr, t, e, r: StepDecay.free_at(lr, max(4, t)),
    ),
    Entry(
        "linear", "linear from lr_max to lr_max/1000 over the run",
        lambda lr, t, e, r: LinearDecay(lr, lr * FLOOR_RATIO, t),
    ),
    Entry(
        "exponential", "exponential from lr_max to lr_max/1000 over the run",
        lambda lr, t, e, r: ExponentialDecay(lr, rate=FLOOR_RATIO, decay_steps=t),
    ),
    Entry(
        "onecycle", "the paper's one-cycle preset (inverse momentum) over the run",
        lambda lr, t, e, r: OneCycle.paper(lr, t),
    ),
    Entry(
        "cyclical", "two triangles between lr_max/10 and lr_max",
        lambda lr, t, e, r: Cyclical(lr / 10, lr, step_size_up=max(1, t // 4)),
    ),
    Entry("restarts", "cosine warm restarts: three doubling cycles to lr_max/1000", _restarts),
    Entry(
        "accelat", "AccelAT: cut the lr by --accelat-factor when the monitor gains too little",
        _accelat, reads_metric=True, budget_shaped=False,
    ),
    Entry(
        "accelat-paper", "AccelAT as the paper's released code: window 5, --accelat-factor 0.8, "
        "floor lr_max/1000, no stop, no anneal (AccelAT.paper)",
        lambda lr, t, e, r: AccelAT.paper(lr), reads_metric=True, budget_shaped=False,
    ),
    Entry(
        "plateau", "torch's ReduceLROnPlateau with AccelAT's factor, threshold and floor",
        _plateau, reads_metric=True, budget_shaped=False,
    ),
    Entry(
        "schedulefree", "schedule-free SGD (Defazio et al. 2024) at lr 1, no schedule",
        lambda lr, t, e, r: Constant(lr), optimizer="schedulefree", budget_shaped=False,
    ),
    Entry(
        "prodigy", "Prodigy (Mishchenko and Defazio 2024) at lr 1, no schedule",
        lambda lr, t, e, r: Constant(lr), optimizer="prodigy", budget_shaped=False,
    ),
    Entry(
        "prodigy-cosine", "Prodigy with lr 1 cosine-annealed to 0 over the run (its README)",
        lambda lr, t, e, r: WarmRestarts(lr, period=t, lr_min=0.0),
        optimizer="prodigy",
    ),
)  # fmt: skip

#: Every policy by name, in the order ``--help`` lists them.
CATALOGUE: dict[str, Entry] = {entry.name: entry for entry in _ENTRIES}
POLICY_NAMES = tuple(CATALOGUE)

#: The arm ``accelat compare`` measures the others against: Free AT's recipe, its step
#: schedule without weight averaging.
BASELINE = "step:ema_epochs=0"
