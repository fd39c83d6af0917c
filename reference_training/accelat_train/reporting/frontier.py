"""The paper's protocol: a budget sweep, the frontier of the fixed shapes, and frontier ratios.

A fixed-shape policy (step, onecycle, ...) anneals only at the end of its budget, so it is
run once per budget with its shape scaled to that budget; an anytime policy (AccelAT,
plateau, schedule-free SGD, ...) runs once, at the largest budget, with its own stop. Each
run is one point: (total passes spent, best-checkpoint robust test accuracy), averaged over
seeds per policy and budget. ``passes`` counts everything the run needed
(:func:`accelat_train.reporting.summary.charged_passes`: training, the monitor when read,
method overheads, the lr finder when used).

- The **frontier** of the fixed shapes: at each budget, the fixed-shape point with the best
  accuracy; made monotone along passes (a budget never does worse than a smaller one could
  have stopped at), it is the accuracy a user who picks the best fixed shape and budget in
  hindsight gets for its passes.
- The **frontier ratio** of a point ``(p, a)``: ``p / P(a)`` where ``P(a)`` is the passes the
  frontier needs to reach accuracy ``a``, linear between its points. Below 1: no fixed shape
  reaches ``a`` in as few passes. When ``a`` is below the frontier's first point, ``P(a)`` is
  at most that point's passes and the ratio is a lower bound (``bound: "lower"``); when the
  frontier never reaches ``a``, there is no ratio (``None``, and a note says so).

>>> front = [{"passes": 100.0, "robust_acc": 0.4}, {"passes": 200.0, "robust_acc": 0.5}]
>>> frontier_ratio(120.0, 0.45, front)["ratio"]  # the frontier needs 150 passes for 0.45
0.8
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from accelat_train.reporting.report import read_metrics, read_report
from accelat_train.reporting.summary import charged_passes

#: ``{arm: {budget in epochs: [run dir per seed]}}``
Runs = Mapping[str, Mapping[int, Sequence[str | Path]]]


def budget_points(runs: Runs) -> dict[str, list[dict[str, Any]]]:
    """Per arm, one point per budget: mean total passes spent and mean best-checkpoint robust
    test accuracy over its seeds (and the seeds' own values)."""
    points: dict[str, list[dict[str, Any]]] = {}
    for arm, by_budget in runs.items():
        points[arm] = []
        for budget in sorted(by_budget):
            seeds = [_run_point(d) for d in by_budget[budget]]
            points[arm].append(
                {
                    "budget": budget,
                    "passes": statistics.fmean(s["passes"] for s in seeds),
                    "robust_acc": statistics.fmean(s["robust_acc"] for s in seeds),
                    "seeds": seeds,
                }
            )
    return points


def _run_point(run_dir: str | Path) -> dict[str, Any]:
    report = read_report(run_dir)
    rows = read_metrics(run_dir)
    best = report.get("best")
    accuracy = (best["test"] if best else report["final"])["robust_acc"]
    return {
        "run": str(run_dir),
        "seed": report.get("config", {}).get("seed"),
        "epochs": int(rows[-1]["epoch"]),
        "passes": charged_passes(report.get("config", {}), rows[-1]),
        "robust_acc": float(accuracy),
    }


def frontier(
    points: Mapping[str, Sequence[Mapping[str, Any]]], fixed: Sequence[str]
) -> list[dict[str, Any]]:
    """The fixed shapes' frontier: per budget the best fixed-shape point, sorted by passes,
    its accuracy made monotone (``robust_acc`` is the best reached at or below ``passes``)."""
    by_budget: dict[int, dict[str, Any]] = {}
    for arm in fixed:
        for point in points.get(arm, ()):
            best = by_budget.get(point["budget"])
            if best is None or point["robust_acc"] > best["point_acc"]:
                by_budget[point["budget"]] = {
                    "budget": point["budget"],
                    "arm": arm,
                    "passes": point["passes"],
                    "point_acc": point["robust_acc"],
                }
    front = sorted(by_budget.values(), key=lambda p: p["passes"])
    running = float("-inf")
    for point in front:
        running = max(running, point["point_acc"])
        point["robust_acc"] = running
    return front


def frontier_ratio(
    passes: float, accuracy: float, front: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """``passes / P(accuracy)`` on the monotone ``front`` (see the module docstring)."""
    if not front:
        return {"ratio": None, "needed_passes": None, "bound": None, "note": "no frontier"}
    first = front[0]
    if accuracy <= first["robust_acc"]:
        return {
            "ratio": passes / first["passes"],
            "needed_passes": first["passes"],
            "bound": "lower",
            "note": f"at or below the frontier's first point ({first['budget']} epochs)",
        }
    for lo, hi in itertools.pairwise(front):
        if lo["robust_acc"] < accuracy <= hi["robust_acc"]:
            share = (accuracy - lo["robust_acc"]) / (hi["robust_acc"] - lo["robust_acc"])
            needed = lo["passes"] + share * (hi["passes"] - lo["passes"])
            return {"ratio": passes / needed, "needed_passes": needed, "bound": None, "note": ""}
    best = front[-1]["robust_acc"]
    note = f"no fixed shape reached {accuracy:.4f} at any budget (best {best:.4f})"
    return {"ratio": None, "needed_passes": None, "bound": None, "note": note}


def budget_sweep(runs: Runs, fixed: Sequence[str]) -> dict[str, Any]:
    """``compare.json``'s ``budgets`` section: every arm's points, the fixed shapes' frontier
    and each anytime arm's frontier ratio (at its largest budget)."""
    points = budget_points(runs)
    front = frontier(points, fixed)
    ratios = {
        arm: frontier_ratio(arm_points[-1]["passes"], arm_points[-1]["robust_acc"], front)
        for arm, arm_points in points.items()
        if arm not in fixed
    }
    return {"points": points, "frontier": front, "frontier_ratio": ratios, "fixed": list(fixed)}
