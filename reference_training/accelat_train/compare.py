"""The one comparison engine behind ``accelat compare``, ``accelat demo`` and the acceleration
study (benchmarks/acceleration.py): several policies, several seeds, the same budget.

Per seed the lr finder runs once (when ``lr_max="auto"``) and every policy of that seed starts
from its suggestion; its result is cached in ``<out>/lr_find_seed<seed>.json``. Each policy
trains into ``<out>/<policy>/seed<seed>``; a run whose ``report.json`` exists is not repeated
and one with a checkpoint resumes, so an interrupted comparison continues where it stopped.
``compare.json`` and ``compare.png`` summarise them (:func:`accelat_train.report.compare_summary`).

>>> base = TrainConfig(dataset="digits", eps=0.1, epochs=8)
>>> summary = compare(base, ["step", "accelat"], [0, 1], "runs/cmp")  # doctest: +SKIP
>>> summary["policies"]["accelat"]["ratio_to_baseline"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from accelat_train import plots, report
from accelat_train.config import METRIC_DRIVEN, TrainConfig
from accelat_train.lr_finder import find_lr
from accelat_train.peers import PEERS
from accelat_train.run import train
from accelat_train.setup import prepare

BASELINE = "step"


def compare(
    base: TrainConfig,
    policies: Sequence[str],
    seeds: Sequence[int],
    out: str | Path,
    *,
    target: float | None = None,
    jobs: int = 1,
    threads: int | None = None,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train every policy on every seed from ``base``; write and return the summary.

    ``jobs > 1`` trains in that many processes with ``threads`` torch threads each (default:
    the CPUs shared out). ``log`` receives one line per finder result and per run.
    """
    if not seeds:
        raise ValueError("seeds must name at least one seed, got none")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _line: None)
    if jobs > 1 and threads is None:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    found = {s: _lr_find(dataclasses.replace(base, seed=s), policies, out, say) for s in seeds}
    runs: dict[str, list[str]] = {name: [] for name in policies}
    tasks = []
    for seed in seeds:
        for name in policies:
            run_dir = out / name / f"seed{seed}"
            runs[name].append(str(run_dir))
            # LR-free peers neither read the finder nor are charged for it.
            shared = {} if name in PEERS else found[seed]
            cfg = dataclasses.replace(base, seed=seed, policy=name, out=str(run_dir), **shared)
            tasks.append((cfg, quiet, threads))
    _map(
        _train_one,
        tasks,
        jobs,
        before=lambda t: say(f"training {t[0].policy} (seed {t[0].seed}) -> {t[0].out}"),
    )
    summary = report.compare_summary(
        runs,
        target=target,
        baseline=BASELINE if BASELINE in policies else None,
        fixed_shape=[n for n in policies if n not in METRIC_DRIVEN and n not in PEERS],
    )
    report.write_json(out / "compare.json", summary)
    plots.plot_compare(summary, out / "compare.png")
    return summary


def _lr_find(
    cfg: TrainConfig, policies: Sequence[str], out: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    """The ``lr_max`` / ``lr_find`` fields of this seed's runs (the finder runs at most once)."""
    if cfg.lr_max != "auto" or all(p in PEERS for p in policies):
        return {}
    cached = out / f"lr_find_seed{cfg.seed}.json"
    if cached.is_file():
        shared = json.loads(cached.read_text(encoding="utf-8"))
    else:
        finding = find_lr(prepare(cfg))
        shared = {**finding.record(), "shared_by": [p for p in policies if p not in PEERS]}
        finding.plot(out / f"lr_find_seed{cfg.seed}.png")
        report.write_json(cached, shared)
    say(f"seed {cfg.seed}: lr finder suggests lr_max {shared['lr_max']:.4g}")
    return {"lr_max": shared["lr_max"], "lr_find": shared}


def _train_one(task: tuple[TrainConfig, bool, int | None]) -> str:
    """Train (or resume, or skip a finished) run; top level so a process pool can pickle it."""
    cfg, quiet, threads = task
    if threads is not None:
        torch.set_num_threads(threads)
    run_dir = Path(cfg.out)
    if not (run_dir / "report.json").is_file():
        train(cfg, quiet=quiet, resume=(run_dir / "checkpoint.pt").exists())
    return str(run_dir)


def _map(
    fn: Callable[[Any], Any], tasks: list[Any], jobs: int, before: Callable[[Any], None]
) -> list[Any]:
    """``[fn(t) for t in tasks]``, in ``jobs`` processes when ``jobs > 1``; ``before(t)`` is
    called ahead of each task (of all of them, when they run in parallel)."""
    if jobs <= 1 or len(tasks) <= 1:
        return [(before(t), fn(t))[1] for t in tasks]
    for t in tasks:
        before(t)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        return list(pool.map(fn, tasks))


def stderr_log(line: str) -> None:
    """A ``log`` for :func:`compare` that prints to stderr."""
    print(line, file=sys.stderr)
