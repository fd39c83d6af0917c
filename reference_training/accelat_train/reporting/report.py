"""One run's report: ``report.json`` and ``curves.png``, written from the files the run left
(``config.json``, ``metrics.jsonl``) and its final test evaluation, and read back.

>>> read_metrics("runs/digits-accelat")[-1]["robust_val_acc"]  # doctest: +SKIP
0.61
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accelat_train.atomic_writes import atomic_write_text
from accelat_train.reporting import plots
from accelat_train.run_dir import RunDir, RunDirError, read_json


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's ``metrics.jsonl``, one dict per completed epoch, in file order."""
    return RunDir(run_dir).rows()


def read_report(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``report.json``; a :class:`~accelat_train.run_dir.RunDirError` if the run
    has not finished (or the file is damaged)."""
    path = RunDir(run_dir).report
    if not path.is_file():
        raise RunDirError(f"no report.json in run directory {str(run_dir)!r}; did the run finish?")
    return read_json(path)


def write_run_report(run_dir: str | Path, result: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``report.json`` and ``curves.png`` into ``run_dir``; return the report dict.

    ``result`` is the trainer's final evaluation: ``final`` (the test evaluation of the
    weights the run ended with: ``{"clean_acc", "robust_acc", "attacks", ...}``),
    ``final_weights_epoch`` (the epoch those weights are from: the last, or ``best.pt``'s
    when early stopping or the overfitting rollback restored it), ``best`` (``{"epoch",
    "robust_val_acc", "test"}`` for ``best.pt``, or None), ``stopped`` (``{"epoch",
    "reason", "message"}``: why the run ended: ``budget``, ``policy``, ``early_stop`` (with
    ``restored_epoch``) or ``overfitting``), ``rollback`` (the overfitting check's, or None)
    and ``evaluated`` (which weights were evaluated: ``"weights"`` or ``"averaged
    weights"``). The report holds the run's config,
    its length (epochs, cumulative gradient passes, training seconds), the best robust
    validation accuracy, those, and with ``best`` the ``robust_overfitting_gap`` = best minus
    final robust validation accuracy.
    """
    folder = RunDir(run_dir)
    config = read_json(folder.config) if folder.config.is_file() else {}
    rows = folder.rows()
    if not rows:
        raise RunDirError(f"metrics.jsonl in {folder.path} has no epochs; nothing to report")
    last = rows[-1]
    report: dict[str, Any] = {
        "config": config,
        "epochs": int(last["epoch"]),
        "passes": int(last["passes"]),
        "seconds": float(last["seconds"]),
        "best_robust_val_acc": max(
            (float(r["robust_val_acc"]) for r in rows if r["robust_val_acc"] is not None),
            default=None,
        ),
        "evaluated": result.get("evaluated", "weights"),
        "stopped": result.get("stopped"),
        "final_weights_epoch": result.get("final_weights_epoch", int(last["epoch"])),
        "final": dict(result["final"]),
    }
    best = result.get("best")
    if best is not None:
        report["best"] = dict(best)
        report["robust_overfitting_gap"] = float(best["robust_val_acc"]) - float(
            last["robust_val_acc"]
        )
    if result.get("rollback") is not None:
        report["co_check"] = {"fired": True, **result["rollback"]}
    write_json(folder.report, report)
    figure = plots.run_curves_figure(rows, title=_run_title(config))
    plots.save_png(figure, folder.curves, run_file=True)
    return report


def _run_title(config: Mapping[str, Any]) -> str:
    parts = [str(config[k]) for k in ("dataset", "model", "method", "policy") if k in config]
    return " / ".join(parts)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (temp file, fsync, rename)."""
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
