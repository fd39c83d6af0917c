"""accelat_core: learning-rate and momentum policies for (adversarial) training.

Pure Python, standard library only. See README.md for the AccelAT semantics.
"""

from accelat_core.compose import (
    JoinSchedule,
    MetricJoin,
    MetricWarmup,
    WarmupSchedule,
    join,
    warmup,
)
from accelat_core.config import from_config, policy_names
from accelat_core.decisions import Decision
from accelat_core.finder import (
    LRFindResult,
    RangeTest,
    RangeTestLog,
    Suggestion,
    curve_problem,
    cycle_batches,
    suggest,
)
from accelat_core.hyper import Hyper
from accelat_core.policies.accelat import AccelAT
from accelat_core.policies.accelat_state import AccelATState
from accelat_core.policies.anneal import Anneal
from accelat_core.policies.constant import Constant
from accelat_core.policies.cyclical import Cyclical
from accelat_core.policies.exponential_decay import ExponentialDecay
from accelat_core.policies.linear_decay import LinearDecay
from accelat_core.policies.one_cycle import OneCycle
from accelat_core.policies.plateau import Plateau, PlateauState
from accelat_core.policies.step_decay import StepDecay
from accelat_core.policies.warm_restarts import WarmRestarts
from accelat_core.policy import Policy, Schedule

# The distribution's one version number: pyproject.toml reads it, the adapters re-export it.
__version__ = "0.2.0.dev0"

#: Old names that still work, with a DeprecationWarning naming the new one, until 0.4.
_DEPRECATED = {"Warmup": ("warmup", warmup), "Join": ("join", join)}


def __getattr__(name: str) -> object:
    if name in _DEPRECATED:
        import warnings

        new, function = _DEPRECATED[name]
        warnings.warn(
            f"accelat_core.{name} is deprecated since 0.2 and goes in 0.4: use "
            f"accelat_core.{new}(), which takes the same arguments",
            DeprecationWarning,
            stacklevel=2,
        )
        return function
    raise AttributeError(f"module 'accelat_core' has no attribute {name!r}")


__all__ = [
    "AccelAT",
    "AccelATState",
    "Anneal",
    "Constant",
    "Cyclical",
    "Decision",
    "ExponentialDecay",
    "Hyper",
    "JoinSchedule",
    "LRFindResult",
    "LinearDecay",
    "MetricJoin",
    "MetricWarmup",
    "OneCycle",
    "Plateau",
    "PlateauState",
    "Policy",
    "RangeTest",
    "RangeTestLog",
    "Schedule",
    "StepDecay",
    "Suggestion",
    "WarmRestarts",
    "WarmupSchedule",
    "curve_problem",
    "cycle_batches",
    "from_config",
    "join",
    "policy_names",
    "suggest",
    "warmup",
]
