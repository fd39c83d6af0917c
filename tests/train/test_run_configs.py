"""Configs and resumes you can trust: a saved run stands for a config only when it was made
with that config (``accelat compare`` and ``demo`` reuse, resume or refuse by one check,
:meth:`accelat_train.config.TrainConfig.differences`), the lr finder's result is kept apart
from what the user asked and reused only for the setting it was found for, and a finished run whose
schedule does not depend on its budget can be extended to the run it would have been.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from accelat_train import TrainConfig, train
from accelat_train.checkpoint import load_checkpoint
from accelat_train.cli import main
from accelat_train.compare import compare
from accelat_train.config import finding_differences
from accelat_train.run_dir import RunDirError
from tests.train.folders import snapshot

pytestmark = pytest.mark.slow

torch.set_num_threads(1)


def _base(**kw) -> TrainConfig:
    base = TrainConfig(
        dataset="digits", method="free", replays=2, eps=0.1, epochs=2, batch_size=40,
        train_size=120, val_size=40, monitor_size=40, monitor_steps=1, eval_size=40,
        eval_steps=1, lr_find_steps=5, device="cpu", ema_epochs=0.0,
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


def _no_training(*args, **kwargs):
    raise AssertionError("a run was trained")


# -- compare reuses only the runs of its own config ------------------------------------------------
def test_compare_with_the_same_setting_twice_reuses_its_runs_without_training(
    tmp_path, monkeypatch
):
    out = tmp_path / "cmp"
    first = compare(_base(), ["constant", "accelat"], [0], out)
    before = snapshot(out)
    monkeypatch.setattr("accelat_train.compare.train", _no_training)
    monkeypatch.setattr("accelat_train.compare.find_lr", _no_training)
    again = compare(_base(), ["constant", "accelat"], [0], out)
    assert again["policies"] == first["policies"]
    after = snapshot(out)
    assert {k: v for k, v in after.items() if not k.startswith("compare.")} == {
        k: v for k, v in before.items() if not k.startswith("compare.")
    }


def test_compare_refuses_a_finished_run_of_another_setting_naming_the_folder_and_the_field(
    tmp_path, monkeypatch
):
    out = tmp_path / "cmp"
    compare(_base(lr_max=0.05), ["constant"], [0], out)
    before = snapshot(out)
    monkeypatch.setattr("accelat_train.compare.train", _no_training)
    with pytest.raises(ValueError) as refused:
        compare(_base(lr_max=0.05, eps=0.05), ["constant"], [0], out)
    message = str(refused.value)
    assert f"{out / 'constant' / 'seed0'}" in message
    assert "eps: saved 0.1, requested 0.05" in message
    assert snapshot(out) == before


def test_compare_on_the_command_line_refuses_a_changed_eps_naming_the_field(tmp_path, capsys):
    out = tmp_path / "cmp"
    flags = ["--dataset", "digits", "--epochs", "1", "--batch-size", "40", "--train-size",
             "80", "--val-size", "40", "--monitor-size", "40", "--monitor-steps", "1",
             "--eval-size", "40", "--eval-steps", "1", "--lr-max", "0.05", "--device", "cpu",
             "--policies", "constant", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(["compare", *flags, "--eps", "0.1"]) == 0
    before = snapshot(out)
    assert main(["compare", *flags, "--eps", "0.05"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the note on the baseline
    assert error.startswith("accelat compare: error: ")
    assert f"{out / 'constant' / 'seed0'} (eps: saved 0.1, requested 0.05" in error
    assert snapshot(out) == before


def test_a_finder_cache_made_for_another_setting_is_refused_naming_the_file_and_the_field(
    tmp_path, monkeypatch
):
    out = tmp_path / "cmp"
    compare(_base(), ["constant"], [0], out)
    record = json.loads((out / "lr_find_seed0.json").read_text())
    assert record["setting"]["eps"] == 0.1 and record["setting"]["dataset"] == "digits"
    before = snapshot(out)
    monkeypatch.setattr("accelat_train.compare.find_lr", _no_training)
    with pytest.raises(ValueError) as refused:
        compare(_base(eps=0.05), ["constant"], [0], out)
    assert f"{out / 'lr_find_seed0.json'} holds the lr finder's result for another setting" in (
        str(refused.value)
    )
    assert "eps: saved 0.1, requested 0.05" in str(refused.value)
    assert snapshot(out) == before


def test_compare_restart_moves_a_finder_cache_of_another_setting_aside_and_finds_again(tmp_path):
    out = tmp_path / "cmp"
    compare(_base(), ["constant"], [0], out)
    before = snapshot(out)
    compare(_base(eps=0.05), ["constant"], [0], out, restart=True)
    assert (out / "lr_find_seed0.previous-1.json").read_bytes() == before["lr_find_seed0.json"]
    assert (out / "lr_find_seed0.previous-1.png").read_bytes() == before["lr_find_seed0.png"]
    assert json.loads((out / "lr_find_seed0.json").read_text())["setting"]["eps"] == 0.05
    saved = json.loads((out / "constant" / "seed0" / "config.json").read_text())
    assert saved["eps"] == 0.05 and saved["lr_find"]["setting"]["eps"] == 0.05
    aside = snapshot(out / "constant" / "seed0.previous-1")
    assert aside == {k.removeprefix("constant/seed0/"): v for k, v in before.items()
                     if k.startswith("constant/seed0/")}  # fmt: skip


def test_compare_resumes_an_unfinished_run_of_its_config_and_refuses_one_of_another(tmp_path):
    out = tmp_path / "cmp"
    compare(_base(lr_max=0.05), ["constant"], [0], out)
    folder = out / "constant" / "seed0"
    report = json.loads((folder / "report.json").read_text())
    (folder / "report.json").unlink()  # as if killed before its final evaluation
    with pytest.raises(ValueError, match=r"ema_epochs: saved 0\.0, requested 1\.0"):
        compare(_base(lr_max=0.05, ema_epochs=1.0), ["constant"], [0], out)
    assert not (folder / "report.json").exists()
    compare(_base(lr_max=0.05), ["constant"], [0], out)
    again = json.loads((folder / "report.json").read_text())
    assert again["final"]["clean_acc"] == report["final"]["clean_acc"]
    assert again["epochs"] == report["epochs"] == 2


# -- the one check ---------------------------------------------------------------------------
def test_a_saved_run_differs_from_a_config_in_every_field_that_defines_the_run():
    saved = _base(lr_max=0.05).to_json()
    assert _base(lr_max=0.05).differences(saved) == []
    # where the files go and what machine runs it do not count
    assert _base(lr_max=0.05, out="elsewhere", device="auto").differences(saved) == []
    # the evaluation counts only when the saved evaluation is reused
    changed = _base(lr_max=0.05, eval_size=20, eps=0.05, seed=3)
    assert changed.differences(saved) == [
        "eps: saved 0.1, requested 0.05", "seed: saved 0, requested 3",
    ]  # fmt: skip
    assert "eval_size: saved 40, requested 20" in changed.differences(saved, evaluated=True)
    assert _base(lr_max=0.1).differences(saved) == ["lr_max: saved 0.05, requested 0.1"]


def test_a_window_is_compared_as_the_window_it_gives():
    saved = _base(policy="accelat", lr_max=0.05, epochs=20).to_json()  # window None: 2
    assert _base(policy="accelat", lr_max=0.05, epochs=20, window=2).differences(saved) == []
    assert _base(policy="accelat", lr_max=0.05, epochs=20, window=1).differences(saved) == [
        "window: saved None (2 for its budget), requested 1"
    ]


def test_a_config_json_that_held_the_finders_lr_in_place_of_auto_asked_for_auto():
    record = {"lr_max": 0.0123, "setting": {}}
    old = {**_base().to_json(), "lr_max": 0.0123, "lr_find": record}
    assert _base(lr_find=record).differences(old) == []
    assert _base(lr_find={**record, "lr_max": 0.02}).differences(old) == [
        "lr_max found by the lr finder: saved 0.0123, requested 0.02"
    ]


# -- the finder's result is kept apart from what was asked -----------------------------------
def _digits_run(out: Path, **kw) -> TrainConfig:
    cfg = _base(policy="constant", epochs=1, train_size=80, out=str(out), **kw)
    train(cfg, quiet=True)
    return cfg


def test_a_runs_config_keeps_auto_and_the_finders_record_with_its_setting(tmp_path):
    out = tmp_path / "run"
    cfg = _digits_run(out)
    saved = json.loads((out / "config.json").read_text())
    assert saved["lr_max"] == "auto"
    assert saved["lr_find"]["setting"] == cfg.finder_setting()
    again = dataclasses.replace(cfg, lr_find=saved["lr_find"], out="elsewhere", eval_size=10)
    assert again.reused_lr_max() == saved["lr_find"]["lr_max"]
    # another network or data: the record does not hold
    other = dataclasses.replace(again, model="resnet20")
    assert other.reused_lr_max() is None
    assert finding_differences(saved["lr_find"]["setting"], other.finder_setting()) == [
        "model: saved 'cnn', requested 'resnet20'"
    ]


def test_a_digits_config_on_an_image_folder_finds_its_own_lr_and_says_so(tmp_path, monkeypatch):
    from tests.train.data.test_folder import write_folder

    monkeypatch.setenv("ACCELAT_CACHE", str(tmp_path / "cache"))
    first = tmp_path / "digits"
    _digits_run(first)
    write_folder(tmp_path / "images", size=(8, 8), train=50, test=4)
    again = tmp_path / "folder"
    argv = ["train", "--config", str(first / "config.json"), "--dataset", "folder",
            "--data-dir", str(tmp_path / "images"), "--eval-size", "12",  # its test set's size
            "--out", str(again)]  # fmt: skip
    with pytest.warns(UserWarning) as warned:
        assert main(argv) == 0
    said = [str(w.message) for w in warned if "recorded lr_max" in str(w.message)]
    recorded = json.loads((first / "config.json").read_text())["lr_find"]["lr_max"]
    assert said == [
        f"lr finder: the recorded lr_max {recorded!r} does not hold for this run (dataset: "
        f"saved 'digits', requested 'folder'; data_dir: saved None, requested "
        f"{str(tmp_path / 'images')!r}); running the range test again"
    ]
    saved = json.loads((again / "config.json").read_text())
    assert saved["lr_max"] == "auto" and saved["lr_find"]["setting"]["dataset"] == "folder"
    assert (again / "lr_find.png").is_file()


def test_log_is_kept_in_the_config_and_a_config_rerun_logs_the_same(tmp_path, capsys):
    first = tmp_path / "first"
    flags = ["--dataset", "digits", "--epochs", "1", "--train-size", "80", "--val-size", "40",
             "--monitor-size", "40", "--monitor-steps", "1", "--eval-size", "40",
             "--eval-steps", "1", "--lr-max", "0.05", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(["train", *flags, "--log", "csv", "--out", str(first)]) == 0
    assert json.loads((first / "config.json").read_text())["log"] == ["csv"]
    again = tmp_path / "again"
    assert main(["train", "--config", str(first / "config.json"), "--out", str(again)]) == 0
    header, *rows = (again / "metrics.csv").read_text().splitlines()
    assert header == (first / "metrics.csv").read_text().splitlines()[0] and len(rows) == 1


@pytest.mark.parametrize("command", ["train", "compare", "demo", "lr-find"])
def test_print_config_needs_no_out_and_every_run_needs_one(command, capsys, tmp_path):
    assert main([command, "--eps", "0.05", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["eps"] == 0.05
    if command != "demo":  # the demo has a folder of its own
        with pytest.raises(SystemExit) as exit_:
            main([command, "--eps", "0.05"])
        assert exit_.value.code == 2
        assert "the following arguments are required: --out" in capsys.readouterr().err


# -- a new budget ----------------------------------------------------------------------------
def _rows(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def _same_weights(a: Path, b: Path) -> None:
    x, y = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    for key in ("model", "evaluated", "optimizer"):
        assert (key in x) == (key in y), key
    for key in ("model", "evaluated"):
        for name in x.get(key, {}):
            assert torch.equal(x[key][name], y[key][name]), (key, name)


def _extension_cfg(out: Path, **kw) -> TrainConfig:
    kw = {"anneal": None, **kw}  # AccelAT's anneal ends by the budget (the test below)
    return _base(policy="accelat", lr_max=0.05, train_size=80, monitor_every=1,
                 ema_epochs=1.0, out=str(out), **kw)  # fmt: skip


def test_an_accelat_run_with_its_anneal_is_not_extended_and_the_refusal_says_why(tmp_path, capsys):
    out = tmp_path / "run"
    train(_extension_cfg(out, epochs=2, anneal=0.3), quiet=True)
    before = snapshot(out)
    assert main(["train", "--config", str(out / "config.json"), "--epochs", "4", "--resume",
                 "--out", str(out), "--quiet"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "its policy would change (budget: 2 -> 4); AccelAT's anneal ends by the budget: " in err
    assert "a run trained with --anneal none can be extended" in err
    assert snapshot(out) == before


def test_a_finished_accelat_run_extended_equals_the_uninterrupted_run(tmp_path, capsys):
    whole = tmp_path / "whole"
    train(_extension_cfg(whole, epochs=4), quiet=True)
    out = tmp_path / "extended"
    train(_extension_cfg(out, epochs=2), quiet=True)
    assert main(["train", "--config", str(out / "config.json"), "--epochs", "4", "--resume",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    assert _rows(out) == _rows(whole)
    _same_weights(out, whole)
    assert json.loads((out / "config.json").read_text())["epochs"] == 4
    report, want = (json.loads((f / "report.json").read_text()) for f in (out, whole))
    assert report["final"]["clean_acc"] == want["final"]["clean_acc"]
    assert report["epochs"] == want["epochs"]


def test_a_window_that_would_change_with_the_budget_is_kept_only_when_given(tmp_path):
    out = tmp_path / "run"
    train(_extension_cfg(out, epochs=2), quiet=True)  # window None: 1 for 2 epochs
    before = snapshot(out)
    with pytest.raises(RunDirError) as refused:
        train(_extension_cfg(out, epochs=20), quiet=True, resume=True)
    assert "with a budget of 20 its policy would change (window: 1 -> 2); pass window=1 to " in (
        str(refused.value)
    )
    assert "pass --window 1 to keep the run's window" in refused.value.flags
    assert snapshot(out) == before
    whole = tmp_path / "whole"
    train(_extension_cfg(whole, epochs=20, window=1), quiet=True)
    train(_extension_cfg(out, epochs=20, window=1), quiet=True, resume=True)
    assert _rows(out) == _rows(whole)
    _same_weights(out, whole)
    assert json.loads((out / "config.json").read_text())["window"] == 1


@pytest.mark.parametrize("policy", ["step", "onecycle", "schedulefree"])
def test_a_budget_shaped_run_is_not_extended_and_the_refusal_says_why_and_what_to_do(
    tmp_path, policy, capsys
):
    if policy == "schedulefree":
        pytest.importorskip("schedulefree")
    out = tmp_path / "run"
    cfg = _base(policy=policy, lr_max=0.05, train_size=80, epochs=1, out=str(out))
    train(cfg, quiet=True)
    before = snapshot(out)
    with pytest.raises(RunDirError) as refused:
        train(dataclasses.replace(cfg, epochs=3), quiet=True, resume=True)
    message = str(refused.value)
    assert message.startswith(f"epochs=3: the run in {out} was trained for 1 epochs and its ")
    assert "so continuing it could not give the run a budget of 3 epochs gives; start a new " in (
        message
    )
    assert "policy_config" in message
    flags = refused.value.flags
    assert flags.startswith("--epochs 3: ") and "--restart" in flags and "--policy-config" in flags
    assert snapshot(out) == before


def test_a_budget_below_the_epochs_a_run_has_trained_is_refused(tmp_path):
    out = tmp_path / "run"
    train(_extension_cfg(out, epochs=2), quiet=True)
    before = snapshot(out)
    with pytest.raises(RunDirError, match=r"has trained 2 epochs already; give it a budget of"):
        train(_extension_cfg(out, epochs=1), quiet=True, resume=True)
    assert snapshot(out) == before


def test_a_field_added_after_a_run_was_made_counts_as_its_default() -> None:
    from accelat_train.config import TrainConfig

    saved = TrainConfig(eps=0.1).to_json()
    del saved["anneal"], saved["early_stop"]  # as a config.json written before they existed
    # A missing early_stop is its default (0: off), the behaviour before it existed; a missing
    # anneal is no anneal, the behaviour before its default (0.3) existed.
    assert TrainConfig(eps=0.1, anneal=None).differences(saved) == []
    assert TrainConfig(eps=0.1).differences(saved) == [
        "anneal: saved None (no anneal in its config.json), requested 0.3"
    ]
    assert TrainConfig(eps=0.1, anneal=None, early_stop=3).differences(saved) == [
        "early_stop: saved 0 (no early_stop in its config.json), requested 3"
    ]
