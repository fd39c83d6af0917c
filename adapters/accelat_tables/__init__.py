"""Deprecated: ``accelat_tables`` moved into the core as :mod:`accelat_core.tables`.

This shim re-exports the same objects (``MAX_STEPS`` is ``MAX_TABLE_STEPS`` there) and
warns on import; import from ``accelat_core.tables`` instead.
"""

import warnings

from accelat_core.tables import MAX_TABLE_STEPS as MAX_STEPS
from accelat_core.tables import Table, tabulate

warnings.warn(
    "accelat_tables is deprecated: import Table and tabulate from accelat_core.tables",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["MAX_STEPS", "Table", "tabulate"]
