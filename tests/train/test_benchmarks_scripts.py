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


# -- acceleration: the issue's targets on hand-made summaries -----------------------------------
def _entry(median, best, spent, *, final=0.3):
    return {"total_ratio_to_baseline": {"median": median}, "best_robust_acc": best,
            "final_robust_acc": final, "passes_spent": spent}  # fmt: skip


def _summary(accelat, *, ratio=0.8, others=None):
    pols = {"step:ema_epochs=0": _entry(1.0, 0.40, 1000), "accelat": accelat, **(others or {})}
    front = {"accelat": {"ratio": ratio, "note": "", "bound": None, "needed_passes": 1.0}}
    return {"baseline": "step:ema_epochs=0", "policies": pols,
            "budgets": {"frontier_ratio": front}}  # fmt: skip


def test_targets_pass_when_every_condition_holds():
    peers = {
        "schedulefree": _entry(0.7, 0.405, 1100),
        "prodigy:ema_epochs=0": _entry(None, 0.3, 900),
    }
    targets = acceleration.issue_targets(_summary(_entry(0.55, 0.40, 650), others=peers))
    assert targets["verdict"] == "PASS"
    assert targets["speed"] == {"value": 0.55, "pass": True, "goal": False}
    assert targets["peers"] == {"value": 0.7, "pass": True}
    assert targets["accuracy"] == {"value": pytest.approx(0.005), "pass": True}
    assert targets["stop"] == {"value": 0.65, "pass": True}
    assert targets["frontier"] == {"value": 0.8, "pass": True}


@pytest.mark.parametrize(
    ("accelat", "ratio", "failing"),
    [
        (_entry(0.61, 0.40, 600), 0.8, ["speed"]),
        (_entry(None, 0.40, 600), 0.8, ["speed", "peers"]),  # missed the target on a seed
        (_entry(0.55, 0.389, 600), 0.8, ["accuracy"]),  # 1.1 points below step's 0.40
        (_entry(0.55, 0.40, 701), 0.8, ["stop"]),  # 0.701 of the baseline's budget
        (_entry(0.55, 0.40, 600), 1.01, ["frontier"]),
    ],
)
def test_each_target_fails_on_its_own(accelat, ratio, failing):
    # (a policy that missed the target is slower than any peer that reached it)
    targets = acceleration.issue_targets(_summary(accelat, ratio=ratio))
    assert [k for k in ("speed", "peers", "accuracy", "stop", "frontier")
            if not targets[k]["pass"]] == failing  # fmt: skip
    assert targets["verdict"] == "FAIL"


def test_a_faster_peer_fails_the_peers_target_and_no_frontier_ratio_can_pass():
    peers = {"prodigy-cosine": _entry(0.5, 0.40, 900)}
    summary = _summary(_entry(0.55, 0.40, 650), others=peers)
    assert acceleration.issue_targets(summary)["peers"] == {"value": 0.5, "pass": False}
    summary["budgets"]["frontier_ratio"]["accelat"] = {
        "ratio": None, "note": "no fixed shape reached 0.4000 at any budget (best 0.38)",
    }  # fmt: skip
    assert acceleration.issue_targets(summary)["frontier"]["pass"] is True
    summary["budgets"]["frontier_ratio"]["accelat"]["note"] = "no frontier"
    assert acceleration.issue_targets(summary)["frontier"]["pass"] is False


def test_targets_are_not_applicable_without_accelat_or_the_baseline():
    assert acceleration.issue_targets({"baseline": "step", "policies": {"step": {}}}) == {
        "verdict": "n/a"
    }


def test_budgets_are_a_quarter_a_half_and_all_of_the_setting():
    assert acceleration.budgets_of(20) == [5, 10, 20]
    assert acceleration.budgets_of(12) == [3, 6, 12]
    assert acceleration.budgets_of(2) == [1, 2]


# -- acceleration: the grid on a toy digits setting ---------------------------------------------
@pytest.mark.slow
def test_grid_trains_every_arm_on_the_same_setup_and_its_summary_is_the_runs_own(tmp_path):
    torch.set_num_threads(1)
    overrides = dict(train_size=100, val_size=40, monitor_size=40, monitor_steps=1, epochs=4,
                     eval_size=40, eval_steps=2, lr_find_steps=5)  # fmt: skip
    arms = ["step:ema_epochs=0", "accelat"]
    out, img = tmp_path / "study", tmp_path / "img"
    img.mkdir()
    results = acceleration.run_setting(
        "digits", [0], out, arms=arms, overrides=overrides, img_dir=img, log=False
    )
    summary = results["digits-4ep"]
    assert json.loads((out / "compare.json").read_text()) == summary
    assert list(summary["policies"]) == arms and summary["baseline"] == "step:ema_epochs=0"
    assert summary["issue_targets"] == acceleration.issue_targets(summary)
    # the fixed shape ran at each budget (1, 2, 4 epochs), accelat once at the largest
    assert [p["budget"] for p in summary["budgets"]["points"]["step:ema_epochs=0"]] == [1, 2, 4]
    assert [p["budget"] for p in summary["budgets"]["points"]["accelat"]] == [4]
    # one finder; both arms start from its lr_max, on identical setups
    finder = json.loads((out / "lr_find_seed0.json").read_text())
    folders = {"step:ema_epochs=0": out / "step+ema_epochs=0" / "epochs4" / "seed0",
               "accelat": out / "accelat" / "epochs4" / "seed0"}  # fmt: skip
    configs = {a: json.loads((f / "config.json").read_text()) for a, f in folders.items()}
    for key in ("lr_max", "seed", "epochs", "train_size", "eps", "method", "replays", "model"):
        assert configs["step:ema_epochs=0"][key] == configs["accelat"][key], key
    assert configs["accelat"]["lr_max"] == "auto"  # as asked; what the finder found:
    assert configs["accelat"]["lr_find"]["lr_max"] == finder["lr_max"]
    assert configs["step:ema_epochs=0"]["ema_epochs"] == 0.0
    # the summary is what the runs' own files say
    target = summary["target"]
    for arm, folder in folders.items():
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").open()]
        report = json.loads((folder / "report.json").read_text())
        seed = summary["policies"][arm]["seeds"][0]
        hit = next((r for r in rows if r["robust_val_acc"] >= target), None)
        assert seed["passes_to_target"] == (None if hit is None else hit["passes"])
        assert seed["final_robust_acc"] == report["final"]["robust_acc"]
        assert seed["best_robust_acc"] == report["best"]["test"]["robust_acc"]
        assert summary["policies"][arm]["curve"]["passes"] == [r["passes"] for r in rows]
    assert summary["target"] == pytest.approx(0.95 * max(
        p["final_robust_val_acc"] for p in summary["policies"].values()))  # fmt: skip
    table = (out / "compare.md").read_text()
    assert "| accelat |" in table and "Fixed-shape frontier:" in table and "Targets:" in table
    for png in (img / "digits-4ep.png", img / "digits-4ep-frontier.png"):
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 1000
    # a second call finds every run finished and only rebuilds the comparison
    again = acceleration.run_setting(
        "digits", [0], out, arms=arms, overrides=overrides, img_dir=None, log=False
    )
    assert again["digits-4ep"]["policies"] == summary["policies"]
