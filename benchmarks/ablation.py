"""AccelAT's ablation: each lever alone, then combinations, against the same grid.

Run: ``python -m benchmarks.ablation --setting digits --seeds 0,1,2,3,4 [--jobs 2]``.

The base grid (step, onecycle, constant, the paper-rule accelat and the LR-free peers) runs
once through the comparison engine; every AccelAT variant then runs in its own directory on
the same seeds, starting from the same per-seed lr finder result (copied, not rerun), and
is compared with the base grid's runs: the target is 0.95 x the best mean final robust
validation accuracy of the base grid and that variant. Tune only on development seeds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelat_train import report
from accelat_train.compare import compare, stderr_log
from accelat_train.config import TrainConfig
from benchmarks.acceleration import ROOT, SETTINGS

BASE = ("step", "onecycle", "constant", "accelat", "schedulefree", "prodigy")
#: name -> the TrainConfig fields the variant changes (accelat's levers).
VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {},
    "z1": {"accelat_z": 1.0},
    "z2": {"accelat_z": 2.0},
    "train-monitor": {"monitor": "train_adv_acc"},
    "train-monitor-z1": {"monitor": "train_adv_acc", "accelat_z": 1.0},
    "window2": {"window": 2},
    "train-monitor-z2": {"monitor": "train_adv_acc", "accelat_z": 2.0},
    "train-monitor-z1-w2": {"monitor": "train_adv_acc", "accelat_z": 1.0, "window": 2},
    "train-monitor-z1-w2-stop2": {
        "monitor": "train_adv_acc",
        "accelat_z": 1.0,
        "window": 2,
        "stop_patience": 2,
    },
    "train-monitor-z1-w2-f0.1-stop1": {
        "monitor": "train_adv_acc",
        "accelat_z": 1.0,
        "window": 2,
        "accelat_factor": 0.1,
        "stop_patience": 1,
    },
    "train-monitor-z1-stop2": {"monitor": "train_adv_acc", "accelat_z": 1.0, "stop_patience": 2},
    "train-monitor-z1-f0.1": {"monitor": "train_adv_acc", "accelat_z": 1.0, "accelat_factor": 0.1},
    "train-monitor-z1-f0.1-stop1": {
        "monitor": "train_adv_acc",
        "accelat_z": 1.0,
        "accelat_factor": 0.1,
        "stop_patience": 1,
    },
}


def run(
    setting: str,
    seeds: Sequence[int],
    out: Path,
    *,
    variants: Sequence[str],
    overrides: dict[str, Any],
    jobs: int,
) -> list[dict[str, Any]]:
    """The base grid, every variant, and one summary row per variant."""
    config = {**SETTINGS[setting].config, **overrides}
    base_cfg = TrainConfig(**config)
    compare(base_cfg, BASE, seeds, out / "base", jobs=jobs, log=stderr_log)
    rows = []
    for name in variants:
        vout = out / name if VARIANTS[name] else out / "base"  # the paper rule is the base's
        vout.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            cached = out / "base" / f"lr_find_seed{seed}.json"
            if cached.is_file() and vout != out / "base":
                shutil.copy(cached, vout / cached.name)
        cfg = TrainConfig(**{**config, **VARIANTS[name]})
        compare(cfg, ["accelat"], seeds, vout, jobs=jobs, log=stderr_log)
        runs = {p: [str(out / "base" / p / f"seed{s}") for s in seeds] for p in BASE}
        runs["accelat"] = [str(vout / "accelat" / f"seed{s}") for s in seeds]
        summary = report.compare_summary(runs, baseline="step", fixed_shape=["step", "onecycle"])
        report.write_json(vout / f"ablation-{name}.json", summary)
        rows.append(_row(name, summary))
    return rows


def _row(name: str, summary: dict[str, Any]) -> dict[str, Any]:
    pols = summary["policies"]
    mine = pols["accelat"]
    best = max(p["final_robust_acc"] for p in pols.values())
    best_best = max((p["best_robust_acc"] or 0) for p in pols.values())
    step_spent = pols["step"]["passes_spent"]
    return {
        "variant": name,
        "median": mine["total_ratio_to_baseline"]["median"],
        "ci90": mine["total_ratio_to_baseline"]["ci90"],
        "reached": f"{mine['reached']}/{len(mine['seeds'])}",
        "gap_final": best - mine["final_robust_acc"],
        "gap_best": None
        if mine["best_robust_acc"] is None
        else best_best - mine["best_robust_acc"],
        "spent_vs_step_budget": mine["passes_spent"] / step_spent,
        "peers": {
            p: pols[p]["total_ratio_to_baseline"]["median"] for p in ("schedulefree", "prodigy")
        },
    }


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the variants."""

    def f(v: float | None, d: int = 2) -> str:
        return "-" if v is None else f"{v:.{d}f}"

    lines = [
        "| variant | median total-pass ratio to step | 90 % interval | reached | "
        "final robust acc gap (pts) | best-ckpt gap (pts) | passes spent / step's |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["ci90"]
        gap_best = None if r["gap_best"] is None else 100 * r["gap_best"]
        lines.append(
            f"| {r['variant']} | {f(r['median'])} | [{f(lo)}, {f(hi)}] | {r['reached']} | "
            f"{100 * r['gap_final']:.1f} | {f(gap_best, 1)} | {r['spent_vs_step_budget']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="digits")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", help="default runs/ablation/<setting>")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--train-size", type=int)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    overrides = {k: v for k in ("epochs", "train_size") if (v := getattr(args, k)) is not None}
    out = Path(args.out or ROOT / "runs" / "ablation" / args.setting)
    rows = run(
        args.setting, seeds, out, variants=args.variants.split(","), overrides=overrides,
        jobs=args.jobs,
    )  # fmt: skip
    table = format_rows(rows)
    (out / "ablation.md").write_text(table)
    (out / "ablation.json").write_text(json.dumps(rows, indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
