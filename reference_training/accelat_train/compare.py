"""The one comparison engine behind ``accelat compare``, ``accelat demo`` and the acceleration
study (benchmarks/acceleration.py): several policies, several seeds, the same budget.

Each *arm* is a policy name with optional changes to the base config,
``policy[:field=value...]`` (:func:`arm_config`), e.g. ``accelat:ema_epochs=2``. Per seed the
lr finder runs once (when ``lr_max="auto"``) and every arm of that seed that trains SGD
starts from its suggestion; its result is cached in ``<out>/lr_find_seed<seed>.json``. Each
arm trains into ``<out>/<arm>/seed<seed>``; a run whose ``report.json`` exists is not
repeated and one with a checkpoint resumes, so an interrupted comparison continues where it
stopped. ``compare.json`` and ``compare.png`` summarise them
(:func:`accelat_train.reporting.summary.compare_summary`).

>>> base = TrainConfig(dataset="digits", eps=0.1, epochs=8)
>>> summary = compare(base, ["step", "accelat"], [0, 1], "runs/cmp")  # doctest: +SKIP
>>> summary["policies"]["accelat"]["ratio_to_baseline"]  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
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

from accelat_train import choices
from accelat_train.catalogue import CATALOGUE
from accelat_train.config import TrainConfig
from accelat_train.reporting import plots
from accelat_train.reporting.frontier import budget_sweep
from accelat_train.reporting.report import write_json
from accelat_train.reporting.summary import compare_summary
from accelat_train.run_dir import RunDir
from accelat_train.training.build import build
from accelat_train.training.loop import train
from accelat_train.training.lr_range import find_lr
from accelat_train.training.optimizers import optimizer_name

#: The arm every other is compared with: Free AT's step schedule, without averaging (the
#: recipe AccelAT sets out to accelerate); in the torch-free ``choices`` for ``--help``.
BASELINE = choices.BASELINE


def compare(
    base: TrainConfig,
    policies: Sequence[str],
    seeds: Sequence[int],
    out: str | Path,
    *,
    budgets: Sequence[int] | None = None,
    baseline: str = BASELINE,
    target: float | None = None,
    jobs: int = 1,
    threads: int | None = None,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train every arm on every seed from ``base``; write and return the summary.

    With ``budgets`` (epochs, e.g. ``[5, 10, 20, 40]``) the fixed shapes train once per
    budget and the anytime arms once at the largest, and the summary's ``budgets`` section
    holds every point, the fixed shapes' frontier and the anytime arms' frontier ratios
    (:mod:`accelat_train.reporting.frontier`); the time-to-target comparison is taken at
    the largest budget. ``jobs > 1`` trains in that many processes with ``threads`` torch
    threads each (default: the CPUs shared out). ``log`` receives one line per finder result
    and per run. Ratios are to the arm ``baseline`` when it is among them.
    """
    if not seeds:
        raise ValueError("seeds must name at least one seed, got none")
    if budgets is not None and (not budgets or min(budgets) < 1):
        raise ValueError(f"budgets must be epochs >= 1, got {list(budgets)!r}")
    if base.monitor_every is None:  # the curves and the time to target need every epoch
        base = dataclasses.replace(base, monitor_every=1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _line: None)
    if jobs > 1 and threads is None:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    arms = {spec: arm_config(base, spec) for spec in policies}
    fixed = [spec for spec, cfg in arms.items() if CATALOGUE[cfg.policy].budget_shaped]
    finders = [spec for spec, cfg in arms.items() if uses_finder(cfg)]
    found = {s: _lr_find(dataclasses.replace(base, seed=s), finders, out, say) for s in seeds}
    largest = max(budgets) if budgets else base.epochs
    plan = {
        spec: [b for b in sorted(set(budgets or [largest])) if spec in fixed or b == largest]
        for spec in arms
    }
    runs: dict[str, dict[int, list[str]]] = {spec: {b: [] for b in plan[spec]} for spec in arms}
    tasks = []
    for seed in seeds:
        for spec, arm in arms.items():
            for budget in plan[spec]:
                folder = out / _slug(spec) / (f"epochs{budget}" if budgets else "") / f"seed{seed}"
                runs[spec][budget].append(str(folder))
                # LR-free optimizers neither read the finder nor are charged for it.
                shared = found[seed] if spec in finders else {}
                cfg = dataclasses.replace(arm, seed=seed, epochs=budget, out=str(folder), **shared)
                tasks.append((cfg, quiet, threads))
    _map(_train_one, tasks, jobs, before=lambda t: say(f"training {t[0].out}"))
    summary = compare_summary(
        {spec: by_budget[largest] for spec, by_budget in runs.items()},
        target=target,
        baseline=baseline if baseline in policies else None,
        fixed_shape=fixed,
    )
    if budgets:
        summary["budgets"] = budget_sweep(runs, fixed)
        plots.plot_frontier(summary, out / "frontier.png")
    write_json(out / "compare.json", summary)
    plots.plot_compare(summary, out / "compare.png")
    return summary


def _slug(spec: str) -> str:
    """An arm's folder name: ``accelat:lr_min=lr_max/8`` -> ``accelat+lr_min=lr_max_8``."""
    return spec.replace(":", "+").replace("/", "_")


def _lr_find(
    cfg: TrainConfig, policies: Sequence[str], out: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    """The ``lr_max`` / ``lr_find`` fields of this seed's runs (the finder runs at most once)."""
    if not policies:
        return {}
    cached = out / f"lr_find_seed{cfg.seed}.json"
    if cached.is_file():
        shared = json.loads(cached.read_text(encoding="utf-8"))
    else:
        finding = find_lr(build(cfg))
        shared = {**finding.record(), "shared_by": list(policies)}
        finding.plot(out / f"lr_find_seed{cfg.seed}.png")
        write_json(cached, shared)
    say(f"seed {cfg.seed}: lr finder suggests lr_max {shared['lr_max']:.4g}")
    return {"lr_max": shared["lr_max"], "lr_find": shared}


def arm_config(base: TrainConfig, spec: str) -> TrainConfig:
    """One arm of a comparison: ``policy[:field=value...]``, e.g. ``accelat:ema_epochs=2``
    (each value parsed as its ``accelat train`` flag would be)."""
    name, *pairs = spec.split(":")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    changes: dict[str, Any] = {"policy": name}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in fields or key in ("seed", "out", "policy"):
            raise ValueError(f"arm {spec!r}: {pair!r} is not field=value of a TrainConfig field")
        parse = fields[key].metadata.get("type") or _FIELD_TYPES.get(key, str)
        try:
            changes[key] = parse(text)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            raise ValueError(f"arm {spec!r}: {key}={text!r}: {exc}") from None
    return dataclasses.replace(base, **changes)


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError("must be true or false")
    return text.lower() == "true"


_FIELD_TYPES: dict[str, Any] = {"ema_warmup": _bool, "co_check": _bool, "nesterov": _bool}


def uses_finder(cfg: TrainConfig) -> bool:
    """Does this run start from the lr finder's suggestion?"""
    return cfg.lr_max == "auto" and optimizer_name(cfg) == "sgd"


def _train_one(task: tuple[TrainConfig, bool, int | None]) -> str:
    """Train (or resume, or skip a finished) run; top level so a process pool can pickle it."""
    cfg, quiet, threads = task
    if threads is not None:
        torch.set_num_threads(threads)
    run_dir = RunDir(cfg.out)
    if not run_dir.report.is_file():
        train(cfg, quiet=quiet, resume=run_dir.checkpoint.exists())
    return str(run_dir.path)


def _map(
    fn: Callable[[Any], Any], tasks: list[Any], jobs: int, before: Callable[[Any], object]
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
