"""The listeners every run has, in the order they hear each event
(:mod:`accelat_train.callbacks` holds them):

- :class:`~accelat_train.callbacks.averaging.Averaging` (``--ema-epochs``): the weight
  average, updated after every optimizer step; the model the run evaluates;
- :class:`~accelat_train.callbacks.rollback.OverfitRollback` (``--co-check``): it may roll
  back and stop at an epoch's end;
- the caller's ``callbacks``, in their order;
- :class:`~accelat_train.callbacks.early_stopping.EarlyStopping` (``--early-stop``): it may
  stop the run and restore ``best.pt`` at an epoch's end (after the caller's listeners, so
  that one of them may set the metric it reads);
- :class:`~accelat_train.callbacks.progress.Progress`: bars and one line per epoch;
- :class:`~accelat_train.callbacks.metrics_log.MetricsLog` and
  :class:`~accelat_train.callbacks.checkpoint_saver.CheckpointSaver`: ``metrics.jsonl``,
  ``best.pt``, ``checkpoint.pt``: last at an epoch's end, so that whatever a listener did
  to the epoch (a stop, its own state) is in the checkpoint;
- :class:`~accelat_train.callbacks.run_report.RunReport`: ``report.json`` and ``curves.png``
  after the final evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from accelat_train.callbacks.callback import Callback, Callbacks
from accelat_train.callbacks.checkpoint_saver import CheckpointSaver
from accelat_train.callbacks.metrics_log import MetricsLog
from accelat_train.callbacks.progress import Progress
from accelat_train.callbacks.run_report import RunReport

if TYPE_CHECKING:
    from accelat_train.training.plan import RunPlan


def listeners(plan: RunPlan, callbacks: Sequence[Callback], *, quiet: bool) -> Callbacks:
    """The listeners of ``plan``'s run, built in and the caller's, in order (the module
    docstring)."""
    first = [c for c in (plan.averaging, plan.rollback) if c is not None]
    stopping = [] if plan.early_stopping is None else [plan.early_stopping]
    last = [Progress(quiet=quiet), MetricsLog(), CheckpointSaver(), RunReport()]
    return Callbacks([*first, *callbacks, *stopping, *last])
