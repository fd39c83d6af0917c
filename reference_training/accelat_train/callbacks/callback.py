"""What the training loop announces, what a listener sees of the run, and the listeners' list.

The loop (:mod:`accelat_train.training.loop`) is the algorithm; everything else listens, as
with Keras' and Lightning's callbacks (the same hook names, a handful of them): progress and
logging, checkpoints and ``best.pt``, the overfitting rollback, weight averaging, early
stopping, and a user's own. Each hook receives the run's :class:`RunView` (as ``trainer``)
and what the event carries:

=========================================  =================================================
``on_train_begin(trainer)``                the run starts (fresh, or resumed at ``epoch``)
``on_epoch_begin(trainer, epoch)``         an epoch's training starts
``on_train_batch_begin(trainer, batch)``   a minibatch (1-based within the epoch) is next
``on_optimizer_step(trainer)``             after each weight update (a Free AT replay is one)
``on_train_batch_end(trainer, batch, stats)``  a minibatch is done: ``BatchStats``
``on_epoch_end(trainer, record)``          the epoch's :class:`EpochRecord` is complete
``on_train_end(trainer, result)``          the final test evaluation (``result``) is done
=========================================  =================================================

The view is narrow: the run's budget and counters, its models, its folder and config, and
what a listener may change: ``trainer.stop(reason)`` ends the run after the epoch, the epoch's
record may be amended before the listeners after it read it, and the run's books
(``trainer.state``) are kept by the listeners that keep them (the checkpoints, the rollback,
early stopping). A listener with state to resume defines ``state_dict()`` /
``load_state_dict()`` (plain containers and tensors); the checkpoint keeps it under the
listener's ``state_key`` (its class name by default).

>>> class Lrs(Callback):
...     def __init__(self):
...         self.lrs = []
...     def on_epoch_end(self, trainer, record):
...         self.lrs.append(record.lr)
>>> train(TrainConfig(...), callbacks=[Lrs()])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from accelat_train.config import TrainConfig
from accelat_train.deprecations import warn_moved

if TYPE_CHECKING:
    import torch

    from accelat_train.adversarial.methods import BatchStats, PassCounter
    from accelat_train.callbacks.record import EpochRecord, RunState
    from accelat_train.run_dir import RunDir


class _Run(Protocol):
    """What a :class:`RunView` asks of the run it shows (the trainer)."""

    @property
    def lr(self) -> float: ...

    def counting(self, model: torch.nn.Module | None = None) -> PassCounter: ...

    def checkpoint_state(self) -> dict[str, Any] | None: ...


#: What a listener's ``trainer`` offered before it was a view (deprecated since 0.2, gone in
#: 0.4), and what to use instead.
_LEGACY = {
    "cfg": "trainer.config (the run's config, as config.json holds it)",
    "setup": "trainer.model, trainer.batches_per_epoch and trainer.updates_per_epoch",
    "info": "trainer.rank, trainer.world_size and trainer.is_main",
    "optimizer": "trainer.lr (the lr the next weight update uses)",
    "schedule": "the epoch's record (its lr, momentum and decision)",
    "events": "the hooks' own arguments",
}


@dataclass(frozen=True)
class RunView:
    """What a listener sees of the run in progress, and what it may change: each hook's
    ``trainer``.

    Read: ``epoch`` (the epochs done) of ``epochs`` (the budget), ``batches_per_epoch`` and
    ``updates_per_epoch``, ``lr`` (the lr the next weight update uses), ``stopped``, ``rank``
    of ``world_size`` and ``is_main``, ``model`` (what trains, and is saved for resume) and
    ``evaluated`` (what the run evaluates: the model, or its weight average), ``run_dir``
    (the run's folder) and ``config`` (the run's config, as ``config.json`` holds it).
    Change: :meth:`stop`; the run's books, ``state`` (:class:`RunState`: counters, the best
    epoch, why the run stopped), which the built-in listeners keep; :meth:`counting` counts a
    listener's own gradient passes, :meth:`checkpoint_state` is what ``checkpoint.pt`` holds.

    The trainer's other attributes, which listeners received before (``cfg``, ``setup``,
    ``info``, ``optimizer``, ``schedule``, ``events``), still answer until 0.4, with a
    ``DeprecationWarning`` naming what to read instead.
    """

    state: RunState
    run_dir: RunDir
    model: torch.nn.Module
    evaluated: torch.nn.Module
    config: dict[str, Any]
    epochs: int
    batches_per_epoch: int
    updates_per_epoch: int
    rank: int
    world_size: int
    _run: _Run = field(repr=False)  # the trainer: what the view reads and does through it

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def stopped(self) -> dict[str, Any] | None:
        return self.state.stopped

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    @property
    def lr(self) -> float:
        return self._run.lr

    def stop(self, reason: str, message: str = "") -> None:
        """End the run after the current epoch (``report.json``'s ``stopped`` says why)."""
        self.state.stop(reason, message)

    def counting(self, model: torch.nn.Module | None = None) -> PassCounter:
        """Count ``model``'s passes (default: the training model's) outside training; a
        forward alone is 1/3 pass."""
        return self._run.counting(model)

    def checkpoint_state(self) -> dict[str, Any] | None:
        """What ``checkpoint.pt`` holds now, on rank 0 (None elsewhere); every rank calls it."""
        return self._run.checkpoint_state()

    def __getattr__(self, name: str) -> Any:
        if name not in _LEGACY:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        warn_moved(f"a listener's trainer.{name}", _LEGACY[name])
        if name == "cfg":
            return TrainConfig(**self.config)
        return getattr(self._run, name)


class Callback:
    """A listener: override the hooks you need; each default does nothing."""

    def on_train_begin(self, trainer: RunView) -> None:
        """The run starts: fresh, or resumed after ``trainer.epoch`` epochs."""

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
        """Give each stateful listener its saved state (a listener new to the run keeps its own);
        a state it cannot take is a ``ValueError`` naming its key."""
        for cb in self.callbacks:
            if hasattr(cb, "state_dict") and cb.state_key in states:
                try:
                    cb.load_state_dict(states[cb.state_key])  # type: ignore[attr-defined]
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    raise ValueError(
                        f"callbacks[{cb.state_key!r}] cannot be loaded: {type(exc).__name__}: "
                        f"{str(exc)[:200]}"
                    ) from None
