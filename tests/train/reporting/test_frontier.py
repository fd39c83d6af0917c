"""The budget sweep on hand-made runs: points, the fixed shapes' frontier, frontier ratios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accelat_train.reporting import tables
from accelat_train.reporting.frontier import budget_sweep, frontier, frontier_ratio


def _run(root: Path, name: str, epochs: int, best: float, *, seed: int = 0, finder: int = 0,
         per_epoch: int = 1000, monitor: float = 0.0, policy: str = "step") -> str:  # fmt: skip
    """A finished run of ``epochs`` epochs whose best checkpoint scored ``best``."""
    run = root / f"{name}-e{epochs}-s{seed}"
    run.mkdir(parents=True)
    config = {"policy": policy, "seed": seed, "monitor": "robust_val_acc",
              "lr_find": {"passes": finder} if finder else None}  # fmt: skip
    (run / "config.json").write_text(json.dumps(config))
    rows = [
        {"epoch": e, "passes": e * per_epoch, "monitor_passes": e * monitor,
         "overhead_passes": 0.0, "robust_val_acc": 0.5}
        for e in range(1, epochs + 1)
    ]  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    best_ckpt = {"epoch": epochs, "robust_val_acc": 0.5, "test": {"robust_acc": best}}
    report = {"config": config, "final": {"robust_acc": best - 0.1}, "best": best_ckpt}
    (run / "report.json").write_text(json.dumps(report))
    return str(run)


@pytest.fixture
def sweep(tmp_path):
    # step: 10, 20, 40 epochs; onecycle: 10, 20, 40; accelat and plateau: once at 40 with a stop.
    runs = {
        "step": {b: [_run(tmp_path, "step", b, acc, finder=500)]
                 for b, acc in ((10, 0.40), (20, 0.50), (40, 0.56))},
        "onecycle": {b: [_run(tmp_path, "onecycle", b, acc, finder=500)]
                     for b, acc in ((10, 0.44), (20, 0.48), (40, 0.54))},
        # stopped after 15 epochs at 0.52: the frontier needs 20.5k + (0.52-0.50)/(0.56-0.50)
        # x (40.5k - 20.5k) = 27.17k passes; accelat spent 15.5k (and read a free monitor).
        "accelat": {40: [_run(tmp_path, "accelat", 15, 0.52, finder=500, policy="accelat")]},
        # plateau read a costly monitor (200 passes an epoch) and stayed below the frontier's
        # first point: its ratio is only a lower bound.
        "plateau": {40: [_run(tmp_path, "plateau", 12, 0.42, finder=500, monitor=200.0,
                              policy="plateau")]},
        # a policy that beats every fixed shape at every budget has no ratio at all.
        "better": {40: [_run(tmp_path, "better", 40, 0.70, policy="accelat")]},
    }  # fmt: skip
    return budget_sweep(runs, fixed=["step", "onecycle"])


def test_points_are_the_total_passes_spent_and_the_best_checkpoint_accuracy(sweep):
    step = sweep["points"]["step"]
    assert [(p["budget"], p["passes"], p["robust_acc"]) for p in step] == [
        (10, 10_500.0, 0.40), (20, 20_500.0, 0.50), (40, 40_500.0, 0.56),
    ]  # fmt: skip
    # plateau's monitor is charged: 12 epochs x (1000 + 200) + the finder's 500.
    assert sweep["points"]["plateau"][0]["passes"] == 12 * 1200 + 500


def test_the_frontier_is_the_best_fixed_shape_per_budget_made_monotone(sweep):
    assert [(p["budget"], p["arm"], p["robust_acc"]) for p in sweep["frontier"]] == [
        (10, "onecycle", 0.44), (20, "step", 0.50), (40, "step", 0.56),
    ]  # fmt: skip


def test_frontier_ratios_interpolate_bound_or_say_the_frontier_never_got_there(sweep):
    ratios = sweep["frontier_ratio"]
    assert set(ratios) == {"accelat", "plateau", "better"}
    needed = 20_500 + (0.52 - 0.50) / (0.56 - 0.50) * (40_500 - 20_500)
    assert ratios["accelat"]["needed_passes"] == pytest.approx(needed)
    assert ratios["accelat"]["ratio"] == pytest.approx(15_500 / needed)
    assert ratios["accelat"]["bound"] is None
    assert ratios["plateau"] == {
        "ratio": pytest.approx((12 * 1200 + 500) / 10_500), "needed_passes": 10_500.0,
        "bound": "lower", "note": "at or below the frontier's first point (10 epochs)",
    }  # fmt: skip
    assert ratios["better"]["ratio"] is None
    assert ratios["better"]["note"] == "no fixed shape reached 0.7000 at any budget (best 0.5600)"


def test_a_dip_at_a_larger_budget_does_not_lower_the_frontier():
    points = {"step": [{"budget": 10, "passes": 10.0, "robust_acc": 0.5},
                       {"budget": 20, "passes": 20.0, "robust_acc": 0.45},
                       {"budget": 40, "passes": 40.0, "robust_acc": 0.6}]}  # fmt: skip
    front = frontier(points, ["step"])
    assert [p["robust_acc"] for p in front] == [0.5, 0.5, 0.6]
    assert [p["point_acc"] for p in front] == [0.5, 0.45, 0.6]
    # 0.55 lies between the 20- and 40-epoch points of the monotone frontier.
    assert frontier_ratio(15.0, 0.55, front)["needed_passes"] == pytest.approx(30.0)


def test_seeds_are_averaged_per_arm_and_budget(tmp_path):
    runs = {"step": {10: [_run(tmp_path, "step", 10, 0.4, seed=0),
                          _run(tmp_path, "step", 10, 0.5, seed=1)]}}  # fmt: skip
    point = budget_sweep(runs, fixed=["step"])["points"]["step"][0]
    assert point["robust_acc"] == pytest.approx(0.45)
    assert [s["seed"] for s in point["seeds"]] == [0, 1]


def test_the_frontier_table_lists_points_frontier_and_ratios(sweep):
    text = tables.format_frontier({"budgets": sweep})
    assert "| step | 20 | 20.5 | 50.0 |" in text
    assert "Fixed-shape frontier: 10 ep onecycle (10.5k, 44.0 %), 20 ep step" in text
    assert "| plateau | ≥ 1.42 | 10.5 |" in text
    assert "| better | - | - | no fixed shape reached" in text
