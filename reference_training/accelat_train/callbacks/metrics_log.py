"""The listener that writes ``metrics.jsonl``: one line per epoch, the epoch's
:class:`~accelat_train.callbacks.record.EpochRecord` (rank 0).

Each line is appended durably and the file's new length kept in the run's counters
(``metrics_bytes``), which the next checkpoint saves: a resumed run cuts the lines written
after its checkpoint, so the file never holds an epoch twice.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from accelat_train.callbacks.callback import Callback

if TYPE_CHECKING:
    from accelat_train.callbacks.callback import RunView
    from accelat_train.callbacks.record import EpochRecord


class MetricsLog(Callback):
    """Appends each epoch's record to ``metrics.jsonl``."""

    def on_epoch_end(self, trainer: RunView, record: EpochRecord) -> None:
        if trainer.is_main:
            line = json.dumps(record.to_json(), allow_nan=False)
            trainer.state.metrics_bytes = trainer.run_dir.append_metrics(line)
