"""report.py on synthetic run directories the tests write themselves (no training).

The figures themselves are tested in test_plots.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from accelat_train.reporting import report, tables
from accelat_train.reporting.summary import compare_summary

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(
    root: Path,
    name: str,
    robust_val: list[float],
    *,
    seed: int = 0,
    passes_per_epoch: int = 100_000,
    seconds_per_epoch: float = 2.5,
    clean_acc: float = 0.9,
    robust_acc: float = 0.5,
    config: dict | None = None,
    lrs: list[float] | None = None,
) -> Path:
    """A finished run: config.json, metrics.jsonl (one line per robust_val value), report.json."""
    run = root / f"{name}-s{seed}"
    run.mkdir(parents=True)
    cfg = {"dataset": "digits", "model": "cnn", "method": "free", "eps": 0.1, "epochs": 8}
    cfg.update(config or {})
    cfg.update(policy=name, seed=seed)
    (run / "config.json").write_text(json.dumps(cfg))
    lines = []
    for i, acc in enumerate(robust_val):
        row = {
            "epoch": i + 1,
            "lr": (lrs or [0.1] * len(robust_val))[i],
            "momentum": 0.9,
            "passes": (i + 1) * passes_per_epoch,
            "seconds": (i + 1) * seconds_per_epoch,
            "train_loss": 2.0 - 0.1 * i,
            "train_adv_acc": acc / 2,
            "val_acc": min(1.0, acc + 0.3),
            "robust_val_acc": acc,
            "monitor": "robust_val_acc",
            "monitor_value": acc,
            "decision": None,
            "test_clean_acc": None,
            "test_robust_acc": None,
        }
        lines.append(json.dumps(row))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    final = {"clean_acc": clean_acc, "robust_acc": robust_acc, "attacks": {}}
    (run / "report.json").write_text(json.dumps({"config": cfg, "final": final}))
    return run


# -- passes to target --------------------------------------------------------------------
def test_passes_to_target_is_the_first_epoch_reaching_the_target(tmp_path):
    run = make_run(tmp_path, "step", [0.1, 0.3, 0.5, 0.4, 0.6], seconds_per_epoch=2.0)
    summary = compare_summary({"step": [run]}, target=0.45)
    p = summary["policies"]["step"]
    # epoch 3 (0.5) is the first >= 0.45; epoch 5 also is, but later
    assert p["passes_to_target"] == 300_000
    assert p["seconds_to_target"] == 6.0
    assert p["reached"] == 1


def test_target_equal_to_an_epoch_value_counts_as_reached(tmp_path):
    run = make_run(tmp_path, "step", [0.25, 0.5, 0.75])
    assert (
        compare_summary({"step": [run]}, target=0.5)["policies"]["step"]["passes_to_target"]
        == 200_000
    )


def test_policy_with_a_seed_that_never_reaches_the_target_gets_null(tmp_path):
    runs = {
        "step": [make_run(tmp_path, "step", [0.2, 0.6], seed=0)],
        "cyclical": [
            make_run(tmp_path, "cyclical", [0.3, 0.7], seed=0),
            make_run(tmp_path, "cyclical", [0.3, 0.4], seed=1),
        ],
    }
    summary = compare_summary(runs, target=0.55)
    cyc = summary["policies"]["cyclical"]
    assert cyc["passes_to_target"] is None
    assert cyc["passes_to_target_std"] is None
    assert cyc["seconds_to_target"] is None
    assert cyc["reached"] == 1
    assert [s["passes_to_target"] for s in cyc["seeds"]] == [200_000, None]
    assert cyc["ratio_to_baseline"] is None
    assert any("cyclical: 1 of 2 seeds" in n for n in summary["notes"])


def test_default_target_is_095_of_the_best_mean_final_robust_val_acc(tmp_path):
    runs = {
        "step": [
            make_run(tmp_path, "step", [0.3, 0.6], seed=0),
            make_run(tmp_path, "step", [0.3, 0.8], seed=1),
        ],  # final mean 0.7
        "accelat": [
            make_run(tmp_path, "accelat", [0.5, 0.5], seed=0),
            make_run(tmp_path, "accelat", [0.5, 0.5], seed=1),
        ],  # final mean 0.5
    }
    summary = compare_summary(runs)
    assert summary["target"] == pytest.approx(0.95 * 0.7, abs=1e-12)
    assert summary["policies"]["step"]["final_robust_val_acc"] == pytest.approx(0.7)
    # 0.665: step seed 1 reaches it at epoch 2, seed 0 (0.6) never; accelat never
    assert summary["policies"]["step"]["reached"] == 1
    assert summary["policies"]["accelat"]["reached"] == 0


def test_ratio_to_baseline_divides_mean_passes_to_target_by_the_baselines(tmp_path):
    runs = {
        "step": [make_run(tmp_path, "step", [0.1, 0.2, 0.3, 0.6])],  # 400k
        "accelat": [make_run(tmp_path, "accelat", [0.1, 0.6, 0.6, 0.6])],  # 200k
        "constant": [make_run(tmp_path, "constant", [0.1, 0.2, 0.6, 0.6])],  # 300k
    }
    summary = compare_summary(runs, target=0.5, fixed_shape=["step", "constant"])
    pol = summary["policies"]
    assert pol["accelat"]["ratio_to_baseline"] == 0.5
    assert pol["constant"]["ratio_to_baseline"] == 0.75
    assert pol["step"]["ratio_to_baseline"] == 1.0
    assert summary["best_fixed"] == "constant"
    assert pol["accelat"]["ratio_to_best_fixed"] == pytest.approx(200_000 / 300_000)


def test_missing_baseline_leaves_ratios_null_and_says_so(tmp_path):
    runs = {"accelat": [make_run(tmp_path, "accelat", [0.6])]}
    summary = compare_summary(runs, target=0.5)
    assert summary["policies"]["accelat"]["ratio_to_baseline"] is None
    assert any("baseline 'step'" in n for n in summary["notes"])


def test_mean_and_sample_std_over_seeds(tmp_path):
    runs = {
        "step": [
            make_run(tmp_path, "step", [0.6, 0.6], seed=0, clean_acc=0.8, robust_acc=0.4),
            make_run(tmp_path, "step", [0.1, 0.6], seed=1, clean_acc=0.9, robust_acc=0.5),
            make_run(tmp_path, "step", [0.1, 0.1, 0.6], seed=2, clean_acc=1.0, robust_acc=0.9),
        ]
    }
    p = compare_summary(runs, target=0.5)["policies"]["step"]
    # passes to target 100k, 200k, 300k: mean 200k, sample std 100k
    assert p["passes_to_target"] == pytest.approx(200_000)
    assert p["passes_to_target_std"] == pytest.approx(100_000)
    assert p["seconds_to_target"] == pytest.approx(5.0)
    assert p["seconds_to_target_std"] == pytest.approx(2.5)
    assert p["final_clean_acc"] == pytest.approx(0.9)
    assert p["final_clean_acc_std"] == pytest.approx(0.1)
    assert p["final_robust_acc"] == pytest.approx(0.6)
    assert p["final_robust_acc_std"] == pytest.approx(math.sqrt(((0.2) ** 2 + 0.1**2 + 0.3**2) / 2))
    assert [s["seed"] for s in p["seeds"]] == [0, 1, 2]
    # the curve is cut to the shortest run (2 epochs) and averaged epoch by epoch
    assert p["curve"]["passes"] == [100_000, 200_000]
    assert p["curve"]["robust_val_acc"] == pytest.approx(
        [(0.6 + 0.1 + 0.1) / 3, 0.6 * 2 / 3 + 0.1 / 3]
    )


def test_single_seed_std_is_zero(tmp_path):
    p = compare_summary({"step": [make_run(tmp_path, "step", [0.6])]}, target=0.5)
    assert p["policies"]["step"]["passes_to_target_std"] == 0.0
    assert p["policies"]["step"]["final_robust_acc_std"] == 0.0


def test_compare_summary_json_shape(tmp_path):
    runs = {
        "step": [make_run(tmp_path, "step", [0.3, 0.6], seed=s) for s in (0, 1)],
        "accelat": [make_run(tmp_path, "accelat", [0.6, 0.6], seed=s) for s in (0, 1)],
    }
    summary = compare_summary(runs, fixed_shape=["step"])
    assert set(summary) == {
        "target", "target_rule", "baseline", "best_fixed", "fixed_shape", "notes", "policies",
    }  # fmt: skip
    assert summary["baseline"] == "step" and summary["fixed_shape"] == ["step"]
    assert list(summary["policies"]) == ["step", "accelat"]
    entry_keys = {
        "passes_to_target",
        "passes_to_target_std",
        "seconds_to_target",
        "seconds_to_target_std",
        "reached",
        "final_clean_acc",
        "final_clean_acc_std",
        "final_robust_acc",
        "final_robust_acc_std",
        "final_robust_val_acc",
        "ratio_to_baseline",
        "ratio_to_best_fixed",
        "runs",
        "seeds",
        "curve",
        "total_passes_to_target",
        "total_passes_to_target_std",
        "passes_spent",
        "passes_spent_std",
        "best_robust_acc",
        "total_ratio_to_baseline",
    }
    for name, entry in summary["policies"].items():
        assert set(entry) == entry_keys
        assert entry["runs"] == [str(tmp_path / f"{name}-s{s}") for s in (0, 1)]
        assert set(entry["seeds"][0]) == {
            "run",
            "seed",
            "passes_to_target",
            "seconds_to_target",
            "total_passes_to_target",
            "passes_spent",
            "final_clean_acc",
            "final_robust_acc",
            "best_robust_acc",
            "final_robust_val_acc",
            "stopped",
        }
    # strict JSON: no NaN, everything serialisable, round-trips unchanged
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_compare_refuses_runs_on_different_setups(tmp_path):
    runs = {
        "step": [make_run(tmp_path, "step", [0.5])],
        "accelat": [make_run(tmp_path, "accelat", [0.5], config={"eps": 0.2})],
    }
    with pytest.raises(ValueError, match=r"runs differ in 'eps': 0.1 .* but 0.2"):
        compare_summary(runs)


def test_compare_rejects_empty_policy_list(tmp_path):
    with pytest.raises(ValueError, match=r"runs\['step'\] must be a non-empty list"):
        compare_summary({"step": []})


def test_format_table_rows_show_mean_std_ratio_and_dash_for_unreached(tmp_path):
    runs = {
        "step": [make_run(tmp_path, "step", [0.1, 0.2, 0.3, 0.6], seed=s) for s in (0, 1)],
        "accelat": [make_run(tmp_path, "accelat", [0.1, 0.6], seed=s) for s in (0, 1)],
        "constant": [make_run(tmp_path, "constant", [0.1, 0.2], seed=s) for s in (0, 1)],
    }
    table = tables.format_table(compare_summary(runs, target=0.5))
    lines = table.splitlines()
    assert lines[0].startswith("| policy | passes to target (k) | seconds to target | reached")
    assert "| step | 400.0 ± 0.0 | 10.0 ± 0.0 | 2/2 | 90.0 ± 0.0 | 50.0 ± 0.0 | 1.00 | - |" in lines
    assert (
        "| accelat | 200.0 ± 0.0 | 5.0 ± 0.0 | 2/2 | 90.0 ± 0.0 | 50.0 ± 0.0 | 0.50 | - |" in lines
    )
    assert "| constant | - | - | 0/2 | 90.0 ± 0.0 | 50.0 ± 0.0 | - | - |" in lines
    assert "Target: robust validation accuracy ≥ 0.5000 (given)." in lines
    # Several seeds: the per-seed table follows.
    assert "| accelat | 200.0 / 50.0 | 200.0 / 50.0 |" in lines
    assert "| constant | - / 50.0 | - / 50.0 |" in lines


def test_format_table_with_one_seed_prints_plain_numbers_and_no_per_seed_table(tmp_path):
    runs = {
        "step": [make_run(tmp_path, "step", [0.1, 0.2, 0.3, 0.6])],
        "accelat": [make_run(tmp_path, "accelat", [0.1, 0.6], robust_acc=0.45)],
    }
    table = tables.format_table(compare_summary(runs, target=0.5))
    assert "±" not in table and "Per seed" not in table
    assert "| accelat | 200.0 | 5.0 | 1/1 | 90.0 | 45.0 | 0.50 | - |" in table.splitlines()


# -- one run -------------------------------------------------------------------------------
def test_write_run_report_writes_report_json_and_curves_png(tmp_path):
    run = make_run(tmp_path, "accelat", [0.2, 0.7, 0.5], lrs=[0.1, 0.1, 0.05])
    (run / "report.json").unlink()
    final = {"clean_acc": 0.93, "robust_acc": 0.41, "attacks": {"linfpgd": {"0.1": 0.41}}}
    got = report.write_run_report(run, {"final": final})
    on_disk = json.loads((run / "report.json").read_text())
    assert got == on_disk
    assert on_disk["config"]["policy"] == "accelat"
    assert on_disk["epochs"] == 3
    assert on_disk["passes"] == 300_000
    assert on_disk["seconds"] == 7.5
    assert on_disk["best_robust_val_acc"] == 0.7
    assert on_disk["final"] == final
    png = (run / "curves.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 1000
    assert not list(run.glob(".*.tmp"))  # the atomic temp files are gone
    # readable like any output file (the temp file behind the atomic write is created 0600)
    assert (run / "report.json").stat().st_mode & 0o777 == 0o644
    assert (run / "curves.png").stat().st_mode & 0o777 == 0o644


def test_read_metrics_names_the_bad_line(tmp_path):
    run = make_run(tmp_path, "step", [0.1, 0.2])
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 3, "lr"\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 3 is not valid JSON"):
        report.read_metrics(run)


def test_read_metrics_missing_file_names_the_run_dir(tmp_path):
    with pytest.raises(ValueError, match=r"no metrics\.jsonl in run directory"):
        report.read_metrics(tmp_path / "nowhere")


def test_read_metrics_returns_rows_in_order(tmp_path):
    rows = report.read_metrics(make_run(tmp_path, "step", [0.1, 0.2, 0.3]))
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["robust_val_acc"] for r in rows] == [0.1, 0.2, 0.3]


def _charge(run: Path, *, monitor: float, overhead: float, finder: int | None) -> None:
    """Give ``run``'s rows monitor/overhead passes (per epoch) and its config a finder."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for i, row in enumerate(rows):
        row["monitor_passes"] = monitor * (i + 1)
        row["overhead_passes"] = overhead * (i + 1)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report_path = run / "report.json"
    data = json.loads(report_path.read_text())
    data["config"]["lr_find"] = None if finder is None else {"passes": finder}
    data["config"]["monitor"] = "robust_val_acc"
    report_path.write_text(json.dumps(data))


def test_total_passes_charge_the_monitor_only_to_metric_policies_and_the_finder_to_its_users(
    tmp_path,
):
    step = [make_run(tmp_path, "step", [0.1, 0.2, 0.6, 0.6], seed=s) for s in (0, 1, 2)]
    accelat = [make_run(tmp_path, "accelat", [0.1, 0.6, 0.6], seed=s) for s in (0, 1)]
    accelat.append(make_run(tmp_path, "accelat", [0.1, 0.2], seed=2))  # misses the target
    peer = [make_run(tmp_path, "prodigy", [0.6, 0.6], seed=s) for s in (0, 1, 2)]
    for run in step:
        _charge(run, monitor=1000, overhead=10, finder=5000)
    for run in accelat:
        _charge(run, monitor=1000, overhead=10, finder=5000)
    for run in peer:
        _charge(run, monitor=1000, overhead=10, finder=None)
    runs = {"step": step, "accelat": accelat, "prodigy": peer}
    summary = compare_summary(runs, target=0.5)
    seeds = {name: summary["policies"][name]["seeds"] for name in runs}
    # step (fixed shape): 3 epochs x 100k + 3 x 10 overhead + the finder; no monitor.
    assert seeds["step"][0]["total_passes_to_target"] == 300_000 + 30 + 5000
    assert seeds["step"][0]["passes_spent"] == 400_000 + 40 + 5000
    # accelat reads the monitor: 2 epochs x (100k + 1000 + 10) + the finder.
    assert seeds["accelat"][0]["total_passes_to_target"] == 2 * 101_010 + 5000
    assert seeds["accelat"][2]["total_passes_to_target"] is None
    assert seeds["accelat"][2]["passes_spent"] == 2 * 101_010 + 5000
    # The peer: no finder, no monitor.
    assert seeds["prodigy"][0]["total_passes_to_target"] == 100_010
    ratios = summary["policies"]["accelat"]["total_ratio_to_baseline"]
    r = (2 * 101_010 + 5000) / (300_000 + 30 + 5000)
    assert ratios["per_seed"] == [r, r, None]  # seed 2 missed: infinitely slow
    assert ratios["median"] == r and ratios["ci90"] == [r, None]
    peer_ratio = 100_010 / (300_000 + 30 + 5000)
    assert summary["policies"]["prodigy"]["total_ratio_to_baseline"]["median"] == peer_ratio
    assert summary["policies"]["step"]["total_ratio_to_baseline"]["per_seed"] == [1.0] * 3
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_a_baseline_that_misses_the_target_counts_as_its_whole_budget(tmp_path):
    step = [make_run(tmp_path, "step", [0.1, 0.2, 0.3, 0.4])]
    accelat = [make_run(tmp_path, "accelat", [0.1, 0.6])]
    summary = compare_summary({"step": step, "accelat": accelat}, target=0.5)
    ratios = summary["policies"]["accelat"]["total_ratio_to_baseline"]
    assert ratios["per_seed"] == [200_000 / 400_000]
