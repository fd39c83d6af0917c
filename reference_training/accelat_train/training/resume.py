"""Opening a run folder for a config, before anything is written in it: a fresh start, a
resume, a new budget, or a restart.

:func:`open_run` reads what the folder holds (:meth:`~accelat_train.run_dir.RunDir.held`)
and decides:

- it holds no file of a run: a fresh start;
- ``restart=True``: every file of the earlier run moves to a new sibling folder
  ``RUN.previous-N`` (:meth:`~accelat_train.run_dir.RunDir.move_aside`; nothing is deleted,
  and one line names the folder), and the run starts afresh;
- otherwise a run is continued only with ``resume=True``, and only a run of the same config
  (:func:`~accelat_train.config.run_differences`) whose checkpoint holds the trainer's layout
  and agrees with ``metrics.jsonl``
  (:func:`~accelat_train.training.run_checkpoint.check_checkpoint`). A run killed before its
  first checkpoint (its config, the finder's plot, at most the first epoch's line and
  ``best.pt``) starts again: a resume cuts what came after its checkpoint anyway.

**A new budget.** A resume may change ``epochs`` (to extend a finished run, or to shorten one
not yet there) when nothing of the run depends on its budget: not its policy (a catalogue
entry that is not ``budget_shaped``, or a ``policy_config``, whose shape is its own), not
its optimizer (schedule-free SGD warms up over a fraction of the updates), and not the
policy's config (AccelAT's and plateau's default window is a tenth of the budget, clamped to
1..2 epochs: :func:`~accelat_train.catalogue.default_window`). Where the default window
would change with the budget, the run keeps its own only when it is given explicitly
(``window=1``): the result is then the run the new budget with that window gives, exactly,
as it is whenever nothing changes. Anything else is refused, saying why and what to do.

Every refusal names the folder or the file, in Python's words (``resume=True``) and, for the
command line, in its own (``--resume``), and leaves the folder as it was.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from string import Template
from typing import Any

from accelat_train.catalogue import CATALOGUE
from accelat_train.config import TrainConfig, lr_used, resolved_optimizer, run_differences
from accelat_train.run_dir import RunDir, RunDirError
from accelat_train.training.run_checkpoint import check_checkpoint
from accelat_train.training.run_schedule import policy_for

#: How a refusal names the choices: (Python's words, the command line's).
_WORDS = {
    "resume": ("resume=True", "--resume"),
    "restart": ("restart=True", "--restart"),
    "out": ("out", "--out"),
    "epochs": ("epochs=", "--epochs "),
    "window": ("window=", "--window "),
    "policy_config": ("policy_config", "--policy-config"),
}


def refusal(message: str) -> RunDirError:
    """A :class:`RunDirError` of ``message``, whose ``$resume``, ``$restart``, ``$out``,
    ``${epochs}``, ``${window}`` and ``$policy_config`` are said in Python's words (its
    text) and in the command line's (its ``flags``)."""
    template = Template(message)
    python = template.safe_substitute({k: v[0] for k, v in _WORDS.items()})
    return RunDirError(python, template.safe_substitute({k: v[1] for k, v in _WORDS.items()}))


@dataclass(frozen=True)
class Opened:
    """What a run starts from: nothing (``checkpoint`` None), or a resumed run's checkpoint
    and the lr_max it started from; ``config`` is the ``config.json`` a resume with a new
    budget writes once the checkpoint is restored (None: keep the one there)."""

    checkpoint: dict[str, Any] | None = None
    lr_max: float | None = None
    config: dict[str, Any] | None = None


def open_run(
    cfg: TrainConfig, run_dir: RunDir, *, resume: bool, restart: bool, is_main: bool = True
) -> Opened:
    """Decide, before anything is written, how the run in ``run_dir`` starts (the module
    docstring); raise :class:`RunDirError` (or
    :class:`~accelat_train.checkpoint.CheckpointError`) naming what stands in the way.
    Only the main process (``is_main``) moves an earlier run aside."""
    held = run_dir.held()
    if not held:
        return Opened()
    if restart:
        if is_main:
            target = run_dir.move_aside()
            print(f"accelat: moved the earlier run in {run_dir.path} to {target}", file=sys.stderr)
        return Opened()
    names = ", ".join(p.name for p in held)
    again = "pass $restart to move it aside and start over, or choose another $out"
    if not resume:
        raise refusal(
            f"{run_dir.path} already holds a run ({names}); pass $resume to continue it, {again}"
        )
    if not run_dir.config.exists():
        raise refusal(
            f"{run_dir.path} holds {names} but no config.json: it cannot be resumed; {again}"
        )
    saved = run_dir.read_config()
    if cfg.epochs != saved.get("epochs"):
        _check_new_budget(cfg, saved, run_dir)
    differs = run_differences(cfg, saved, new_budget=True)
    if differs:
        raise refusal(
            f"$resume: {run_dir.path} holds a run of another config ({'; '.join(differs)}); "
            f"resume it with its own settings, or {again}"
        )
    if not run_dir.checkpoint.exists():
        if _never_checkpointed(run_dir, held):
            return Opened()
        raise refusal(
            f"{run_dir.path} holds {names} but no checkpoint.pt: it cannot be resumed; {again}"
        )
    return _resumed(cfg, run_dir, saved)


def _resumed(cfg: TrainConfig, run_dir: RunDir, saved: dict[str, Any]) -> Opened:
    """The checkpoint, checked against its schema and its folder, and the lr it started from."""
    checkpoint = run_dir.load_checkpoint()
    check_checkpoint(checkpoint, run_dir.checkpoint, run_dir.metrics)
    if checkpoint["epoch"] > cfg.epochs:
        raise refusal(
            f"${{epochs}}{cfg.epochs}: the run in {run_dir.path} has trained "
            f"{checkpoint['epoch']} epochs already; give it a budget of at least that"
        )
    lr_max = lr_used(saved)
    sgd = resolved_optimizer(cfg.optimizer, cfg.policy, cfg.policy_config) == "sgd"
    if lr_max is None and sgd and cfg.policy_config is None:
        raise refusal(
            f"{run_dir.config} asks for lr_max 'auto' but holds no lr_find record of the lr "
            "it found: the run cannot be resumed at its lr; pass $restart to move it aside "
            "and start over, or choose another $out"
        )
    extended = {**saved, "epochs": cfg.epochs, "window": cfg.window}
    return Opened(checkpoint, lr_max, extended if cfg.epochs != saved["epochs"] else None)


def _never_checkpointed(run_dir: RunDir, held: list[Any]) -> bool:
    """Was the run killed before its first checkpoint? Then it holds at most its config,
    the finder's plot and the first epoch's line and ``best.pt``, which a resume would cut
    anyway (as it cuts every epoch after its checkpoint): starting again loses nothing."""
    early = {run_dir.config, run_dir.metrics, run_dir.best, run_dir.lr_find_plot}
    try:
        lines = run_dir.metrics.read_bytes().count(b"\n") if run_dir.metrics.exists() else 0
    except OSError:
        return False
    return set(held) <= early and lines <= 1


def _check_new_budget(cfg: TrainConfig, saved: dict[str, Any], run_dir: RunDir) -> None:
    """Refuse a new budget for a run that depends on its budget, saying why and what to do
    (the module docstring)."""
    budget = saved.get("epochs")
    lead = f"${{epochs}}{cfg.epochs}: the run in {run_dir.path} was trained for {budget} epochs"
    new_run = (
        f"start a new run with ${{epochs}}{cfg.epochs} (in another $out, or here with $restart)"
    )
    shaped = _shaped_by_budget(cfg)
    if shaped:
        raise refusal(
            f"{lead} and {shaped}, so continuing it could not give the run a budget of "
            f"{cfg.epochs} epochs gives; {new_run}, or give the shape you want with "
            "$policy_config"
        )
    if not isinstance(budget, int) or budget < 1:
        raise refusal(f"{run_dir.config} holds no budget (epochs {budget!r}); {new_run}")
    updates = saved.get("updates_per_epoch")
    per_epoch = updates if isinstance(updates, int) and updates > 0 else 1
    before = policy_for(
        dataclasses.replace(cfg, epochs=budget), 1.0, total_steps=budget * per_epoch
    )
    after = policy_for(cfg, 1.0, total_steps=cfg.epochs * per_epoch)
    old, new = before.get_config(), after.get_config()
    changed = [k for k in sorted({*old, *new}) if old.get(k) != new.get(k)]
    if changed:
        keep = (
            f"; pass ${{window}}{old['window']} to keep the run's window"
            if "window" in changed
            else ""
        )
        raise refusal(
            f"{lead}, and with a budget of {cfg.epochs} its policy would change ("
            + ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
            + f"){keep} (the result is then the run a budget of {cfg.epochs} epochs with it "
            f"gives), or {new_run}"
        )


def _shaped_by_budget(cfg: TrainConfig) -> str | None:
    """Why ``cfg``'s run depends on its budget (None when it does not)."""
    if cfg.policy_config is None and CATALOGUE[cfg.policy].budget_shaped:
        return f"its policy {cfg.policy!r} is shaped by the budget (scaled to the run's length)"
    if resolved_optimizer(cfg.optimizer, cfg.policy, cfg.policy_config) == "schedulefree":
        return "its optimizer, schedule-free SGD, warms up over a fraction of the run's updates"
    return None
