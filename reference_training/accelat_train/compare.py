"""The one comparison engine behind ``accelat compare``, ``accelat demo`` and the acceleration
study (benchmarks/acceleration.py): several policies, several seeds, the same budget.

Each *arm* is a policy name with optional changes to the base config,
``policy[:field=value...]`` (:func:`arm_config`), e.g. ``accelat:ema_epochs=2``. Per seed the
lr finder runs once (when ``lr_max="auto"``) and every arm of that seed that trains SGD
starts from its suggestion; its result is cached in ``<out>/lr_find_seed<seed>.json`` with
the setting it was made for, and a cache made for another setting is refused. Each arm trains
into ``<out>/<arm>/seed<seed>``. A folder that already holds a run is reused only when the
run's ``config.json`` is the config the comparison asks for
(:meth:`~accelat_train.config.TrainConfig.differences`): then a finished run is not repeated and an
unfinished one resumes, so an interrupted comparison continues where it stopped; a run of
another config is refused before any training, naming the folder and every field that
differs. ``compare.json`` and ``compare.png`` summarise them
(:func:`accelat_train.reporting.summary.compare_summary`).

>>> base = TrainConfig(dataset="digits", eps=0.1, epochs=8)
>>> summary = compare(base, ["step", "accelat"], [0, 1], "runs/cmp")  # doctest: +SKIP
>>> summary["policies"]["accelat"]["ratio_to_baseline"]  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from accelat_train.catalogue import BASELINE, CATALOGUE
from accelat_train.config import TrainConfig, config_differences, finding_differences
from accelat_train.reporting import plots
from accelat_train.reporting.frontier import budget_sweep
from accelat_train.reporting.report import write_json
from accelat_train.reporting.summary import compare_summary
from accelat_train.run_dir import RunDir, RunDirError, aside_name, read_json
from accelat_train.training.build import build
from accelat_train.training.loop import train
from accelat_train.training.lr_finder import Finding, find_lr
from accelat_train.training.resume import refusal


def compare(
    base: TrainConfig,
    policies: Sequence[str],
    seeds: Sequence[int],
    out: str | Path,
    *,
    budgets: Sequence[int] | None = None,
    baseline: str | None = None,
    target: float | None = None,
    jobs: int = 1,
    threads: int | None = None,
    quiet: bool = True,
    restart: bool = False,
    log: Callable[[str], None] | None = None,
    after_run: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Train every arm on every seed from ``base``; write and return the summary.

    With ``budgets`` (epochs, e.g. ``[5, 10, 20, 40]``) the fixed shapes train once per
    budget and the anytime arms once at the largest, and the summary's ``budgets`` section
    holds every point, the fixed shapes' frontier and the anytime arms' frontier ratios
    (:mod:`accelat_train.reporting.frontier`); the time-to-target comparison is taken at
    the largest budget. ``jobs > 1`` trains in that many processes with ``threads`` torch
    threads each (default: the CPUs shared out). ``log`` receives one line per finder result
    and per run; ``after_run`` each run's folder as soon as that run has finished (a study
    commits its small files then). Ratios are to the arm ``baseline`` (default
    :data:`BASELINE` when it is among the policies). A run (or cached finder result) in
    ``out`` made with other settings is refused, or with ``restart=True`` moved aside to
    ``<folder>.previous-N`` and made again. Bad arguments are refused before any work
    (:func:`check_comparison`).
    """
    baseline = check_comparison(policies, seeds, budgets, baseline, target)
    out = Path(out)
    held = RunDir(out).held()
    if held:  # a training run's own folder: its runs would go in among its files
        why = f"holds a training run ({', '.join(p.name for p in held)}), not a comparison"
        raise RunDirError(f"out {out} {why}; choose another out", f"--out {out} {why}; "
                          "choose another --out")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _line: None)
    if jobs > 1 and threads is None:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    arms = {spec: dataclasses.replace(base, **arm_changes(spec)) for spec in policies}
    fixed = [spec for spec, cfg in arms.items() if CATALOGUE[cfg.policy].budget_shaped]
    finders = [spec for spec, cfg in arms.items() if cfg.uses_finder]
    seeded = {seed: dataclasses.replace(base, seed=seed) for seed in seeds}
    settings = {seed: cfg.finder_setting() for seed, cfg in seeded.items()}
    found = _lr_finds(settings, lambda seed: find_lr(build(seeded[seed])), finders, out, say,
                      restart=restart)  # fmt: skip
    largest = max(budgets) if budgets else base.epochs
    plan = {
        spec: [b for b in sorted(set(budgets or [largest])) if spec in fixed or b == largest]
        for spec in arms
    }
    runs: dict[str, dict[int, list[str]]] = {spec: {b: [] for b in plan[spec]} for spec in arms}
    configs = []
    for seed in seeds:
        for spec, arm in arms.items():
            for budget in plan[spec]:
                folder = out / _slug(spec) / (f"epochs{budget}" if budgets else "") / f"seed{seed}"
                runs[spec][budget].append(str(folder))
                # LR-free optimizers neither read the finder nor are charged for it.
                shared = found[seed] if spec in finders else {}
                configs.append(
                    dataclasses.replace(arm, seed=seed, epochs=budget, out=str(folder), **shared)
                )
    by_out = {cfg.out: cfg for cfg in configs}
    tasks = [
        (out, functools.partial(train, by_out[out], quiet=quiet, resume=not again,
                                restart=again), threads)
        for out, again in _to_train([(cfg.out, cfg.to_json()) for cfg in configs], restart)
    ]  # fmt: skip
    done = (lambda path: after_run(Path(path))) if after_run else (lambda _path: None)
    _map(_train_one, tasks, jobs, before=lambda t: say(f"training {t[0]}"), after=done)
    summary = compare_summary(
        {spec: by_budget[largest] for spec, by_budget in runs.items()},
        target=target, baseline=baseline, fixed_shape=fixed,
    )  # fmt: skip
    if budgets:
        summary["budgets"] = budget_sweep(runs, fixed)
        plots.plot_frontier(summary, out / "frontier.png")
    write_json(out / "compare.json", summary)
    plots.plot_compare(summary, out / "compare.png")
    return summary


def check_comparison(
    policies: Sequence[str],
    seeds: Sequence[int],
    budgets: Sequence[int] | None,
    baseline: str | None,
    target: float | None,
) -> str | None:
    """Refuse a comparison that cannot mean what it says, before any work: ``ValueError``
    whose message begins with the parameter's name (so ``--`` makes it the flag's). Returns
    the baseline: ``baseline``, which must be among ``policies``, or by default
    :data:`BASELINE` when it is among them (else None: no ratios)."""
    for name, values in (("policies", policies), ("seeds", seeds), ("budgets", budgets)):
        if values is None:
            continue
        if not values:
            raise ValueError(f"{name} must name at least one, got none")
        repeated = sorted({v for v in values if list(values).count(v) > 1}, key=str)
        if repeated:
            raise ValueError(f"{name} must name each once, got {', '.join(map(str, repeated))} "
                             f"twice in {','.join(map(str, values))}")  # fmt: skip
    if budgets is not None and min(budgets) < 1:
        raise ValueError(f"budgets must be epochs >= 1, got {','.join(map(str, budgets))}")
    if target is not None and not (math.isfinite(target) and 0 < target <= 1):
        raise ValueError(f"target must be a robust validation accuracy in (0, 1], got {target!r}")
    if baseline is None:
        return BASELINE if BASELINE in policies else None
    if baseline not in policies:
        raise ValueError(
            f"baseline {baseline!r} is not among the policies ({', '.join(policies)}): add it "
            "to them, or name one of them"
        )
    return baseline


def _slug(spec: str) -> str:
    """An arm's folder name: ``accelat:lr_min=lr_max/8`` -> ``accelat+lr_min=lr_max_8``."""
    return spec.replace(":", "+").replace("/", "_")


def _lr_finds(
    settings: dict[int, dict[str, Any]], find: Callable[[int], Finding],
    policies: Sequence[str], out: Path, say: Callable[[str], None], *, restart: bool,
) -> dict[int, dict[str, Any]]:  # fmt: skip
    """The ``lr_max`` / ``lr_find`` fields of each seed's runs that read the finder: one
    range test per seed (``find(seed)``), cached in ``<out>/lr_find_seed<seed>.json`` with
    the setting it was made for (``settings[seed]``). Every cache is checked before any test
    runs: one made for another setting is refused, or with ``restart`` moved aside (its plot
    too) and made again."""
    if not policies:
        return {seed: {} for seed in settings}
    cached = {
        seed: _cached_finding(setting, seed, out, restart=restart)
        for seed, setting in settings.items()
    }
    found = {}
    for seed, setting in settings.items():
        shared = cached[seed]
        if shared is None:
            finding = find(seed)
            shared = {**finding.record(), "setting": setting, "shared_by": list(policies)}
            finding.plot(_finder_file(out, seed, ".png"))
            write_json(_finder_file(out, seed, ".json"), shared)
        say(f"seed {seed}: lr finder suggests lr_max {shared['lr_max']:.4g}")
        found[seed] = {"lr_max": "auto", "lr_find": shared}
    return found


def _finder_file(out: Path, seed: int, suffix: str) -> Path:
    return out / f"lr_find_seed{seed}{suffix}"


def _cached_finding(
    setting: dict[str, Any], seed: int, out: Path, *, restart: bool
) -> dict[str, Any] | None:
    """The cached range test of ``seed``, if any. One made for another ``setting`` is
    refused, naming the file and every field that differs; with ``restart`` it is moved
    aside (``lr_find_seed<seed>.previous-N.json``, and its plot) and None returned."""
    path = _finder_file(out, seed, ".json")
    if not path.is_file():
        return None
    shared = read_json(path)
    differs = finding_differences(shared.get("setting"), setting)
    if not differs and isinstance(shared.get("lr_max"), float):
        return shared
    if not restart:
        raise refusal(
            f"{path} holds the lr finder's result for another setting "
            f"({'; '.join(differs) or 'no lr_max'}); choose another $out, or pass $restart to "
            "move it aside and run the range test again"
        )
    for suffix in (".json", ".png"):
        earlier = _finder_file(out, seed, suffix)
        if earlier.exists():
            os.rename(earlier, aside_name(earlier, suffix))
    return None


def arm_changes(spec: str) -> dict[str, Any]:
    """What one arm of a comparison changes in the base config: ``policy[:field=value...]``,
    e.g. ``accelat:ema_epochs=2`` (each value parsed as its ``accelat train`` flag would be).

    >>> arm_changes("accelat:ema_epochs=2")
    {'policy': 'accelat', 'ema_epochs': 2.0}
    """
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
    return changes


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError("must be true or false")
    return text.lower() == "true"


_FIELD_TYPES: dict[str, Any] = {"ema_warmup": _bool, "co_check": _bool, "nesterov": _bool}


def _to_train(
    wanted: Sequence[tuple[str, dict[str, Any]]], restart: bool
) -> list[tuple[str, bool]]:
    """The run folders still to train (or to resume), of the ``(folder, config as
    config.json holds it)`` wanted, each with whether it starts over: a finished run of the
    same config is reused. A folder holding a run of another config is refused, before any
    training, in one error naming each such folder and every field that differs; with
    ``restart`` it is trained again, the earlier run moved aside."""
    todo, refused = [], []
    for out, config in wanted:
        run_dir = RunDir(out)
        finished = run_dir.report.is_file()
        differs = []
        if run_dir.config.is_file():
            differs = config_differences(config, run_dir.read_config(), evaluated=finished)
        if differs and not restart:
            refused.append(f"{run_dir.path} ({'; '.join(differs)})")
        elif differs or not finished:
            todo.append((out, bool(differs)))
    if refused:
        raise refusal(
            f"{len(refused)} run folder(s) hold a run of other settings: "
            + ", ".join(refused)
            + "; choose another $out, or pass $restart to move them aside and train them again"
        )
    return todo


def _train_one(task: tuple[str, Callable[[], Path], int | None]) -> str:
    """Train, resume or start over a run (``(folder, run, threads)``: ``run`` is the call of
    :func:`~accelat_train.training.loop.train`) with ``threads`` torch threads; top level so
    a process pool can pickle it."""
    _, run, threads = task
    if threads is not None:
        torch.set_num_threads(threads)
    return str(run())


def _map(
    fn: Callable[[Any], Any],
    tasks: list[Any],
    jobs: int,
    before: Callable[[Any], object],
    after: Callable[[Any], object],
) -> None:
    """``fn(t)`` for every task, in ``jobs`` processes when ``jobs > 1``; ``before(t)`` is
    called ahead of each task (of all of them, when they run in parallel), ``after(result)``
    as each one finishes."""
    if jobs <= 1 or len(tasks) <= 1:
        for t in tasks:
            before(t)
            after(fn(t))
        return
    for t in tasks:
        before(t)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        for future in as_completed([pool.submit(fn, t) for t in tasks]):
            after(future.result())


def stderr_log(line: str) -> None:
    """A ``log`` for :func:`compare` that prints to stderr."""
    print(line, file=sys.stderr)
