"""What one flag may ask for is bounded, and the bound is said: a seed torch and numpy take,
a plot of at most a million steps. A value past the bound is one error naming the flag,
before anything is created.
"""

from __future__ import annotations

import os

import pytest

from accelat_train.cli import main

HUGE = "99999999999999999999999"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["train", "--seed", HUGE], f"argument --seed: '{HUGE}' must be in [0, 4294967295]"),
        (["train", "--seed", "4294967296"], "argument --seed: '4294967296' must be in [0, "),
        (["compare", "--seeds", f"0,{HUGE}"], f"argument --seeds: '{HUGE}' must be in [0, "),
        (["lr-find", "--seed", "-1"], "argument --seed: '-1' must be >= 0"),
    ],
)
def test_a_seed_past_what_torch_and_numpy_take_names_the_flag_and_creates_nothing(
    argv, says, tmp_path, capsys
):
    code, err = _run([*argv, "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert says in err
    assert not (tmp_path / "run").exists()


def test_the_largest_seed_is_one_torch_numpy_and_the_digits_split_accept():
    import numpy as np
    import torch

    from accelat_train.config import TrainConfig
    from accelat_train.parsers import MAX_SEED

    cfg = TrainConfig(seed=MAX_SEED)
    torch.Generator().manual_seed(cfg.seed + 7919)  # the lr finder's generator
    np.random.default_rng([cfg.seed, 10**6, 8, 1])  # the loader's
    np.random.RandomState(cfg.seed)  # numpy's legacy seeding, scikit-learn's random_state
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 4294967295\]"):
        TrainConfig(seed=MAX_SEED + 1)


def test_plot_policy_steps_are_bounded_and_the_help_says_so(tmp_path, capsys):
    code, err = _run(["plot-policy", "--steps", "10000000000", "--out", str(tmp_path / "p.png")],
                     capsys)  # fmt: skip
    assert code == 2
    assert "argument --steps: '10000000000' must be in [1, 1000000]" in err
    assert not (tmp_path / "p.png").exists()
    with pytest.raises(SystemExit):
        main(["plot-policy", "--help"])
    assert "steps to draw, at most 1,000,000" in " ".join(capsys.readouterr().out.split())


def test_plot_policy_in_python_is_bounded_too(tmp_path):
    from accelat_core import Constant
    from accelat_train.reporting.plots import plot_policy

    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 1000000\]"):
        plot_policy(Constant(0.1), 10**10, tmp_path / "p.png")


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--target", "2"], "argument --target: '2' must be a number in (0, 1]"),
        (["--target", "nan"], "argument --target: 'nan' must be a number in (0, 1]"),
        (["--seeds", "0,0"], "argument --seeds: '0,0' names seed 0 twice"),
        (["--budgets", "0"], "argument --budgets: '0' must be >= 1"),
        (["--policies", "constant,step", "--baseline", "onecycle"],
         "--baseline 'onecycle' is not among the policies (constant, step)"),
    ],
)  # fmt: skip
def test_compare_refuses_what_it_cannot_compare_before_training(
    flags, says, tmp_path, capsys, monkeypatch
):
    def no_training(*args, **kwargs):
        raise AssertionError("compare started training before checking its flags")

    monkeypatch.setattr("accelat_train.compare.compare", no_training)
    monkeypatch.setattr("accelat_train.cli.compare", no_training, raising=False)
    code, err = _run(["compare", *flags, "--out", str(tmp_path / "cmp")], capsys)
    assert code == 2
    assert says in err
    assert not (tmp_path / "cmp").exists()


def test_threads_beyond_the_machines_cpus_are_refused_not_started(tmp_path, capsys):
    """torch starts every thread it is asked for: a hundred thousand crash the process."""
    cpus = os.cpu_count() or 1
    code, err = _run(["train", "--threads", "100000", "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert f"argument --threads: '100000' must be in [1, {cpus}]" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("eps", ["8/255,8/255", "0.5,1/2", ","])
def test_eval_eps_name_each_radius_once(eps, capsys):
    code, err = _run(["eval", "--checkpoint", "runs/none", "--eps", eps], capsys)
    assert code == 2
    assert "argument --eps:" in err and ("twice" in err or "name at least one eps" in err)


@pytest.mark.parametrize(
    ("argv", "twice"),
    [
        (["train", "--attacks", "linfpgd,,linfpgd", "--out", "runs/none"], "linfpgd"),
        (["train", "--attacks", "pgd,linfpgd", "--out", "runs/none"], "linfpgd"),  # an alias
        (["eval", "--checkpoint", "runs/none", "--attacks", "fgsm,fgsm"], "fgsm"),
        (["train", "--log", "csv,csv", "--out", "runs/none"], "csv"),
    ],
)
def test_a_list_of_names_names_each_once(argv, twice, capsys):
    code, err = _run(argv, capsys)
    assert code == 2
    assert f"names {twice} twice" in err and ("argument --attacks:" in err or "--log" in err)


def test_an_lr_min_above_a_given_lr_max_is_refused_naming_both(tmp_path, capsys):
    from accelat_train.config import TrainConfig

    code, err = _run(["train", "--lr-max", "0.1", "--lr-min", "5", "--out", str(tmp_path / "r")],
                     capsys)  # fmt: skip
    assert code == 2
    assert "--lr-min 5.0 is above lr_max 0.1" in err
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match=r"lr_min 5\.0 is above lr_max 0\.1"):
        TrainConfig(lr_max=0.1, lr_min=5.0)
    TrainConfig(lr_max=0.1, lr_min=0.1)  # the floor may be the peak
    TrainConfig(lr_max="auto", lr_min=5.0)  # the finder's lr_max is not known yet
