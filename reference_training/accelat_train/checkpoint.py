"""Atomic, ``weights_only``-loadable checkpoint files of a training run.

A checkpoint is one ``torch.save`` of plain containers and tensors (no pickled classes), so
:func:`load_checkpoint` can use ``torch.load(path, weights_only=True)``. It is written
atomically (:func:`accelat_train.atomic_writes.atomic_write`): a crash at any moment leaves
either the old or the new checkpoint, never a partial one. What a run's ``checkpoint.pt``
holds beyond the weights every checkpoint holds (:data:`WEIGHTS`) is
:mod:`accelat_train.training.run_checkpoint`'s.

>>> save_checkpoint("run/checkpoint.pt", {"epoch": 3})  # doctest: +SKIP
>>> load_checkpoint("run/checkpoint.pt")["epoch"]  # doctest: +SKIP
3
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from accelat_train import atomic_writes
from accelat_train.deprecations import moved

#: Version of the checkpoint layout; a newer one is refused.
CHECKPOINT_FORMAT = 1
#: Marks a file as an accelat_train checkpoint (a foreign ``.pt`` lacks it).
CHECKPOINT_KIND = "accelat_train.checkpoint"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, corrupt, foreign or too new."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Save ``state`` (tensors and plain containers only) atomically, tagged with kind/format."""
    payload = {"kind": CHECKPOINT_KIND, "format": CHECKPOINT_FORMAT, **state}
    return atomic_writes.atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises :class:`CheckpointError` naming ``path`` when the file is missing, corrupt,
    not an accelat_train checkpoint, or of a newer format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or unsafe file
        raise CheckpointError(
            f"checkpoint {path} cannot be read (corrupt, truncated or not a torch "
            f"weights-only file): {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(
            f"checkpoint {path} is not an accelat_train checkpoint (no kind={CHECKPOINT_KIND!r})"
        )
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {state.get('format')!r}; this version reads "
            f"format {CHECKPOINT_FORMAT}"
        )
    return state


def load_weights(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """:func:`load_checkpoint`, refused unless it holds weights (:func:`check_weights`)."""
    state = load_checkpoint(path, map_location)
    check_weights(state, Path(path))
    return state


def check_weights(state: dict[str, Any], path: Path) -> None:
    """Raise one :class:`CheckpointError` naming ``path`` and every fault unless ``state``
    holds what every checkpoint of a run holds (``best.pt`` and ``checkpoint.pt`` alike):
    ``model`` (and, with weight averaging, ``evaluated``) as dicts of tensors by name, and
    ``epoch`` as an integer >= 0."""
    problems = [
        fault
        for key, (required, check, what) in WEIGHTS.items()
        if (fault := schema_fault(state, key, required, check, what))
    ]
    if problems:
        raise CheckpointError(f"checkpoint {path} is damaged: " + "; ".join(problems))


def schema_fault(
    state: dict[str, Any], key: str, required: bool, check: Callable[[Any], bool], what: str
) -> str | None:
    """What is wrong with ``state[key]`` (missing while ``required``, or failing ``check``:
    it must be ``what``), or None."""
    if key not in state:
        return f"{key} is missing" if required else None
    if check(state[key]):
        return None
    return f"{key} must be {what}, got {reprlib.repr(state[key])}"


def is_count(value: Any) -> bool:
    """An integer >= 0 (not a bool)."""
    return type(value) is int and value >= 0


def is_tensor_dict(value: Any) -> bool:
    """A dict of tensors by name (a ``state_dict``)."""
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def is_stop_record(value: Any) -> bool:
    """None, or a dict whose ``restored_epoch`` (if any) is None or an integer >= 0: what a
    stop (early stopping, the overfitting rollback) records of the weights it restored."""
    if value is None:
        return True
    restored = value.get("restored_epoch") if isinstance(value, dict) else "not a dict"
    return restored is None or is_count(restored)


#: What every checkpoint of a run holds: key -> (required, check, what it must be).
WEIGHTS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "model": (True, is_tensor_dict, "a dict of tensors by name"),
    "evaluated": (False, is_tensor_dict, "a dict of tensors by name"),
    "epoch": (True, is_count, "an integer >= 0"),
    # The epoch whose weights a stop restored (load_run's Run.epoch reads it).
    **dict.fromkeys(("stopped", "rollback"), (
        False, is_stop_record, "a dict (its restored_epoch an integer >= 0) or None")),
}  # fmt: skip


#: Moved to :mod:`accelat_train.atomic_writes` (deprecated here since 0.2, gone in 0.4).
__getattr__ = moved(__name__, {
    "atomic_write": ("accelat_train.atomic_writes:atomic_write",
                     "accelat_train.atomic_writes.atomic_write"),
    "atomic_write_text": ("accelat_train.atomic_writes:atomic_write_text",
                          "accelat_train.atomic_writes.atomic_write_text"),
})  # fmt: skip
