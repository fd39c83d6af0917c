"""A run's ``checkpoint.pt``: what it holds (:data:`SCHEMA`), the check a resume makes before
using any of it (:func:`check_checkpoint`), and how it comes back into a run (:func:`restore`).

A checkpoint holds the training model, the evaluated model when it is another one (weight
averaging), the optimizer, the schedule (JSON policy state), every rank's method state (Free
AT's perturbation is per shard), the GradScaler, the torch RNG, every stateful listener's
state and the :class:`~accelat_train.callbacks.record.RunState` counters
(:meth:`~accelat_train.training.trainer.Trainer.checkpoint_state` makes one). Its
``metrics_bytes`` is the length of ``metrics.jsonl`` then: a resumed run cuts lines written
after the checkpoint, so the file never holds an epoch twice. The listener that writes it
after every epoch is :class:`~accelat_train.callbacks.checkpoint_saver.CheckpointSaver`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from accelat_train.checkpoint import (
    WEIGHTS,
    CheckpointError,
    is_count,
    is_tensor_dict,
    schema_fault,
)
from accelat_train.run_dir import RunDirError, parse_json

if TYPE_CHECKING:
    from accelat_train.callbacks.callback import Callbacks
    from accelat_train.training.build import Setup
    from accelat_train.training.run_schedule import RunSchedule


def restore(
    ckpt: dict[str, Any],
    path: Path,
    setup: Setup,
    *,
    evaluated: torch.nn.Module,
    schedule: RunSchedule,
    listeners: Callbacks,
) -> None:
    """Load ``ckpt`` (read from ``path``, checked by :func:`check_checkpoint`) into the run:
    ``setup``'s model, optimizer, method and scaler, the ``evaluated`` model, the
    ``schedule`` and the ``listeners`` (the run's counters are the caller's:
    :meth:`RunState.restore`). Whatever does not fit this run (weights of another shape, a
    schedule of another config) is refused as one :class:`CheckpointError` naming the file,
    before the models are touched."""
    info = setup.dist
    method_states = ckpt["method"]["ranks"]
    if len(method_states) != info.world_size:
        raise CheckpointError(
            f"checkpoint {path} was written by {len(method_states)} rank(s); "
            f"resume it with the same number of processes, not {info.world_size}"
        )
    misfits = _misfits(ckpt, {"model": setup.model, "evaluated": evaluated}, setup.optimizer)
    if misfits:
        raise CheckpointError(f"checkpoint {path} does not fit this run: " + "; ".join(misfits))
    try:
        # The schedule checks its whole state before it changes anything.
        schedule.load_state_json(ckpt["scheduler"])
        setup.model.load_state_dict(ckpt["model"])
        if "evaluated" in ckpt:
            evaluated.load_state_dict(ckpt["evaluated"])
        setup.optimizer.load_state_dict(ckpt["optimizer"])
        setup.method.load_state_dict(method_states[info.rank])
        if setup.scaler is not None and ckpt.get("scaler"):
            setup.scaler.load_state_dict(ckpt["scaler"])
        listeners.load_state_dict(ckpt.get("callbacks", {}))
        torch.set_rng_state(ckpt["rng"]["torch"])
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} does not fit this run: {str(exc).splitlines()[0][:300]}"
        ) from None


def _misfits(
    ckpt: dict[str, Any], models: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer
) -> list[str]:
    """How the checkpoint's tensors differ in name or shape from this run's: its ``models``'
    weights (by checkpoint key) and ``optimizer``'s per-parameter state."""
    found = []
    for key, model in models.items():
        if key in ckpt:
            found += _shape_misfits(key, ckpt[key], model.state_dict())
    params = [p for group in optimizer.param_groups for p in group["params"]]
    groups = ckpt["optimizer"]["param_groups"]
    saved = [index for group in groups for index in group["params"]]
    if len(saved) != len(params):
        found.append(f"optimizer holds {len(saved)} parameters, this run's {len(params)}")
    else:
        for index, param in zip(saved, params, strict=True):
            for name, value in ckpt["optimizer"]["state"].get(index, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    found.append(
                        f"optimizer state {name} of parameter {index} has shape "
                        f"{tuple(value.shape)}, the parameter {tuple(param.shape)}"
                    )
    return found


def _shape_misfits(
    key: str, saved: dict[str, torch.Tensor], own: dict[str, torch.Tensor]
) -> list[str]:
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    found = [f"{key} lacks {', '.join(missing[:5])}"] if missing else []
    if unexpected:
        found.append(f"{key} has weights this network lacks: {', '.join(unexpected[:5])}")
    found += [
        f"{key}.{name} has shape {tuple(saved[name].shape)}, the network's {tuple(t.shape)}"
        for name, t in own.items()
        if name in saved and saved[name].shape != t.shape
    ]
    return found


# -- what a checkpoint.pt holds --------------------------------------------------------------
def _is_real(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


def _is_optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _is_optimizer_state(value: Any) -> bool:
    """torch's layout: ``state`` (a dict per parameter index) and ``param_groups`` (dicts,
    each with the ``params`` indices)."""
    if not isinstance(value, dict):
        return False
    state, groups = value.get("state"), value.get("param_groups")
    return (
        isinstance(state, dict)
        and all(isinstance(v, dict) for v in state.values())
        and isinstance(groups, list)
        and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
    )


def _is_json_object(value: Any) -> bool:
    try:
        return isinstance(value, str) and isinstance(parse_json(value, "scheduler"), dict)
    except RunDirError:
        return False


def _is_rank_states(value: Any) -> bool:
    ranks = value.get("ranks") if isinstance(value, dict) else None
    return isinstance(ranks, list) and bool(ranks) and all(
        isinstance(r, dict) and is_tensor_dict(r) for r in ranks
    )  # fmt: skip


def _is_rng(value: Any) -> bool:
    state = value.get("torch") if isinstance(value, dict) else None
    return isinstance(state, torch.Tensor) and state.dtype == torch.uint8 and state.dim() == 1


_COUNT = "an integer >= 0"
_REAL = "a finite number >= 0"
#: What a ``checkpoint.pt`` holds beyond :data:`~accelat_train.checkpoint.WEIGHTS`: key ->
#: (required, check, what it must be). The :class:`RunState` counters a checkpoint predates
#: take their defaults.
SCHEMA: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    **WEIGHTS,
    "optimizer": (True, _is_optimizer_state, "an optimizer state_dict (state, param_groups)"),
    "scheduler": (True, _is_json_object, "the scheduler's state as the text of a JSON object"),
    "method": (True, _is_rank_states, "{'ranks': one method state dict per rank}"),
    "scaler": (False, lambda v: isinstance(v, dict), "a GradScaler state_dict"),
    "rng": (True, _is_rng, "{'torch': the torch RNG state, a 1-D uint8 tensor}"),
    "callbacks": (False, lambda v: isinstance(v, dict), "the listeners' states by name"),
    "consumed": (True, is_count, _COUNT),
    "passes": (True, is_count, _COUNT),
    "metrics_bytes": (True, is_count, _COUNT),
    **{k: (False, _is_real, _REAL) for k in ("monitor_passes", "val_passes", "overhead_passes",
                                              "seconds")},
    **{k: (False, _is_optional(math.isfinite), "a finite number or None")
       for k in ("last_lr", "last_momentum", "best_robust_val_acc")},
    "best_epoch": (False, _is_optional(is_count), f"{_COUNT} or None"),
}  # fmt: skip


def check_checkpoint(ckpt: dict[str, Any], path: Path, metrics: Path) -> None:
    """Refuse ``ckpt`` (read from ``path``) as one :class:`CheckpointError` naming the file
    and every fault, unless it holds the trainer's layout (:data:`SCHEMA`) and agrees with
    its folder's ``metrics.jsonl``: ``metrics_bytes`` within the file and at a line's end,
    and as many lines before it as the checkpoint's ``epoch``. Nothing is used before this."""
    problems = [
        fault
        for key, (required, check, what) in SCHEMA.items()
        if (fault := schema_fault(ckpt, key, required, check, what))
    ]
    if not problems:
        best = ckpt.get("best_epoch")
        if best is not None and best > ckpt["epoch"]:
            problems.append(f"best_epoch {best} is after its epoch {ckpt['epoch']}")
        problems += _metrics_faults(ckpt["epoch"], ckpt["metrics_bytes"], metrics)
    if problems:
        raise CheckpointError(f"checkpoint {path} cannot be resumed: " + "; ".join(problems))


def _metrics_faults(epoch: int, length: int, metrics: Path) -> list[str]:
    """How a checkpoint's ``epoch`` and ``metrics_bytes`` disagree with ``metrics``."""
    try:
        size = metrics.stat().st_size
        with open(metrics, "rb") as f:
            head = f.read(length) if length <= size else b""
    except FileNotFoundError:
        size, head = 0, b""
    except OSError as exc:
        return [f"{metrics} cannot be read: {exc.strerror}"]
    if length > size:
        return [f"metrics_bytes {length} is beyond the end of {metrics} ({size} bytes)"]
    if head and not head.endswith(b"\n"):
        return [f"metrics_bytes {length} is not at the end of a line of {metrics}"]
    lines = head.count(b"\n")
    if lines != epoch:
        return [f"epoch {epoch} does not agree with {metrics}, whose first {length} bytes "
                f"hold {lines} epoch(s)"]  # fmt: skip
    return []
