"""The demo's closing sentences (reporting/findings.py), on compare.json-shaped dicts made
here: they name the first arm to the target, each arm's accuracy, and whether AccelAT
stopped by itself, from the numbers the dict holds."""

from __future__ import annotations

from accelat_train.reporting import tables
from accelat_train.reporting.findings import findings, first_to_target, format_findings


def _arm(passes, total, best, spent, stops, *, ratio=None):
    """One arm: mean passes to target (None: missed), best-checkpoint robust accuracy, passes
    spent, and per seed (epoch, reason) of its stop."""
    return {
        "passes_to_target": passes, "total_passes_to_target": total, "best_robust_acc": best,
        "final_robust_acc": best, "passes_spent": spent, "ratio_to_baseline": ratio,
        "seeds": [{"stopped": {"epoch": e, "reason": r}} for e, r in stops],
    }  # fmt: skip


def _summary(accelat_stop=(16, "policy")):
    return {
        "target": 0.798,
        "baseline": "step:ema_epochs=0",
        "fixed_shape": ["step:ema_epochs=0", "onecycle"],
        "best_fixed": "step:ema_epochs=0",
        "policies": {
            "step:ema_epochs=0": _arm(
                14856.0, 17332.0, 0.827, 27236.0, [(20, "budget")], ratio=1.0
            ),
            "onecycle": _arm(None, None, 0.844, 27236.0, [(20, "budget")]),
            "constant": _arm(7512.0, 9988.0, 0.875, 27236.0, [(20, "budget")], ratio=0.51),
            "accelat": _arm(9000.0, 11476.0, 0.864, 22284.0, [accelat_stop], ratio=0.61),
        },
    }


def test_the_first_sentence_names_the_first_arm_to_the_target_and_its_passes():
    summary = _summary()
    assert first_to_target(summary["policies"]) == ["constant"]
    race = findings(summary)[0]
    assert race.startswith("First to the target (robust validation accuracy >= 0.798): constant,")
    assert "after 7.5k training passes (10.0k with every pass counted)" in race
    assert "0.51x the passes of step:ema_epochs=0" in race
    assert race.endswith("onecycle did not reach it on every seed.")


def test_a_tie_names_every_arm_and_no_arm_reaching_says_so():
    summary = _summary()
    summary["policies"]["accelat"]["passes_to_target"] = 7512.0
    assert first_to_target(summary["policies"]) == ["constant", "accelat"]
    assert ": constant and accelat, after 7.5k" in findings(summary)[0]
    for arm in summary["policies"].values():
        arm["passes_to_target"] = None
    assert findings(summary)[0].endswith(": none; no arm reached it on every seed.")


def test_the_accuracies_are_each_best_checkpoints_from_most_to_least_accurate():
    assert findings(_summary())[1] == (
        "Robust test accuracy of each best checkpoint (best.pt): constant 87.5 %, "
        "accelat 86.4 %, onecycle 84.4 %, step:ema_epochs=0 82.7 %."
    )


def test_accelat_stopping_by_itself_is_said_with_its_epoch_and_its_passes():
    text = findings(_summary())
    assert text[2] == (
        "accelat stopped by itself after epoch 16 of 20, spending 22.3k passes "
        f"({22284 / 27236:.2f}x the 27.2k of step:ema_epochs=0)."
    )
    meaning = next(line for line in text if line.startswith("What it means"))
    assert "accelat reached the target 1.20x as late as constant" in meaning
    assert "ended 1.1 points below the most accurate, constant" in meaning


def test_accelat_running_its_whole_budget_is_said_plainly_with_why():
    text = format_findings(_summary(accelat_stop=(20, "budget")))
    assert "accelat did not stop by itself: it ran its whole budget of 20 epochs (its final" in (
        text
    )
    assert "stopped by itself" not in text.replace("did not stop by itself", "")


def test_an_early_stopped_arm_says_where_it_stopped():
    summary = _summary()
    summary["policies"]["constant:early_stop=3"] = _arm(
        7512.0, 9988.0, 0.85, 15000.0, [(9, "early_stop"), (11, "early_stop")]
    )
    assert (
        "constant:early_stop=3 was stopped early (--early-stop) on 2 of 2 seeds after epochs 9 "
        "and 11 of 20, spending 15.0k passes" in format_findings(summary)
    )


def test_accelat_ended_by_early_stopping_is_not_said_to_have_run_its_budget():
    summary = _summary(accelat_stop=(12, "early_stop"))
    text = format_findings(summary)
    assert "accelat was stopped early (--early-stop) after epoch 12 of 20" in text
    assert "did not stop by itself" not in text


def test_the_names_and_the_tables_are_explained():
    text = format_findings(_summary())
    assert "step:ema_epochs=0: Free AT's recipe" in text and "without weight averaging" in text
    assert "the second also counts the lr finder's passes" in text
    assert (
        "Budget-shaped: step:ema_epochs=0 and onecycle fit their shape to the epoch budget" in text
    )
    assert "; constant does not depend on it; accelat only ends its final anneal by " in text


def test_the_table_calls_the_fastest_budget_shaped_schedule_by_that_name():
    summary = _summary()
    for arm in summary["policies"].values():
        arm.update(passes_to_target_std=0.0, seconds_to_target=None, seconds_to_target_std=None,
                   reached=1, final_clean_acc=0.9, final_clean_acc_std=0.0,
                   final_robust_acc_std=0.0, ratio_to_best_fixed=None)  # fmt: skip
    table = tables.format_table({**summary, "target_rule": "given", "notes": []})
    assert "fixed-shape" not in table and "| × best budget-shaped |" in table
    assert "Fastest budget-shaped schedule (a shape fitted to the epoch budget): " in table
