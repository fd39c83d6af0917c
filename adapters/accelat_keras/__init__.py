"""accelat_keras: accelat_core policies for Keras 3 (TensorFlow, torch and JAX backends).

>>> from accelat_keras import PolicyCallback, PolicySchedule, SGD, lr_find
"""

from accelat_core import __version__ as __version__
from accelat_keras.callback import PolicyCallback
from accelat_keras.lr_find import LRFindResult, lr_find
from accelat_keras.optimizers import SGD, Adam, AdamW, VariableMomentum
from accelat_keras.schedule import PolicySchedule

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "LRFindResult",
    "PolicyCallback",
    "PolicySchedule",
    "VariableMomentum",
    "lr_find",
]
