"""The comparison of several policies: ``compare.json`` from the run folders it summarises.

Everything here reads the files a run leaves behind (``config.json``, ``metrics.jsonl``,
``report.json``), so a comparison can be rebuilt long after the runs ended.

The comparison rule (``compare_summary``), in one place:

* target: ``0.95 * max over policies of mean_over_seeds(final robust_val_acc)`` unless given.
  It is taken on the robust *validation* accuracy, the same quantity as the curve it is
  compared with (the final test attack is stronger and runs on another split, so a target
  taken from it would not be in the curve's units).
* passes (seconds) to target of one run: the cumulative ``passes`` (``seconds``) of the first
  epoch whose ``robust_val_acc >= target``; ``None`` when no epoch reaches it.
* per policy: the mean and the sample standard deviation (``ddof=1``; 0 for one seed) over
  seeds. The mean is ``None`` unless *every* seed reached the target: a policy that misses
  the target on some seed is not credited with the seeds that happened to reach it.
  ``"reached"`` says how many seeds did.
* ``ratio_to_baseline``: the policy's mean passes to target over the baseline's (``None``
  where either is ``None``); ``ratio_to_best_fixed`` likewise against the budget-shaped
  policy (named in ``fixed_shape``: a shape fitted to the run's budget, such as step or
  onecycle; constant is not one) with the fewest mean passes to target.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from accelat_core import from_config
from accelat_train.catalogue import CATALOGUE
from accelat_train.reporting.report import read_metrics, read_report

#: Fraction of the best final robust validation accuracy that defines the default target.
TARGET_FRACTION = 0.95

# Config keys that must agree between the runs of one comparison (a fair race).
_SAME_SETUP_KEYS = (
    "dataset",
    "model",
    "method",
    "eps",
    "replays",
    "pgd_steps",
    "epochs",
    "batch_size",
    "train_size",
    "val_size",
)


def first_at_target(rows: Sequence[Mapping[str, Any]], target: float) -> Mapping[str, Any] | None:
    """The first epoch's row whose ``robust_val_acc >= target``, else ``None``."""
    return next(
        (r for r in rows if r["robust_val_acc"] is not None and r["robust_val_acc"] >= target),
        None,
    )


def compare_summary(
    runs: Mapping[str, Sequence[str | Path]],
    *,
    target: float | None = None,
    baseline: str | None = "step",
    fixed_shape: Iterable[str] = (),
) -> dict[str, Any]:
    """The compare.json dict for ``runs = {policy name: [run dir per seed, ...]}``.

    See the module docstring for the rule. Shape::

        {"target": float, "target_rule": str, "baseline": "step", "best_fixed": str | None,
         "fixed_shape": [str, ...], "notes": [str, ...],
         "policies": {name: {
             "passes_to_target": float | None, "passes_to_target_std": float | None,
             "seconds_to_target": float | None, "seconds_to_target_std": float | None,
             "reached": int, "final_clean_acc": float, "final_clean_acc_std": float,
             "final_robust_acc": float, "final_robust_acc_std": float,
             "final_robust_val_acc": float, "ratio_to_baseline": float | None,
             "ratio_to_best_fixed": float | None, "runs": [str, ...],
             "total_passes_to_target": float | None, "passes_spent": float,
             "best_robust_acc": float | None, "total_ratio_to_baseline": {...},
             "seeds": [{"run", "seed", "passes_to_target", "seconds_to_target",
                        "total_passes_to_target", "passes_spent", "final_clean_acc",
                        "final_robust_acc", "best_robust_acc", "final_robust_val_acc",
                        "stopped": {"epoch", "reason", "message"}}, ...],
             "curve": {"passes": [...], "robust_val_acc": [...]}}}}

    ``fixed_shape`` lists the budget-shaped arms (a shape scaled to the run's budget: step,
    onecycle, ...; not constant, nor the metric-driven or LR-free ones) and ``best_fixed``
    the one with the fewest passes to target. ``stopped`` is why and when each run ended
    and ``final_*_acc`` its test-set figures (both from its report.json); ``curve`` is the
    robust validation accuracy per epoch, averaged over seeds (cut to the shortest run).
    """
    loaded = _load_runs(runs)
    final_val = {
        name: statistics.fmean(float(rows[-1]["robust_val_acc"]) for _, _, rows in group)
        for name, group in loaded.items()
    }
    if target is None:
        target = TARGET_FRACTION * max(final_val.values())
        rule = f"{TARGET_FRACTION} x best mean final robust_val_acc ({max(final_val.values()):.4f})"
    else:
        rule = "given"
    target = float(target)
    policies = {
        name: _policy_entry(group, target, final_val[name]) for name, group in loaded.items()
    }
    fixed = [n for n in fixed_shape if n in policies]
    best_fixed, notes = _add_ratios(policies, baseline, fixed)
    return {
        "target": target,
        "target_rule": rule,
        "baseline": baseline,
        "best_fixed": best_fixed,
        "fixed_shape": fixed,
        "notes": notes,
        "policies": policies,
    }


# -- helpers ---------------------------------------------------------------------------
# One run as compare_summary reads it: (run dir, its report.json, its metrics.jsonl rows).
_Run = tuple[Path, dict[str, Any], list[dict[str, Any]]]


def _load_runs(runs: Mapping[str, Sequence[str | Path]]) -> dict[str, list[_Run]]:
    """Every run of every policy, read from disk and checked to share one setup."""
    if not runs:
        raise ValueError("runs must name at least one policy, got an empty mapping")
    loaded: dict[str, list[_Run]] = {}
    for name, dirs in runs.items():
        if isinstance(dirs, (str, Path)) or not dirs:
            raise ValueError(f"runs[{name!r}] must be a non-empty list of run dirs, got {dirs!r}")
        loaded[name] = [(Path(d), read_report(d), read_metrics(d)) for d in dirs]
    _check_same_setup(loaded)
    return loaded


def _policy_entry(group: Sequence[_Run], target: float, final_val: float) -> dict[str, Any]:
    """One policy's compare.json entry, all but its ratios: the seeds and their mean ± std."""
    seeds = [_seed_entry(run_dir, report, rows, target) for run_dir, report, rows in group]
    entry: dict[str, Any] = {}
    for key in ("passes_to_target", "seconds_to_target", "total_passes_to_target"):
        entry[key], entry[f"{key}_std"] = _mean_std([s[key] for s in seeds])
    entry["passes_spent"], entry["passes_spent_std"] = _mean_std([s["passes_spent"] for s in seeds])
    best = [s["best_robust_acc"] for s in seeds]
    entry["best_robust_acc"] = None if None in best else statistics.fmean(best)
    entry["reached"] = sum(s["passes_to_target"] is not None for s in seeds)
    for key in ("final_clean_acc", "final_robust_acc"):
        entry[key], entry[f"{key}_std"] = _mean_std([s[key] for s in seeds])
    entry["final_robust_val_acc"] = final_val
    entry["runs"] = [s["run"] for s in seeds]
    entry["seeds"] = seeds
    entry["curve"] = _mean_curve([rows for _, _, rows in group])
    return entry


def _seed_entry(
    run_dir: Path, report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], target: float
) -> dict[str, Any]:
    hit = first_at_target(rows, target)
    config = report.get("config", {})
    best = report.get("best")
    return {
        "run": str(run_dir),
        "seed": config.get("seed"),
        "passes_to_target": None if hit is None else int(hit["passes"]),
        "seconds_to_target": None if hit is None else float(hit["seconds"]),
        "total_passes_to_target": None if hit is None else charged_passes(config, hit),
        "passes_spent": charged_passes(config, rows[-1]),
        "final_clean_acc": float(report["final"]["clean_acc"]),
        "final_robust_acc": float(report["final"]["robust_acc"]),
        "best_robust_acc": None if best is None else float(best["test"]["robust_acc"]),
        "final_robust_val_acc": float(rows[-1]["robust_val_acc"]),
        "stopped": report.get("stopped"),
    }


def charged_passes(config: Mapping[str, Any], row: Mapping[str, Any]) -> float:
    """Every pass a run needed up to ``row``'s epoch: its training passes, the overheads its
    method needs (the overfitting check, schedule-free BatchNorm refreshes), the monitor's
    passes for each metric the run acts on (:func:`metrics_read`) that costs passes (not
    ``train_adv_acc``, which training measures anyway), and the lr finder's passes when it
    started from the finder's suggestion (each policy would have to run it alone)."""
    total = float(row["passes"]) + float(row.get("overhead_passes", 0.0))
    total += sum(monitor_cost(metric, row) for metric in metrics_read(config))
    finder = config.get("lr_find") or {}
    return total + float(finder.get("passes", 0))


def metrics_read(config: Mapping[str, Any]) -> set[str]:
    """The monitored metrics a run acts on: its policy's (when the policy reads one) and
    early stopping's (``early_stop`` > 0). A metric only logged is not among them."""
    read = {str(config.get("monitor"))} if reads_monitor(config) else set()
    if config.get("early_stop"):
        read.add(str(config.get("early_stop_monitor", "robust_val_acc")))
    return read


def monitor_cost(monitor: str | None, row: Mapping[str, Any]) -> float:
    """What reading ``monitor`` cost up to ``row``: nothing for ``train_adv_acc`` (training
    measures it anyway), the clean validation forwards for ``val_acc``, the PGD monitor for
    ``robust_val_acc`` (a row from before ``val_passes`` was counted charges the whole
    monitor to it, and nothing to ``val_acc``)."""
    val = float(row.get("val_passes", 0.0))
    if monitor == "val_acc":
        return val
    if monitor == "robust_val_acc":
        return float(row.get("monitor_passes", 0.0)) - val
    return 0.0


def reads_monitor(config: Mapping[str, Any]) -> bool:
    """Does the run's policy step on the monitored metric?"""
    if config.get("policy_config"):
        return bool(from_config(config["policy_config"]).needs_metric)
    entry = CATALOGUE.get(str(config.get("policy")))
    return entry is not None and entry.reads_metric


def _add_ratios(
    policies: Mapping[str, dict[str, Any]], baseline: str | None, fixed_shape: Iterable[str]
) -> tuple[str | None, list[str]]:
    """Set every entry's ``ratio_to_baseline`` and ``ratio_to_best_fixed``.

    Returns the best fixed-shape policy (fewest mean passes to target; None if none reached
    it on every seed) and the notes on what could not be compared.
    """
    notes = []
    if baseline is not None and baseline not in policies:
        notes.append(f"baseline {baseline!r} is not among the policies; ratio_to_baseline is null")
    fixed = [n for n in fixed_shape if n in policies]
    reaching_fixed = [n for n in fixed if policies[n]["passes_to_target"] is not None]
    best_fixed = min(reaching_fixed, key=lambda n: policies[n]["passes_to_target"], default=None)
    if fixed and best_fixed is None:
        notes.append("no budget-shaped schedule reached the target on every seed")
    base = policies.get(baseline, {}).get("passes_to_target") if baseline is not None else None
    best = policies[best_fixed]["passes_to_target"] if best_fixed is not None else None
    for name, entry in policies.items():
        mine = entry["passes_to_target"]
        entry["ratio_to_baseline"] = _ratio(mine, base)
        entry["ratio_to_best_fixed"] = _ratio(mine, best)
        if baseline in policies:
            assert baseline is not None  # policies' keys are str
            entry["total_ratio_to_baseline"] = paired_ratios(entry, policies[baseline])
        if entry["reached"] < len(entry["seeds"]):
            notes.append(
                f"{name}: {entry['reached']} of {len(entry['seeds'])} seeds reached the target;"
                " passes/seconds to target are null"
            )
    return best_fixed, notes


#: Bootstrap resamples of the paired ratios, and their generator's seed (fixed: the interval
#: of a given set of runs never changes).
BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 0


def paired_ratios(entry: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    """Per seed, ``total_passes_to_target`` of ``entry`` over the baseline's on the same
    seed; their median and a bootstrap 90 % interval of the median.

    A baseline that missed the target on a seed counts as its whole ``passes_spent``; a
    policy that missed it has no ratio there (``None``), which counts as infinitely slow
    (a median or bound that lands on one is ``None``).
    """
    base = {s["seed"]: s for s in baseline["seeds"]}
    per_seed = []
    for s in entry["seeds"]:
        b = base.get(s["seed"])
        if b is None:
            continue
        denominator = b["total_passes_to_target"] or b["passes_spent"]
        mine = s["total_passes_to_target"]
        per_seed.append(math.inf if mine is None else mine / denominator)
    if not per_seed:
        return {"median": None, "ci90": [None, None], "per_seed": []}
    rng = random.Random(BOOTSTRAP_SEED)
    medians = sorted(
        statistics.median(rng.choices(per_seed, k=len(per_seed))) for _ in range(BOOTSTRAP_SAMPLES)
    )
    low = medians[int(0.05 * BOOTSTRAP_SAMPLES)]
    high = medians[int(0.95 * BOOTSTRAP_SAMPLES) - 1]
    return {
        "median": _finite(statistics.median(per_seed)),
        "ci90": [_finite(low), _finite(high)],
        "per_seed": [_finite(r) for r in per_seed],
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _check_same_setup(loaded: Mapping[str, list[_Run]]) -> None:
    """Refuse to compare runs that differ in data, model, method or budget."""
    seen: dict[str, tuple[Any, Path]] = {}
    for group in loaded.values():
        for run_dir, report, _ in group:
            config = report.get("config", {})
            for key in _SAME_SETUP_KEYS:
                if key not in config:
                    continue
                if key in seen and seen[key][0] != config[key]:
                    raise ValueError(
                        f"runs differ in {key!r}: {seen[key][0]!r} in {seen[key][1]} but "
                        f"{config[key]!r} in {run_dir}; compare policies on the same setup"
                    )
                seen.setdefault(key, (config[key], run_dir))


def _mean_curve(runs: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, list[float]]:
    n = min(len(rows) for rows in runs)
    keep = [i for i in range(n) if all(rows[i]["robust_val_acc"] is not None for rows in runs)]
    return {
        "passes": [statistics.fmean(rows[i]["passes"] for rows in runs) for i in keep],
        "robust_val_acc": [
            statistics.fmean(rows[i]["robust_val_acc"] for rows in runs) for i in keep
        ],
    }


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1; 0 for one value), or (None, None) if any value is None."""
    if any(v is None for v in values):
        return None, None
    known = cast("Sequence[float]", values)  # no None: checked above
    return statistics.fmean(known), statistics.stdev(known) if len(known) > 1 else 0.0


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b
