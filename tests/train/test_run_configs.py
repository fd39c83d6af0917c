"""Configs and resumes you can trust: a saved run stands for a config only when it was made
with that config (``accelat compare`` and ``demo`` reuse, resume or refuse by one check,
:func:`accelat_train.config.run_differences`), the lr finder's result is kept apart from what
the user asked and reused only for the setting it was found for, and a finished run whose
schedule does not depend on its budget can be extended to the run it would have been.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from accelat_train import TrainConfig
from accelat_train.cli import main
from accelat_train.compare import compare
from accelat_train.config import run_differences

pytestmark = pytest.mark.slow

torch.set_num_threads(1)


def _base(**kw) -> TrainConfig:
    base = TrainConfig(
        dataset="digits", method="free", replays=2, eps=0.1, epochs=2, batch_size=40,
        train_size=120, val_size=40, monitor_size=40, monitor_steps=1, eval_size=40,
        eval_steps=1, lr_find_steps=5, device="cpu", ema_epochs=0.0,
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (but the lock, which holds the last claimer's pid)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _no_training(*args, **kwargs):
    raise AssertionError("a run was trained")


# -- compare reuses only the runs of its own config ------------------------------------------------
def test_compare_with_the_same_setting_twice_reuses_its_runs_without_training(
    tmp_path, monkeypatch
):
    out = tmp_path / "cmp"
    first = compare(_base(), ["constant", "accelat"], [0], out)
    before = _snapshot(out)
    monkeypatch.setattr("accelat_train.compare.train", _no_training)
    monkeypatch.setattr("accelat_train.compare.find_lr", _no_training)
    again = compare(_base(), ["constant", "accelat"], [0], out)
    assert again["policies"] == first["policies"]
    after = _snapshot(out)
    assert {k: v for k, v in after.items() if not k.startswith("compare.")} == {
        k: v for k, v in before.items() if not k.startswith("compare.")
    }


def test_compare_refuses_a_finished_run_of_another_setting_naming_the_folder_and_the_field(
    tmp_path, monkeypatch
):
    out = tmp_path / "cmp"
    compare(_base(lr_max=0.05), ["constant"], [0], out)
    before = _snapshot(out)
    monkeypatch.setattr("accelat_train.compare.train", _no_training)
    with pytest.raises(ValueError) as refused:
        compare(_base(lr_max=0.05, eps=0.05), ["constant"], [0], out)
    message = str(refused.value)
    assert f"{out / 'constant' / 'seed0'}" in message
    assert "eps: saved 0.1, requested 0.05" in message
    assert _snapshot(out) == before


def test_compare_on_the_command_line_refuses_a_changed_eps_naming_the_field(tmp_path, capsys):
    out = tmp_path / "cmp"
    flags = ["--dataset", "digits", "--epochs", "1", "--batch-size", "40", "--train-size",
             "80", "--val-size", "40", "--monitor-size", "40", "--monitor-steps", "1",
             "--eval-size", "40", "--eval-steps", "1", "--lr-max", "0.05", "--device", "cpu",
             "--policies", "constant", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(["compare", *flags, "--eps", "0.1"]) == 0
    before = _snapshot(out)
    assert main(["compare", *flags, "--eps", "0.05"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("accelat compare: error: ")
    assert f"{out / 'constant' / 'seed0'} (eps: saved 0.1, requested 0.05" in err
    assert _snapshot(out) == before


def test_a_finder_cache_made_for_another_setting_is_refused_naming_the_file_and_the_field(
    tmp_path, monkeypatch
):
    out = tmp_path / "cmp"
    compare(_base(), ["constant"], [0], out)
    record = json.loads((out / "lr_find_seed0.json").read_text())
    assert record["setting"]["eps"] == 0.1 and record["setting"]["dataset"] == "digits"
    before = _snapshot(out)
    monkeypatch.setattr("accelat_train.compare.find_lr", _no_training)
    with pytest.raises(ValueError) as refused:
        compare(_base(eps=0.05), ["constant"], [0], out)
    assert f"{out / 'lr_find_seed0.json'} holds the lr finder's result for another setting" in (
        str(refused.value)
    )
    assert "eps: saved 0.1, requested 0.05" in str(refused.value)
    assert _snapshot(out) == before


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
    assert run_differences(_base(lr_max=0.05), saved) == []
    # where the files go and what machine runs it do not count
    assert run_differences(_base(lr_max=0.05, out="elsewhere", device="auto"), saved) == []
    # the evaluation counts only when the saved evaluation is reused
    changed = _base(lr_max=0.05, eval_size=20, eps=0.05, seed=3)
    assert run_differences(changed, saved) == [
        "eps: saved 0.1, requested 0.05", "seed: saved 0, requested 3",
    ]  # fmt: skip
    assert "eval_size: saved 40, requested 20" in run_differences(changed, saved, evaluated=True)
    assert run_differences(_base(lr_max=0.1), saved) == ["lr_max: saved 0.05, requested 0.1"]


def test_a_window_is_compared_as_the_window_it_gives():
    saved = _base(policy="accelat", lr_max=0.05, epochs=20).to_json()  # window None: 2
    assert run_differences(_base(policy="accelat", lr_max=0.05, epochs=20, window=2), saved) == []
    assert run_differences(_base(policy="accelat", lr_max=0.05, epochs=20, window=1), saved) == [
        "window: saved None (2 for its budget), requested 1"
    ]


def test_a_config_json_that_held_the_finders_lr_in_place_of_auto_asked_for_auto():
    record = {"lr_max": 0.0123, "setting": {}}
    old = {**_base().to_json(), "lr_max": 0.0123, "lr_find": record}
    assert run_differences(_base(lr_find=record), old) == []
    assert run_differences(_base(lr_find={**record, "lr_max": 0.02}), old) == [
        "lr_max found by the lr finder: saved 0.0123, requested 0.02"
    ]
