"""accelat_torch: accelat_core policies as PyTorch lr schedulers, and an lr range test.

>>> from accelat_torch import PlateauPolicyScheduler, PolicyScheduler, lr_find, scheduler_for
"""

from accelat_core import __version__ as __version__
from accelat_torch.lr_find import LRFindResult, lr_find
from accelat_torch.scheduler import PlateauPolicyScheduler, PolicyScheduler, scheduler_for

__all__ = [
    "LRFindResult",
    "PlateauPolicyScheduler",
    "PolicyScheduler",
    "lr_find",
    "scheduler_for",
]
