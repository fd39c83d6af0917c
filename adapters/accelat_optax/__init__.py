"""accelat_optax: accelat_core policies for optax (JAX) training loops.

A fixed shape becomes an ``optax.Schedule`` (:func:`schedule`, :func:`momentum_schedule`);
a metric-driven policy such as AccelAT is driven from the host by a :class:`Controller`,
which writes its values into the state of an ``optax.inject_hyperparams`` optimizer.

>>> from accelat_optax import Controller, momentum_schedule, schedule
"""

from accelat_core import __version__ as __version__
from accelat_optax.controller import Controller
from accelat_optax.schedule import momentum_schedule, schedule

__all__ = ["Controller", "momentum_schedule", "schedule"]
