"""accelat_core: learning-rate and momentum policies for (adversarial) training.

Pure Python, standard library only. See README.md for the AccelAT semantics.
"""

from accelat_core.config import from_config, policy_names
from accelat_core.hyper import Hyper
from accelat_core.policies.constant import Constant
from accelat_core.policy import Policy, Schedule

# fixed-shape policies (owned by the fixed-shape work)
# metric-driven policies, composition and finder (owned by the metric work)

__all__ = [
    "Constant",
    "Hyper",
    "Policy",
    "Schedule",
    "from_config",
    "policy_names",
]
