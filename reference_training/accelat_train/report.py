"""Reports: one run's report.json and curves.png, the comparison of several policies, policy plots.

Everything here reads the files a run leaves behind (``config.json``, ``metrics.jsonl``,
``report.json``), so a comparison can be rebuilt long after the runs ended. Plots use
matplotlib's object API with the Agg canvas (no pyplot, no global figure state); each plot
function saves a PNG and returns the :class:`~matplotlib.figure.Figure` it drew, so callers
and tests can read the plotted data back.

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
  where either is ``None``); ``ratio_to_best_fixed`` likewise against the fixed-shape
  policy (named in ``fixed_shape``) with the fewest mean passes to target.
"""

from __future__ import annotations

import copy
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from accelat_core import Policy, Schedule
from accelat_train.checkpoint import atomic_write, atomic_write_text

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


# -- one run ---------------------------------------------------------------------------
def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's ``metrics.jsonl``, one dict per completed epoch, in file order.

    >>> read_metrics("runs/digits-accelat")[-1]["robust_val_acc"]  # doctest: +SKIP
    0.61
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise ValueError(f"no metrics.jsonl in run directory {str(run_dir)!r} (looked for {path})")
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {number} is not valid JSON ({err})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}: line {number} must be a JSON object, got {row!r}")
            rows.append(row)
    return rows


def write_run_report(run_dir: str | Path, final: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``report.json`` and ``curves.png`` into ``run_dir``; return the report dict.

    ``final`` is the final test evaluation: ``{"clean_acc", "robust_acc", "attacks"}``.
    The report holds the run's config, its length (epochs, cumulative gradient passes,
    training seconds), the best robust validation accuracy and ``final``.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    rows = read_metrics(run_dir)
    if not rows:
        raise ValueError(f"metrics.jsonl in {run_dir} has no epochs; nothing to report")
    last = rows[-1]
    report = {
        "config": config,
        "epochs": int(last["epoch"]),
        "passes": int(last["passes"]),
        "seconds": float(last["seconds"]),
        "best_robust_val_acc": max(float(r["robust_val_acc"]) for r in rows),
        "final": dict(final),
    }
    write_json(run_dir / "report.json", report)
    _save(run_curves_figure(rows, title=_run_title(config)), run_dir / "curves.png")
    return report


def run_curves_figure(rows: Sequence[Mapping[str, Any]], *, title: str = "") -> Figure:
    """Four panels against cumulative gradient passes: lr, momentum, loss, accuracies.

    Vertical dotted lines mark the epochs where a metric-driven policy cut the lr.
    """
    passes = [r["passes"] for r in rows]
    fig = Figure(figsize=(10, 7), layout="constrained")
    (ax_lr, ax_m), (ax_loss, ax_acc) = fig.subplots(2, 2, sharex=True)
    ax_lr.plot(passes, [r["lr"] for r in rows], marker=".", label="lr")
    ax_lr.set_ylabel("learning rate (end of epoch)")
    momentum = [r.get("momentum") for r in rows]
    if any(m is not None for m in momentum):
        ax_m.plot(passes, [math.nan if m is None else m for m in momentum], marker=".")
    else:
        ax_m.text(
            0.5, 0.5, "momentum not driven", ha="center", va="center", transform=ax_m.transAxes
        )
    ax_m.set_ylabel("momentum")
    ax_loss.plot(passes, [r["train_loss"] for r in rows], marker=".", label="train (adversarial)")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    for key, label in (
        ("val_acc", "clean val"),
        ("robust_val_acc", "robust val"),
        ("train_adv_acc", "train (adversarial)"),
    ):
        ax_acc.plot(passes, [r[key] for r in rows], marker=".", label=label)
    ax_acc.set_ylabel("accuracy")
    ax_acc.legend()
    for r in rows:
        if r.get("decision"):
            for ax in (ax_lr, ax_acc):
                ax.axvline(r["passes"], color="grey", linestyle=":", linewidth=1)
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("gradient passes (images)")
    if title:
        fig.suptitle(title)
    return fig


# -- comparison ------------------------------------------------------------------------
def passes_to_target(rows: Sequence[Mapping[str, Any]], target: float) -> tuple[int, float] | None:
    """(passes, seconds) at the first epoch whose ``robust_val_acc >= target``, else ``None``."""
    for r in rows:
        if r["robust_val_acc"] >= target:
            return int(r["passes"]), float(r["seconds"])
    return None


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
         "notes": [str, ...],
         "policies": {name: {
             "passes_to_target": float | None, "passes_to_target_std": float | None,
             "seconds_to_target": float | None, "seconds_to_target_std": float | None,
             "reached": int, "final_clean_acc": float, "final_clean_acc_std": float,
             "final_robust_acc": float, "final_robust_acc_std": float,
             "final_robust_val_acc": float, "ratio_to_baseline": float | None,
             "ratio_to_best_fixed": float | None, "runs": [str, ...],
             "seeds": [{"run", "seed", "passes_to_target", "seconds_to_target",
                        "final_clean_acc", "final_robust_acc", "final_robust_val_acc"}, ...],
             "curve": {"passes": [...], "robust_val_acc": [...]}}}}

    ``final_*_acc`` are the test-set figures from each run's report.json; ``curve`` is the
    robust validation accuracy per epoch, averaged over seeds (cut to the shortest run).
    """
    if not runs:
        raise ValueError("runs must name at least one policy, got an empty mapping")
    loaded: dict[str, list[tuple[Path, dict[str, Any], list[dict[str, Any]]]]] = {}
    for name, dirs in runs.items():
        if isinstance(dirs, (str, Path)) or not dirs:
            raise ValueError(f"runs[{name!r}] must be a non-empty list of run dirs, got {dirs!r}")
        loaded[name] = [(Path(d), _read_report(d), read_metrics(d)) for d in dirs]
    _check_same_setup(loaded)

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

    policies: dict[str, dict[str, Any]] = {}
    for name, group in loaded.items():
        seeds = []
        for run_dir, report, rows in group:
            hit = passes_to_target(rows, target)
            seeds.append(
                {
                    "run": str(run_dir),
                    "seed": report.get("config", {}).get("seed"),
                    "passes_to_target": None if hit is None else hit[0],
                    "seconds_to_target": None if hit is None else hit[1],
                    "final_clean_acc": float(report["final"]["clean_acc"]),
                    "final_robust_acc": float(report["final"]["robust_acc"]),
                    "final_robust_val_acc": float(rows[-1]["robust_val_acc"]),
                }
            )
        entry: dict[str, Any] = {}
        for key in ("passes_to_target", "seconds_to_target"):
            values = [s[key] for s in seeds]
            complete = all(v is not None for v in values)
            entry[key] = statistics.fmean(values) if complete else None
            entry[f"{key}_std"] = _std(values) if complete else None
        entry["reached"] = sum(s["passes_to_target"] is not None for s in seeds)
        for key in ("final_clean_acc", "final_robust_acc"):
            values = [s[key] for s in seeds]
            entry[key] = statistics.fmean(values)
            entry[f"{key}_std"] = _std(values)
        entry["final_robust_val_acc"] = final_val[name]
        entry["runs"] = [s["run"] for s in seeds]
        entry["seeds"] = seeds
        entry["curve"] = _mean_curve([rows for _, _, rows in group])
        policies[name] = entry

    notes = []
    if baseline is not None and baseline not in policies:
        notes.append(f"baseline {baseline!r} is not among the policies; ratio_to_baseline is null")
    fixed = [n for n in fixed_shape if n in policies]
    reaching_fixed = [n for n in fixed if policies[n]["passes_to_target"] is not None]
    best_fixed = min(reaching_fixed, key=lambda n: policies[n]["passes_to_target"], default=None)
    if fixed and best_fixed is None:
        notes.append("no fixed-shape policy reached the target on every seed")
    base = policies.get(baseline, {}).get("passes_to_target") if baseline is not None else None
    best = policies[best_fixed]["passes_to_target"] if best_fixed is not None else None
    for name, entry in policies.items():
        mine = entry["passes_to_target"]
        entry["ratio_to_baseline"] = _ratio(mine, base)
        entry["ratio_to_best_fixed"] = _ratio(mine, best)
        if entry["reached"] < len(entry["seeds"]):
            notes.append(
                f"{name}: {entry['reached']} of {len(entry['seeds'])} seeds reached the target;"
                " passes/seconds to target are null"
            )
    return {
        "target": target,
        "target_rule": rule,
        "baseline": baseline,
        "best_fixed": best_fixed,
        "notes": notes,
        "policies": policies,
    }


def format_table(summary: Mapping[str, Any]) -> str:
    """A Markdown table of a ``compare_summary`` dict, mean ± std over seeds per policy.

    Accuracies in percent; passes in thousands of image passes; "-" where a policy did not
    reach the target on every seed (the "reached" column says on how many it did).
    """
    head = (
        "| policy | passes to target (k) | seconds to target | reached | clean test acc (%) "
        "| robust test acc (%) | × " + str(summary.get("baseline")) + " | × best fixed |"
    )
    lines = [head, "|" + "---|" * 8]
    for name, p in summary["policies"].items():
        passes = _pm(p["passes_to_target"], p["passes_to_target_std"], scale=1e-3, digits=1)
        seconds = _pm(p["seconds_to_target"], p["seconds_to_target_std"], digits=1)
        clean = _pm(p["final_clean_acc"], p["final_clean_acc_std"], scale=100, digits=1)
        robust = _pm(p["final_robust_acc"], p["final_robust_acc_std"], scale=100, digits=1)
        reached = f"{p['reached']}/{len(p['seeds'])}"
        ratios = [_fmt(p.get(k), digits=2) for k in ("ratio_to_baseline", "ratio_to_best_fixed")]
        cells = [name, passes, seconds, reached, clean, robust, *ratios]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Target: robust validation accuracy ≥ {summary['target']:.4f} ({summary['target_rule']})."
    )
    if summary.get("best_fixed"):
        lines.append(f"Best fixed-shape policy: {summary['best_fixed']}.")
    lines.extend(f"Note: {n}" for n in summary.get("notes", []))
    return "\n".join(lines) + "\n"


def plot_compare(summary: Mapping[str, Any], path: str | Path, *, title: str = "") -> Figure:
    """Robust validation accuracy against gradient passes, one curve per policy (seed mean).

    A dashed horizontal line marks the target. Saves a PNG at ``path``; returns the figure.
    """
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    for name, p in summary["policies"].items():
        curve = p["curve"]
        n = len(p["seeds"])
        ax.plot(curve["passes"], curve["robust_val_acc"], marker=".", label=f"{name} (n={n})")
    ax.axhline(summary["target"], color="black", linestyle="--", linewidth=1, label="target")
    ax.set_xlabel("gradient passes (images)")
    ax.set_ylabel("robust validation accuracy")
    ax.legend()
    if title:
        ax.set_title(title)
    _save(fig, Path(path))
    return fig


def plot_policy(
    policy: Policy,
    steps: int,
    path: str | Path,
    *,
    metrics: Sequence[float] | None = None,
    title: str = "",
) -> Figure:
    """The lr (and momentum, if driven) of ``policy`` over ``steps`` steps (the paper's figs 6-11).

    A fixed-shape policy is drawn from its closed form ``at(0) .. at(steps - 1)``. Any other
    policy is deep-copied (the caller's object is not advanced) and stepped: the value before
    the first step, then ``step(metrics[i])`` for ``i < steps - 1``. A metric-driven policy
    needs ``metrics`` with at least ``steps - 1`` values. Saves a PNG; returns the figure.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if isinstance(policy, Schedule):
        hypers = [policy.at(t) for t in range(steps)]
    else:
        if policy.needs_metric and (metrics is None or len(metrics) < steps - 1):
            have = "none" if metrics is None else len(metrics)
            raise ValueError(
                f"{type(policy).__name__} is metric-driven: plot_policy needs metrics with at "
                f"least steps - 1 = {steps - 1} values, got {have}"
            )
        clone = copy.deepcopy(policy)
        hypers = [clone.hyper]
        for i in range(steps - 1):
            hypers.append(clone.step(None if metrics is None else float(metrics[i])))
    t = list(range(steps))
    momentum = [h.momentum for h in hypers]
    drives_momentum = any(m is not None for m in momentum)
    fig = Figure(figsize=(7, 5 if drives_momentum else 3), layout="constrained")
    axes = fig.subplots(2 if drives_momentum else 1, 1, sharex=True, squeeze=False)[:, 0]
    axes[0].plot(t, [h.lr for h in hypers], label="lr")
    axes[0].set_ylabel("learning rate")
    if drives_momentum:
        axes[1].plot(t, [math.nan if m is None else m for m in momentum], color="tab:orange")
        axes[1].set_ylabel("momentum")
    axes[-1].set_xlabel("step")
    axes[0].set_title(title or repr(policy))
    _save(fig, Path(path))
    return fig


# -- helpers ---------------------------------------------------------------------------
def _read_report(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "report.json"
    if not path.is_file():
        raise ValueError(f"no report.json in run directory {str(run_dir)!r}; did the run finish?")
    return json.loads(path.read_text(encoding="utf-8"))


def _check_same_setup(loaded: Mapping[str, list[tuple[Path, dict[str, Any], Any]]]) -> None:
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
    return {
        "passes": [statistics.fmean(rows[i]["passes"] for rows in runs) for i in range(n)],
        "robust_val_acc": [
            statistics.fmean(rows[i]["robust_val_acc"] for rows in runs) for i in range(n)
        ],
    }


def _std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _fmt(value: float | None, *, scale: float = 1.0, digits: int = 3) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def _pm(mean: float | None, std: float | None, *, scale: float = 1.0, digits: int = 3) -> str:
    if mean is None:
        return "-"
    return f"{mean * scale:.{digits}f} ± {(std or 0.0) * scale:.{digits}f}"


def _run_title(config: Mapping[str, Any]) -> str:
    parts = [str(config[k]) for k in ("dataset", "model", "method", "policy") if k in config]
    return " / ".join(parts)


def _save(fig: Figure, path: Path) -> None:
    """Save a PNG atomically: a crash never leaves a half-written image under the final name."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (temp file, fsync, rename)."""
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
