"""``accelat eval`` and ``export`` refuse what ``train`` refuses, the same way: a test subset
larger than the test set, a ``--data-dir`` that does not exist or that the run's data set
does not read; and they name what they find instead of an accuracy that means nothing or a
folder that is not the one given: non-finite weights, a run that has not written its config
yet, a run that is still going.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from accelat_train.cli import main
from accelat_train.run_dir import RunDir

TINY = [
    "--dataset", "digits", "--eps", "0.1", "--batch-size", "40", "--train-size", "200",
    "--val-size", "40", "--monitor-size", "40", "--monitor-steps", "2", "--eval-size", "40",
    "--eval-steps", "2", "--device", "cpu", "--quiet", "--policy", "step", "--lr-max", "0.05",
    "--epochs", "1",
]  # fmt: skip


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run this test may damage."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns(".lock"))
    return copy


pytestmark = pytest.mark.slow


# -- what train refuses, eval refuses --------------------------------------------------------
def test_an_eval_size_beyond_the_test_set_is_refused_by_eval_and_by_train(run, tmp_path, capsys):
    from accelat_train.data import load_splits

    images = len(load_splits("digits").test)
    says = f"--eval-size must be at most the test set's {images} images, got 99999999"
    code, _, err = _run(["eval", "--checkpoint", str(run), "--eval-size", "99999999"], capsys)
    assert code == 2 and says in err, err
    flags = [*TINY[:-6], "--eval-size", "99999999", *TINY[-4:]]
    code, _, err = _run(["train", *flags, "--out", str(tmp_path / "new")], capsys)
    assert code == 2 and says in err, err
    assert not (tmp_path / "new" / "metrics.jsonl").exists()


@pytest.mark.parametrize("size", ["forty", 0, 2.5, True])
def test_an_eval_size_that_is_no_count_is_named_not_compared(size):
    """A run's config.json edited by hand (``"eval_size": "forty"``) reaches
    ``Run.test_data()`` through here: a TypeError of ``>`` before."""
    from accelat_train.adversarial.evaluation import eval_subset

    with pytest.raises(ValueError, match=r"eval_size must be an integer >= 1 \(or None: all\)"):
        eval_subset(torch.zeros(5, 1, 2, 2), torch.zeros(5, dtype=torch.long), size)


def test_eval_refuses_a_data_dir_that_does_not_exist_as_train_does(run, capsys):
    code, _, err = _run(["eval", "--checkpoint", str(run), "--data-dir", "/nonexistent"], capsys)
    assert code == 2
    assert "--data-dir /nonexistent: no such file or directory" in err


def test_eval_refuses_a_data_dir_the_runs_data_set_does_not_read(run, tmp_path, capsys):
    code, _, err = _run(["eval", "--checkpoint", str(run), "--data-dir", str(tmp_path)], capsys)
    assert code == 2
    assert "--data-dir applies to cifar10, cifar100, folder and module:factory" in err
    assert "dataset 'digits'" in err


def test_eval_refuses_a_device_train_refuses(run, capsys):
    code, _, err = _run(["eval", "--checkpoint", str(run), "--device", "gpu"], capsys)
    assert code == 2
    assert "--device must be auto, cpu, cuda or cuda:N, got 'gpu'" in err


# -- what the run holds --------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["best", "last"])
def test_non_finite_weights_are_refused_naming_the_file_and_a_tensor(which, run, capsys):
    name = {"best": "best.pt", "last": "checkpoint.pt"}[which]
    state = torch.load(run / name, weights_only=True)
    key = "evaluated" if "evaluated" in state else "model"
    first = next(k for k, v in state[key].items() if v.is_floating_point())
    state[key][first][0] = float("nan")
    torch.save(state, run / name)
    code, out, err = _run(["eval", "--checkpoint", str(run), "--which", which], capsys)
    assert code == 2 and out == ""
    assert f"{run / name} holds non-finite weights (NaN or inf in {first})" in err
    code, out, err = _run(["export", str(run), "--which", which, "--out",
                           str(run / "m.pt2")], capsys)  # fmt: skip
    assert code == 2 and f"{run / name} holds non-finite weights" in err
    assert not (run / "m.pt2").exists()


@pytest.mark.parametrize("command", ["eval", "export"])
def test_a_folder_before_its_config_is_named_not_its_parent(command, tmp_path, capsys):
    folder = tmp_path / "starting"
    folder.mkdir()
    argv = ["eval", "--checkpoint", str(folder)] if command == "eval" else [
        "export", str(folder), "--out", str(tmp_path / "m.pt2")]  # fmt: skip
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert f"{folder} holds no config.json: it is not a run folder, or its run has not" in err
    with RunDir(folder).claimed():  # a live training process holds the folder
        code, _, err = _run(argv, capsys)
    assert code == 2
    going = f"still going (process {os.getpid()} holds {folder / '.lock'})"
    assert f"{folder} holds no config.json yet: the run is {going}" in err


def test_a_path_that_does_not_exist_is_named(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    code, _, err = _run(["eval", "--checkpoint", str(missing)], capsys)
    assert code == 2
    assert f"no run folder or checkpoint at {missing}" in err


def test_eval_of_a_run_still_going_says_so_and_evaluates_its_last_checkpoint(run, capsys):
    with RunDir(run).claimed():
        code, out, err = _run(["eval", "--checkpoint", str(run)], capsys)
    assert code == 0, err
    assert f"note: the run in {run} is still going (process {os.getpid()}); this is its " in err
    assert "epoch 1" in out
