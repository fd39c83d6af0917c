"""The listener that writes a run's report once its final evaluation is done:
``report.json`` and ``curves.png`` (rank 0), by
:func:`accelat_train.reporting.report.write_run_report`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accelat_train.callbacks.callback import Callback
from accelat_train.reporting.report import write_run_report

if TYPE_CHECKING:
    from accelat_train.callbacks.callback import RunView


class RunReport(Callback):
    """Writes ``report.json`` and ``curves.png`` once the final evaluation is done (rank 0)."""

    def on_train_end(self, trainer: RunView, result: dict[str, Any]) -> None:
        if trainer.is_main:
            write_run_report(trainer.run_dir.path, result)
