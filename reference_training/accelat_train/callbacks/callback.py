"""What the training loop announces, and the listeners that hear it.

The loop (:mod:`accelat_train.training.loop`) is the algorithm; everything else listens, as
with Keras' and Lightning's callbacks (the same hook names, a handful of them): progress and
logging, checkpoints and ``best.pt``, the overfitting rollback, weight averaging, and a
user's own. Each hook receives the :class:`~accelat_train.training.loop.Trainer` (its config,
model, optimizer, schedule and counters) and what the event carries:

=========================================  =================================================
``on_train_begin(trainer)``                the run starts (fresh, or resumed at ``epoch``)
``on_epoch_begin(trainer, epoch)``         an epoch's training starts
``on_train_batch_begin(trainer, batch)``   a minibatch (1-based within the epoch) is next
``on_optimizer_step(trainer)``             after each weight update (a Free AT replay is one)
``on_train_batch_end(trainer, batch, stats)``  a minibatch is done: ``BatchStats``
``on_epoch_end(trainer, record)``          the epoch's :class:`EpochRecord` is complete
``on_train_end(trainer, result)``          the final test evaluation (``result``) is done
=========================================  =================================================

A listener may end the run with ``trainer.stop(reason)``. A listener with state to resume
defines ``state_dict()`` / ``load_state_dict()`` (plain containers and tensors); the
checkpoint keeps it under the listener's ``state_key`` (its class name by default).

>>> class Lrs(Callback):
...     def __init__(self):
...         self.lrs = []
...     def on_epoch_end(self, trainer, record):
...         self.lrs.append(record.lr)
>>> train(TrainConfig(...), callbacks=[Lrs()])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from accelat_train.adversarial.methods import BatchStats, PassCounter
    from accelat_train.callbacks.record import EpochRecord, RunState
    from accelat_train.config import TrainConfig
    from accelat_train.run_dir import RunDir
    from accelat_train.training.build import Setup
    from accelat_train.training.distributed import DistInfo
    from accelat_train.training.run_schedule import RunSchedule


class RunView(Protocol):
    """What a listener sees of the run (:class:`accelat_train.training.trainer.Trainer`)."""

    cfg: TrainConfig
    setup: Setup
    run_dir: RunDir
    info: DistInfo
    model: torch.nn.Module  # what trains (and is saved for resume)
    evaluated: torch.nn.Module  # what is evaluated: the model, or its average
    optimizer: torch.optim.Optimizer
    schedule: RunSchedule
    state: RunState
    events: Callbacks

    @property
    def is_main(self) -> bool: ...

    def stop(self, reason: str, message: str = "") -> None: ...

    def counting(self, model: torch.nn.Module | None = None) -> PassCounter: ...

    def checkpoint_state(self) -> dict[str, Any] | None: ...


class Callback:
    """A listener: override the hooks you need; each default does nothing."""

    def on_train_begin(self, trainer: RunView) -> None:
        """The run starts: fresh, or resumed after ``trainer.state.epoch`` epochs."""

    def on_epoch_begin(self, trainer: RunView, epoch: int) -> None:
        """Epoch ``epoch`` (1-based) starts training."""

    def on_train_batch_begin(self, trainer: RunView, batch: int) -> None:
        """Minibatch ``batch`` (1-based within the epoch) is next."""

    def on_optimizer_step(self, trainer: RunView) -> None:
        """A weight update was just made (Free AT makes ``replays`` per minibatch)."""

    def on_train_batch_end(self, trainer: RunView, batch: int, stats: BatchStats) -> None:
        """Minibatch ``batch`` is done; ``stats`` holds its loss, accuracy and passes."""

    def on_epoch_end(self, trainer: RunView, record: EpochRecord) -> None:
        """The epoch is measured and the policy has decided; ``record`` is complete."""

    def on_train_end(self, trainer: RunView, result: dict[str, Any]) -> None:
        """The final test evaluation is done (``result``: the last and the best weights)."""

    @property
    def state_key(self) -> str:
        """Where the checkpoint keeps this listener's ``state_dict()``."""
        return type(self).__name__


class Callbacks(Callback):
    """Listeners called in order, each hook on each; their states keyed by ``state_key``."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be accelat_train Callback objects, got {cb!r}")
        keys = [cb.state_key for cb in self.callbacks if hasattr(cb, "state_dict")]
        if len(keys) != len(set(keys)):
            raise ValueError(f"listeners with state need distinct state_key values, got {keys}")

    def on_train_begin(self, trainer: RunView) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(trainer)

    def on_epoch_begin(self, trainer: RunView, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(trainer, epoch)

    def on_train_batch_begin(self, trainer: RunView, batch: int) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_begin(trainer, batch)

    def on_optimizer_step(self, trainer: RunView) -> None:
        for cb in self.callbacks:
            cb.on_optimizer_step(trainer)

    def on_train_batch_end(self, trainer: RunView, batch: int, stats: BatchStats) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_end(trainer, batch, stats)

    def on_epoch_end(self, trainer: RunView, record: EpochRecord) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(trainer, record)

    def on_train_end(self, trainer: RunView, result: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_train_end(trainer, result)

    def state_dict(self) -> dict[str, Any]:
        """Every stateful listener's ``state_dict()`` by its ``state_key``."""
        return {cb.state_key: cb.state_dict() for cb in self.callbacks if hasattr(cb, "state_dict")}

    def load_state_dict(self, states: dict[str, Any]) -> None:
        """Give each stateful listener its saved state (a listener new to the run keeps its own)."""
        for cb in self.callbacks:
            if hasattr(cb, "state_dict") and cb.state_key in states:
                cb.load_state_dict(states[cb.state_key])  # type: ignore[attr-defined]
