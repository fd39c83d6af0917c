"""``accelat compare`` (and ``demo``) refuse, before any work, what cannot mean what it says:
a target outside (0, 1], a baseline that is not one of the policies, a seed, budget or policy
named twice. One check (:func:`accelat_train.compare.check_comparison`) serves the command
line (exit 2, naming the flag) and the Python API (``ValueError`` naming the parameter).
"""

from __future__ import annotations

import pytest

from accelat_train import TrainConfig
from accelat_train.cli import main
from accelat_train.compare import BASELINE, check_comparison, compare

FLAGS = ["--dataset", "digits", "--epochs", "1", "--lr-max", "0.05", "--device", "cpu"]
BAD = [  # (flags, what compare() raises, what the command line says, in argparse's words)
    (["--target", "2"], "--target must be a robust validation accuracy in (0, 1], got 2.0",
     "argument --target: '2' must be a number in (0, 1] (a robust accuracy, 0.45 for 45 %)"),
    (["--target", "nan"], "--target must be a robust validation accuracy in (0, 1], got nan",
     "argument --target: 'nan' must be a number in (0, 1] (a robust accuracy, 0.45 for 45 %)"),
    (["--target", "inf"], "--target must be a robust validation accuracy in (0, 1], got inf",
     "argument --target: 'inf' must be a number in (0, 1] (a robust accuracy, 0.45 for 45 %)"),
    (["--target", "0"], "--target must be a robust validation accuracy in (0, 1], got 0.0",
     "argument --target: '0' must be a number in (0, 1] (a robust accuracy, 0.45 for 45 %)"),
    (["--target", "-0.5"], "--target must be a robust validation accuracy in (0, 1], got -0.5",
     "argument --target: '-0.5' must be a number in (0, 1] (a robust accuracy, 0.45 for 45 %)"),
    (
        ["--policies", "step,accelat", "--baseline", "onecycle"],
        "--baseline 'onecycle' is not among the policies (step, accelat): add it to them, or "
        "name one of them",
        None,
    ),
    (["--seeds", "0,0"], "--seeds must name each once, got 0 twice in 0,0",
     "argument --seeds: '0,0' names seed 0 twice"),
    (["--seeds", "1,2,1"], "--seeds must name each once, got 1 twice in 1,2,1",
     "argument --seeds: '1,2,1' names seed 1 twice"),
    (["--budgets", "5,5"], "--budgets must name each once, got 5 twice in 5,5",
     "argument --budgets: '5,5' names budget 5 twice"),
    (["--budgets", "0,5"], "--budgets must be epochs >= 1, got 0,5",
     "argument --budgets: '0' must be >= 1"),
    (["--policies", "step,step"], "--policies must name each once, got step twice in step,step",
     "argument --policies: 'step,step' names arm step twice"),
]  # fmt: skip


@pytest.mark.parametrize("command", ["compare", "demo"])
@pytest.mark.parametrize(("flags", "says", "cli_says"), BAD)
def test_a_bad_comparison_flag_exits_2_naming_it_before_any_work(
    command, flags, says, cli_says, tmp_path, capsys, monkeypatch
):
    def no_work(*args, **kwargs):
        raise AssertionError("work began before the flags were checked")

    monkeypatch.setattr("accelat_train.compare.train", no_work)
    monkeypatch.setattr("accelat_train.compare.find_lr", no_work)
    with pytest.raises(SystemExit) as exit_:
        main([command, *FLAGS, *flags, "--out", str(tmp_path / "cmp")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"accelat {command}: error: {cli_says or says}"
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize(("flags", "says", "cli_says"), BAD)
def test_compare_in_python_refuses_the_same_naming_the_parameter(flags, says, cli_says, tmp_path):
    given = {"policies": [BASELINE, "accelat"], "seeds": [0], "budgets": None,
             "baseline": None, "target": None}  # fmt: skip
    name, text = flags[-2].removeprefix("--"), flags[-1]
    parse = {"target": float, "seeds": _ints, "budgets": _ints, "policies": _names}
    given[name] = parse.get(name, str)(text)
    if len(flags) == 4:
        given["policies"] = _names(flags[1])
    with pytest.raises(ValueError) as refused:
        compare(TrainConfig(), given.pop("policies"), given.pop("seeds"), tmp_path / "cmp",
                **given)  # fmt: skip
    assert str(refused.value) == says.removeprefix("--")
    assert not (tmp_path / "cmp").exists()


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",")]


def _names(text: str) -> list[str]:
    return text.split(",")


def test_the_baseline_defaults_to_free_ats_recipe_only_when_it_is_compared():
    assert check_comparison([BASELINE, "accelat"], [0], None, None, None) == BASELINE
    assert check_comparison(["constant", "accelat"], [0], None, None, None) is None
    assert check_comparison(["constant", "accelat"], [0], [1, 2], "constant", 1.0) == "constant"


def test_compare_refuses_an_out_holding_a_training_run_and_adds_nothing(tmp_path, capsys):
    run = tmp_path / "run"  # what `accelat train --out run` left
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "metrics.jsonl").write_text("")
    argv = ["compare", *FLAGS, "--policies", "step", "--seeds", "0", "--out", str(run)]
    assert main(argv) == 2
    assert f"--out {run} holds a training run (config.json, metrics.jsonl), not a " in (
        capsys.readouterr().err
    )
    with pytest.raises(ValueError, match=r"out .* holds a training run .*; choose another out"):
        compare(TrainConfig(dataset="digits", epochs=1, out="x"), ["step"], [0], run)
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics.jsonl"]
