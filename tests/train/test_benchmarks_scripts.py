"""The plumbing of benchmarks/throughput.py and benchmarks/acceleration.py, at toy sizes on CPU."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import acceleration, throughput


# -- throughput --------------------------------------------------------------------------------
def test_time_calls_runs_warmup_untimed_then_one_time_per_repeat():
    calls = []
    times = throughput.time_calls(
        lambda: calls.append(1), device=torch.device("cpu"), warmup=3, repeats=4
    )
    assert len(calls) == 7
    assert len(times) == 4 and all(t >= 0 for t in times)


def test_time_calls_rejects_zero_repeats():
    with pytest.raises(ValueError, match="repeats >= 1"):
        throughput.time_calls(lambda: None, device=torch.device("cpu"), warmup=0, repeats=0)


@pytest.mark.parametrize(
    ("method", "passes_per_image"),
    [("natural", 1), ("free", 2), ("fgsm-rs", 2), ("pgd", 3)],  # free m=2, pgd k=2
)
def test_measure_counts_the_methods_gradient_passes(method, passes_per_image):
    torch.set_num_threads(1)
    row = throughput.measure(
        "cnn", method, 4, device="cpu", warmup=1, repeats=2, replays=2, pgd_steps=2, image_size=8
    )
    assert row.passes_per_batch == 4 * passes_per_image
    assert row.passes_per_s == pytest.approx(row.passes_per_batch / row.seconds)
    assert row.images_per_s == pytest.approx(4 / row.seconds)
    table = throughput.format_table([row])
    assert f"| cnn | {method} | 4 | {4 * passes_per_image} |" in table


# -- acceleration: the paper test on hand-made summaries ----------------------------------------
def _summary(accelat: dict, step: dict, other: dict | None = None) -> dict:
    base = {"curve": {"passes": [100, 200, 300, 400]}}
    pols = {"step": {**base, **step}, "accelat": {**base, **accelat}}
    if other:
        pols["onecycle"] = {**base, **other}
    return {"baseline": "step", "policies": pols}


def test_paper_test_passes_at_half_the_passes_and_within_one_point():
    s = _summary(
        {"passes_to_target": 150, "ratio_to_baseline": 0.5, "final_robust_acc": 0.40},
        {"passes_to_target": 300, "ratio_to_baseline": 1.0, "final_robust_acc": 0.41},
    )
    test = acceleration.paper_test(s)
    assert test["verdict"] == "PASS"
    assert test["ratio"] == 0.5
    assert test["accuracy_gap"] == pytest.approx(0.01)


def test_paper_test_fails_when_accuracy_is_more_than_one_point_below_the_best():
    s = _summary(
        {"passes_to_target": 100, "ratio_to_baseline": 1 / 3, "final_robust_acc": 0.40},
        {"passes_to_target": 300, "ratio_to_baseline": 1.0, "final_robust_acc": 0.40},
        {"passes_to_target": 300, "ratio_to_baseline": 1.0, "final_robust_acc": 0.415},
    )
    test = acceleration.paper_test(s)
    assert test["verdict"] == "FAIL"
    assert "1.5 points below the best (> 1)" in test["reason"]


def test_paper_test_fails_when_slower_than_half_of_step():
    s = _summary(
        {"passes_to_target": 200, "ratio_to_baseline": 0.51, "final_robust_acc": 0.5},
        {"passes_to_target": 300, "ratio_to_baseline": 1.0, "final_robust_acc": 0.4},
    )
    assert acceleration.paper_test(s)["verdict"] == "FAIL"


def test_paper_test_counts_step_missing_the_target_as_step_needing_its_whole_budget():
    unreached_step = {"passes_to_target": None, "ratio_to_baseline": None, "final_robust_acc": 0.3}
    fast = _summary(
        {"passes_to_target": 200, "ratio_to_baseline": None, "final_robust_acc": 0.5},
        unreached_step,
    )
    slow = _summary(
        {"passes_to_target": 300, "ratio_to_baseline": None, "final_robust_acc": 0.5},
        unreached_step,
    )
    assert acceleration.paper_test(fast)["verdict"] == "PASS"  # 200 <= 0.5 x 400
    assert acceleration.paper_test(slow)["verdict"] == "FAIL"


def test_paper_test_fails_when_accelat_misses_the_target():
    s = _summary(
        {"passes_to_target": None, "ratio_to_baseline": None, "final_robust_acc": 0.5},
        {"passes_to_target": 300, "ratio_to_baseline": 1.0, "final_robust_acc": 0.4},
    )
    test = acceleration.paper_test(s)
    assert test["verdict"] == "FAIL"
    assert test["reason"].startswith("accelat did not reach the target")


def test_paper_test_is_not_applicable_without_accelat():
    s = {"baseline": "step", "policies": {"step": {}}}
    assert acceleration.paper_test(s)["verdict"] == "n/a"


def test_grid_rejects_a_policy_outside_it(tmp_path):
    with pytest.raises(ValueError, match="policy 'linear' is not in the grid"):
        acceleration.run_setting("digits", [0], tmp_path, policies=["linear"], log=False)


# -- acceleration: the grid on a toy digits setting ---------------------------------------------
@pytest.mark.slow
def test_grid_trains_every_policy_on_the_same_setup_and_writes_the_comparison(tmp_path):
    torch.set_num_threads(1)
    overrides = dict(
        train_size=100,
        val_size=40,
        monitor_size=40,
        monitor_steps=1,
        epochs=2,
        eval_size=40,
        eval_steps=2,
        lr_find_steps=5,
    )
    out, img = tmp_path / "study", tmp_path / "img"
    results = acceleration.run_setting(
        "digits",
        [0],
        out,
        policies=["step", "accelat"],
        overrides=overrides,
        img_dir=img,
        log=False,
    )
    summary = results["digits"]
    on_disk = json.loads((out / "compare.json").read_text())
    assert on_disk == summary
    assert list(summary["policies"]) == ["step", "accelat"]
    assert summary["baseline"] == "step"
    assert summary["best_fixed"] in (None, "step")
    # The verdict is the paper test of the summary's own numbers, and it names them.
    assert summary["paper_test"] == acceleration.paper_test(summary)
    assert summary["paper_test"]["ratio"] == summary["policies"]["accelat"]["ratio_to_baseline"]
    assert summary["issue_targets"] == acceleration.issue_targets(summary)

    # one finder per seed; both policies start from its lr_max, on identical setups
    finder = json.loads((out / "lr_find_seed0.json").read_text())
    assert summary["study"]["lr_max"] == {"0": finder["lr_max"]}
    configs = {
        name: json.loads((out / name / "seed0" / "config.json").read_text())
        for name in ("step", "accelat")
    }
    assert configs["step"]["policy"] == "step" and configs["accelat"]["policy"] == "accelat"
    for key in ("lr_max", "seed", "epochs", "train_size", "eps", "method", "replays", "model"):
        assert configs["step"][key] == configs["accelat"][key], key
    assert configs["step"]["lr_max"] == finder["lr_max"]
    assert configs["step"]["eps"] == 0.1 and configs["step"]["replays"] == 4
    for name in ("step", "accelat"):
        rows = [json.loads(line) for line in (out / name / "seed0" / "metrics.jsonl").open()]
        assert [r["epoch"] for r in rows] == [1, 2]
        assert summary["policies"][name]["curve"]["passes"] == [r["passes"] for r in rows]

    table = (out / "compare.md").read_text()
    assert "| step |" in table and "| accelat |" in table and "Paper test" in table
    assert "Per seed: passes to target (k)" in table
    for png in (out / "compare.png", img / "digits.png"):
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 1000

    # a second call finds every run finished and only rebuilds the comparison
    again = acceleration.run_setting(
        "digits",
        [0],
        out,
        policies=["step", "accelat"],
        overrides=overrides,
        img_dir=None,
        log=False,
    )
    assert again["digits"]["policies"] == summary["policies"]
