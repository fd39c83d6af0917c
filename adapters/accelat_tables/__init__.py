"""accelat_tables: a fixed-shape policy tabulated step by step, for in-graph schedules.

Standard library only, so every adapter can import it without pulling another
framework: :class:`accelat_keras.PolicySchedule` and :func:`accelat_optax.schedule` /
:func:`accelat_optax.momentum_schedule` look their values up in the same table.

>>> from accelat_core import Constant
>>> from accelat_tables import tabulate
>>> tabulate(Constant(0.1), owner="PolicySchedule").lrs
[0.1]
"""

from accelat_tables.table import MAX_STEPS, Table, tabulate

__all__ = ["MAX_STEPS", "Table", "tabulate"]
