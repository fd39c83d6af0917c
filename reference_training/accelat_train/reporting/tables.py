"""The Markdown tables of a comparison (the dict of
:func:`accelat_train.reporting.summary.compare_summary`): the main table, every pass counted,
the per-seed values and the budget sweep's frontier.

>>> print(format_seeds({"policies": {"step": {"seeds": [
...     {"seed": 0, "passes_to_target": 1500, "final_robust_acc": 0.5}]}}}))
Per seed: passes to target (k) / final robust test accuracy (%).
<BLANKLINE>
| policy | seed 0 |
|---|---|
| step | 1.5 / 50.0 |
<BLANKLINE>
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def format_table(summary: Mapping[str, Any]) -> str:
    """A Markdown table of a ``compare_summary`` dict, mean ± std over seeds per policy.

    Accuracies in percent; passes in thousands of image passes; "-" where a policy did not
    reach the target on every seed (the "reached" column says on how many it did).
    """
    head = (
        "| policy | passes to target (k) | seconds to target | reached | clean test acc (%) "
        "| robust test acc (%) | × " + str(summary.get("baseline")) + " | × best budget-shaped |"
    )
    lines = [head, "|" + "---|" * 8]
    several = max(len(p["seeds"]) for p in summary["policies"].values()) > 1
    pm = _pm if several else (lambda mean, _std, **kw: _fmt(mean, **kw))
    for name, p in summary["policies"].items():
        passes = pm(p["passes_to_target"], p["passes_to_target_std"], scale=1e-3, digits=1)
        seconds = pm(p["seconds_to_target"], p["seconds_to_target_std"], digits=1)
        clean = pm(p["final_clean_acc"], p["final_clean_acc_std"], scale=100, digits=1)
        robust = pm(p["final_robust_acc"], p["final_robust_acc_std"], scale=100, digits=1)
        reached = f"{p['reached']}/{len(p['seeds'])}"
        ratios = [_fmt(p.get(k), digits=2) for k in ("ratio_to_baseline", "ratio_to_best_fixed")]
        cells = [name, passes, seconds, reached, clean, robust, *ratios]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Target: robust validation accuracy ≥ {summary['target']:.4f} ({summary['target_rule']})."
    )
    if summary.get("best_fixed"):
        lines.append(
            f"Fastest budget-shaped schedule (a shape fitted to the epoch budget): "
            f"{summary['best_fixed']}."
        )
    lines.extend(f"Note: {n}" for n in summary.get("notes", []))
    if several:
        lines += ["", format_seeds(summary)]
    return "\n".join(lines) + "\n"


def format_totals(summary: Mapping[str, Any]) -> str:
    """Every pass counted: per policy, the total passes to target (finder, monitor and
    overheads included, in thousands), the median paired ratio to the baseline with its
    bootstrap 90 % interval, the passes spent, and the best checkpoint's robust accuracy."""
    lines = [
        "| policy | total passes to target (k) | median ratio to "
        f"{summary.get('baseline')} [90 % interval] | passes spent (k) | best-ckpt robust (%) |",
        "|---|---|---|---|---|",
    ]
    for name, p in summary["policies"].items():
        ratio = p.get("total_ratio_to_baseline") or {"median": None, "ci90": [None, None]}
        lo, hi = ratio["ci90"]
        cells = [
            name,
            _fmt(p["total_passes_to_target"], scale=1e-3, digits=1),
            f"{_fmt(ratio['median'], digits=2)} [{_fmt(lo, digits=2)}, {_fmt(hi, digits=2)}]",
            _fmt(p["passes_spent"], scale=1e-3, digits=1),
            _fmt(p["best_robust_acc"], scale=100, digits=1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_frontier(summary: Mapping[str, Any]) -> str:
    """The budget sweep: each arm's points (budget, total passes in thousands, best-checkpoint
    robust test accuracy in %), the fixed shapes' frontier, and the anytime arms' frontier
    ratios (``≥`` marks a lower bound; ``-`` where the frontier never reached the accuracy)."""
    sweep = summary["budgets"]
    lines = [
        "| arm | budget (epochs) | total passes (k) | best-ckpt robust (%) |",
        "|---|---|---|---|",
    ]
    for arm, points in sweep["points"].items():
        for p in points:
            passes, accuracy = _fmt(p["passes"], scale=1e-3, digits=1), 100 * p["robust_acc"]
            lines.append(f"| {arm} | {p['budget']} | {passes} | {accuracy:.1f} |")
    front = [
        f"{p['budget']} ep {p['arm']} ({p['passes'] / 1000:.1f}k, {100 * p['robust_acc']:.1f} %)"
        for p in sweep["frontier"]
    ]
    lines += ["", "Fixed-shape frontier: " + ", ".join(front) + ".", ""]
    lines += [
        "| anytime arm | frontier ratio | frontier passes for its accuracy (k) | note |",
        "|---|---|---|---|",
    ]
    for arm, r in sweep["frontier_ratio"].items():
        ratio = "-" if r["ratio"] is None else ("≥ " if r["bound"] else "") + f"{r['ratio']:.2f}"
        needed = _fmt(r["needed_passes"], scale=1e-3, digits=1)
        lines.append(f"| {arm} | {ratio} | {needed} | {r['note']} |")
    return "\n".join(lines) + "\n"


def format_seeds(summary: Mapping[str, Any]) -> str:
    """Per policy and seed: passes to target (k, "-" when never reached) / final robust test
    accuracy (%), so a null in the main table can be read back to the seed that missed."""
    width = max(len(p["seeds"]) for p in summary["policies"].values())
    first = next(iter(summary["policies"].values()))["seeds"]
    head = [f"seed {s['seed']}" for s in first] + [""] * (width - len(first))
    lines = [
        "Per seed: passes to target (k) / final robust test accuracy (%).\n",
        "| policy | " + " | ".join(head) + " |",
        "|---|" + "---|" * width,
    ]
    for name, p in summary["policies"].items():
        cells = []
        for seed in p["seeds"]:
            passes = seed["passes_to_target"]
            reached = "-" if passes is None else f"{passes / 1000:.1f}"
            cells.append(f"{reached} / {100 * seed['final_robust_acc']:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, *, scale: float = 1.0, digits: int = 3) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def _pm(mean: float | None, std: float | None, *, scale: float = 1.0, digits: int = 3) -> str:
    if mean is None:
        return "-"
    return f"{mean * scale:.{digits}f} ± {(std or 0.0) * scale:.{digits}f}"
