"""Opening a run folder for a config, before anything is written in it: a fresh start, a
resume, a new budget, or a restart.

:func:`open_run` reads what the folder holds (:meth:`~accelat_train.run_dir.RunDir.held`)
and decides:

- it holds no file of a run: a fresh start;
- ``restart=True``: every file of the earlier run moves to a new sibling folder
  ``RUN.previous-N`` (:meth:`~accelat_train.run_dir.RunDir.move_aside`; nothing is deleted,
  and one line names the folder), and the run starts afresh;
- otherwise a run is continued only with ``resume=True``, and only a run of the same config
  (:meth:`~accelat_train.config.TrainConfig.differences`) whose checkpoint holds the
  trainer's layout and agrees with ``metrics.jsonl``
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
from collections.abc import Callable
from dataclasses import dataclass
from string import Template
from typing import Any

from accelat_train.catalogue import CATALOGUE
from accelat_train.config import TrainConfig, lr_used
from accelat_train.registry import OPTIMIZERS
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
    "no_anneal": ("anneal=None", "--anneal none"),
}


def refusal(message: str) -> RunDirError:
    """A :class:`RunDirError` of ``message``, whose ``$resume``, ``$restart``, ``$out``,
    ``${epochs}``, ``${window}``, ``$policy_config`` and ``$no_anneal`` are said in Python's
    words (its text) and in the command line's (its ``flags``)."""
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

        def policy_at(epochs: int) -> dict[str, Any]:
            """The run's policy config for a budget of ``epochs``."""
            steps = epochs * _updates_per_epoch(saved)
            policy = policy_for(cfg.policy, cfg.policy_config, cfg.rule, 1.0,
                                total_steps=steps, epochs=epochs)  # fmt: skip
            return policy.get_config()

        shaped = _shaped_by_budget(cfg.policy, cfg.policy_config, cfg.optimizer_name)
        _check_new_budget(run_dir, saved, cfg.epochs, shaped, policy_at)
    differs = cfg.differences(saved, new_budget=True)
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
    needs_lr = cfg.policy_config is None and not OPTIMIZERS[cfg.optimizer_name].lr_free
    opened = _resumed(run_dir, saved, cfg.epochs, needs_lr=needs_lr)
    if cfg.epochs == saved["epochs"]:
        return opened
    extended = {**saved, "epochs": cfg.epochs, "window": cfg.window}
    return dataclasses.replace(opened, config=extended)


def _resumed(run_dir: RunDir, saved: dict[str, Any], epochs: int, *, needs_lr: bool) -> Opened:
    """The checkpoint, checked against its schema, its folder and the budget ``epochs``, and
    the lr it started from (which a run that ``needs_lr`` from the finder must have kept)."""
    checkpoint = run_dir.load_checkpoint()
    check_checkpoint(checkpoint, run_dir.checkpoint, run_dir.metrics)
    if checkpoint["epoch"] > epochs:
        raise refusal(
            f"${{epochs}}{epochs}: the run in {run_dir.path} has trained "
            f"{checkpoint['epoch']} epochs already; give it a budget of at least that"
        )
    lr_max = lr_used(saved)
    if lr_max is None and needs_lr:
        raise refusal(
            f"{run_dir.config} asks for lr_max 'auto' but holds no lr_find record of the lr "
            "it found: the run cannot be resumed at its lr; pass $restart to move it aside "
            "and start over, or choose another $out"
        )
    return Opened(checkpoint, lr_max)


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


def _updates_per_epoch(saved: dict[str, Any]) -> int:
    updates = saved.get("updates_per_epoch")
    return updates if isinstance(updates, int) and updates > 0 else 1


def _check_new_budget(
    run_dir: RunDir,
    saved: dict[str, Any],
    epochs: int,
    shaped: str | None,
    policy_at: Callable[[int], dict[str, Any]],
) -> None:
    """Refuse the budget ``epochs`` for the run ``saved`` when it depends on its budget
    (``shaped`` says why) or its policy's config (``policy_at(budget)``) would change with
    it, saying why and what to do (the module docstring)."""
    budget = saved.get("epochs")
    lead = f"${{epochs}}{epochs}: the run in {run_dir.path} was trained for {budget} epochs"
    new_run = f"start a new run with ${{epochs}}{epochs} (in another $out, or here with $restart)"
    if shaped:
        raise refusal(
            f"{lead} and {shaped}, so continuing it could not give the run a budget of "
            f"{epochs} epochs gives; {new_run}, or give the shape you want with "
            "$policy_config"
        )
    if not isinstance(budget, int) or budget < 1:
        raise refusal(f"{run_dir.config} holds no budget (epochs {budget!r}); {new_run}")
    before, after = policy_at(budget), policy_at(epochs)
    changed = [k for k in sorted({*before, *after}) if before.get(k) != after.get(k)]
    if changed:
        keep = (
            f"; pass ${{window}}{before['window']} to keep the run's window"
            if "window" in changed
            else "; AccelAT's anneal ends by the budget: a run trained with $no_anneal can be "
            "extended"
            if "budget" in changed
            else ""
        )
        raise refusal(
            f"{lead}, and with a budget of {epochs} its policy would change ("
            + ", ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in changed)
            + f"){keep} (the result is then the run a budget of {epochs} epochs with it "
            f"gives), or {new_run}"
        )


def _shaped_by_budget(policy: str, policy_config: Any, optimizer: str) -> str | None:
    """Why a run of ``policy`` (or ``policy_config``) and ``optimizer`` depends on its
    budget (None when it does not)."""
    if policy_config is None and CATALOGUE[policy].budget_shaped:
        return f"its policy {policy!r} is shaped by the budget (scaled to the run's length)"
    if OPTIMIZERS[optimizer].budget_shaped:
        return f"its optimizer {optimizer!r} ({OPTIMIZERS[optimizer].help}) is shaped by the budget"
    return None
