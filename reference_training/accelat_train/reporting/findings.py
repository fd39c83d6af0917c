"""What a comparison found, in plain sentences: the end of ``accelat demo``.

Computed from the ``compare.json`` dict (:func:`accelat_train.reporting.summary.compare_summary`):
which arm reached the target first and with how many passes, how accurate each ended (its
best checkpoint's robust test accuracy), whether AccelAT stopped by itself and when (or why
it did not), what that means, and what the names and the two tables printed above mean.
Means over seeds where there are several.

>>> summary = {"target": 0.8, "baseline": "step", "fixed_shape": ["step"], "policies": {
...     "step": {"passes_to_target": 2000.0, "total_passes_to_target": 2500.0,
...              "best_robust_acc": 0.80, "passes_spent": 4500.0, "ratio_to_baseline": 1.0,
...              "seeds": [{"stopped": {"epoch": 10, "reason": "budget"}}]},
...     "accelat": {"passes_to_target": 1000.0, "total_passes_to_target": 1500.0,
...                 "best_robust_acc": 0.78, "passes_spent": 3000.0, "ratio_to_baseline": 0.5,
...                 "seeds": [{"stopped": {"epoch": 6, "reason": "policy"}}]}}}
>>> findings(summary)[2]
'accelat stopped by itself after epoch 6 of 10, spending 3.0k passes (0.67x the 4.5k of step).'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: What each arm name's policy is, for the sentences that explain the names.
_NAMES = {
    "step": "Free AT's recipe (lr_max, /10 at 50 % and /100 at 75 % of the run)",
    "onecycle": "the AccelAT paper's one-cycle schedule (up, down, then a short anneal)",
    "constant": "lr_max throughout",
    "accelat": "AccelAT: halve the lr when the monitored accuracy stops rising; where it can "
    "rise no more, anneal the lr to 0 and stop",
}


def findings(summary: Mapping[str, Any]) -> list[str]:
    """The sentences, in order: the race, the accuracies, AccelAT's stop and any early
    stopping, what it means, and what the names and tables mean."""
    policies = summary["policies"]
    stops = [_stops(name, p, summary) for name, p in policies.items()]
    lines = [_race(summary), _accuracies(policies), *filter(None, stops)]
    lines.append(_meaning(summary))
    lines += _glossary(summary)
    return lines


def format_findings(summary: Mapping[str, Any]) -> str:
    """:func:`findings` as a paragraph per sentence, under a heading."""
    return "What this comparison found:\n" + "\n".join(f"- {s}" for s in findings(summary)) + "\n"


def first_to_target(policies: Mapping[str, Any]) -> list[str]:
    """The arms with the fewest mean training passes to the target (ties: all of them;
    none when no arm reached it on every seed)."""
    reached = {n: p["passes_to_target"] for n, p in policies.items() if p["passes_to_target"]}
    if not reached:
        return []
    fewest = min(reached.values())
    return [n for n, passes in reached.items() if passes == fewest]


def _race(summary: Mapping[str, Any]) -> str:
    policies, target = summary["policies"], summary["target"]
    first = first_to_target(policies)
    head = f"First to the target (robust validation accuracy >= {target:.3f}): "
    if not first:
        return head + "none; no arm reached it on every seed."
    p = policies[first[0]]
    text = (
        f"{_join(first)}, after {_k(p['passes_to_target'])} training passes "
        f"({_k(p['total_passes_to_target'])} with every pass counted)"
    )
    baseline = summary.get("baseline")
    if baseline in policies and baseline not in first and p.get("ratio_to_baseline"):
        text += f", {p['ratio_to_baseline']:.2f}x the passes of {baseline}"
    missed = [n for n, q in policies.items() if q["passes_to_target"] is None]
    if missed:
        text += f"; {_join(missed)} did not reach it on every seed"
    return head + text + "."


def _accuracies(policies: Mapping[str, Any]) -> str:
    ranked = sorted(policies, key=lambda n: -_accuracy(policies[n]))
    parts = [f"{n} {100 * _accuracy(policies[n]):.1f} %" for n in ranked]
    return "Robust test accuracy of each best checkpoint (best.pt): " + ", ".join(parts) + "."


def _accuracy(p: Mapping[str, Any]) -> float:
    best = p.get("best_robust_acc")
    return float(p["final_robust_acc"] if best is None else best)


#: How each reason a run ended early reads in a sentence.
_ENDINGS = {"policy": "stopped by itself", "early_stop": "was stopped early (--early-stop)"}


def _stops(name: str, p: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    """How an AccelAT arm, or an arm with early stopping, ended; "" for the others."""
    stops = [s.get("stopped") or {} for s in p["seeds"]]
    accelat = name.split(":")[0] == "accelat"
    early = "early_stop=" in name or any(s.get("reason") == "early_stop" for s in stops)
    if not (accelat or early):
        return ""
    endings = []
    for reason, what in _ENDINGS.items():
        fired = [str(s["epoch"]) for s in stops if s.get("reason") == reason]
        if fired:
            seeds = f" on {len(fired)} of {len(stops)} seeds" if len(stops) > 1 else ""
            epochs = ("epoch " if len(fired) == 1 else "epochs ") + _join(fired)
            endings.append(f"{what}{seeds} after {epochs}")
    if endings:
        budget = _budget(summary["policies"])
        of = f" of {budget}" if budget else ""
        return f"{name} {'; '.join(endings)}{of}, spending {_spent(p, summary)}."
    if accelat:
        ran = _join(sorted({str(s.get("epoch")) for s in stops}))
        return (
            f"{name} did not stop by itself: it ran its whole budget of {ran} epochs (its "
            "final anneal is timed to end there at the latest). Its own stop needs the lr at "
            "its floor (--lr-min) and --stop-patience more epochs without gain, then the "
            "anneal (--anneal); give it more --epochs to see it stop."
        )
    return f"{name} was not stopped early: its accuracy kept improving within the patience."


def _spent(p: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    """An arm's passes spent, and their ratio to the baseline's."""
    text = f"{_k(p['passes_spent'])} passes"
    base = summary["policies"].get(summary.get("baseline"))
    if base is not None and base["passes_spent"]:
        ratio = p["passes_spent"] / base["passes_spent"]
        text += f" ({ratio:.2f}x the {_k(base['passes_spent'])} of {summary['baseline']})"
    return text


def _budget(policies: Mapping[str, Any]) -> int | None:
    """The epoch budget: the last epoch of the runs that ran it all."""
    ends = [
        int(s["stopped"]["epoch"])
        for p in policies.values()
        for s in p["seeds"]
        if (s.get("stopped") or {}).get("reason") == "budget"
    ]
    return max(ends, default=None)


def _meaning(summary: Mapping[str, Any]) -> str:
    policies = summary["policies"]
    first = first_to_target(policies)
    accurate = max(policies, key=lambda n: _accuracy(policies[n]))
    accelat = [n for n in policies if n.split(":")[0] == "accelat"]
    if not accelat:
        return f"The most accurate arm was {accurate}."
    a = accelat[0]
    if a in first:
        speed = f"{a} was among the first to the target"
    elif policies[a]["passes_to_target"] is None:
        speed = f"{a} did not reach the target on every seed"
    else:
        ratio = policies[a]["passes_to_target"] / policies[first[0]]["passes_to_target"]
        speed = f"{a} reached the target {ratio:.2f}x as late as {_join(first)}"
    gap = 100 * (_accuracy(policies[accurate]) - _accuracy(policies[a]))
    level = (
        "and was the most accurate"
        if accurate == a or gap <= 0
        else f"and ended {gap:.1f} points below the most accurate, {accurate}"
    )
    return (
        f"What it means: {speed} {level}. Reaching a target sooner is what AccelAT is for; "
        "one small run is an illustration, not a measurement (docs/benchmarks.md has the "
        "study over several seeds)."
    )


def _glossary(summary: Mapping[str, Any]) -> list[str]:
    policies, baseline = summary["policies"], summary.get("baseline")
    names = []
    for name in policies:
        policy, _, changes = name.partition(":")
        meaning = _NAMES.get(policy)
        if meaning is None:
            continue
        if changes == "ema_epochs=0":
            meaning += ", without weight averaging (--ema-epochs 0; the default averages)"
        elif changes:
            meaning += f", with {changes.replace(':', ', ')}"
        names.append(f"{name}: {meaning}")
    lines = ["The names: " + "; ".join(names) + "."] if names else []
    if baseline in policies:
        lines.append(f"Every ratio is to {baseline}, the baseline.")
    lines.append(
        "The two tables: the first counts training passes only; the second also counts the "
        "lr finder's passes (each arm would run it alone) and, for a policy that reads it, "
        "the validation monitor's, so its ratios differ."
    )
    fixed = summary.get("fixed_shape") or []
    if fixed:
        accelat = [n for n in policies if n.split(":")[0] == "accelat" and "anneal=none" not in n]
        others = [n for n in policies if n not in fixed and n not in accelat]
        text = (
            f"Budget-shaped: {_join(fixed)} fit their shape to the epoch budget, so their "
            "'x best budget-shaped' ratio compares with the fastest of them"
        )
        if others:
            text += f"; {_join(others)} {'does' if len(others) == 1 else 'do'} not depend on it"
        if accelat:
            text += f"; {_join(accelat)} only ends its final anneal by the budget"
        lines.append(text + ".")
    return lines


def _join(items: Any) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _k(passes: float | None) -> str:
    return "-" if passes is None else f"{passes / 1000:.1f}k"
