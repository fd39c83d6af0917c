"""A run folder never loses a run: any file of a run means the folder holds one, which is
continued only on request (``resume``) and replaced only by the explicit choice to start
over (``restart``), which moves it aside and deletes nothing. One check of the folder's
contents (:meth:`accelat_train.run_dir.RunDir.held`, read by
:func:`accelat_train.training.resume.open_run`) comes before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from accelat_train import TrainConfig, fit, train
from accelat_train.cli import main
from accelat_train.compare import compare
from accelat_train.run_dir import RunDir, RunDirError, aside_name
from tests.train.folders import snapshot

torch.set_num_threads(1)

RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint.pt", "best.pt", "report.json",
             "curves.png", "lr_find.png")  # fmt: skip
TINY = [
    "--dataset", "digits", "--eps", "0.1", "--batch-size", "40", "--train-size", "80",
    "--val-size", "40", "--monitor-size", "40", "--monitor-steps", "1", "--eval-size", "40",
    "--eval-steps", "1", "--device", "cpu", "--quiet", "--policy", "constant", "--epochs", "2",
    "--lr-find-steps", "5", "--ema-epochs", "0",
]  # fmt: skip


def _cfg(out: Path, **kw) -> TrainConfig:
    base = TrainConfig(
        dataset="digits", eps=0.1, batch_size=40, train_size=80, val_size=40, monitor_size=40,
        monitor_steps=1, eval_size=40, eval_steps=1, device="cpu", policy="constant",
        epochs=2, lr_find_steps=5, ema_epochs=0.0, out=str(out),
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run with every file a run writes (the lr finder's plot included)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train(_cfg(out), quiet=True)
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == sorted(RUN_FILES)
    return out


def _copy(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


# -- any file of a run means the folder holds a run -----------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("deleted", [None, *RUN_FILES])
def test_a_folder_holding_any_file_of_a_run_is_left_byte_identical_and_the_error_names_it(
    finished, tmp_path, deleted
):
    out = _copy(finished, tmp_path)
    if deleted is not None:
        (out / deleted).unlink()
    before = snapshot(out)
    with pytest.raises(RunDirError) as refused:
        train(_cfg(out), quiet=True)
    held = ", ".join(name for name in RUN_FILES if name != deleted)
    assert str(refused.value) == (
        f"{out} already holds a run ({held}); pass resume=True to continue it, pass "
        "restart=True to move it aside and start over, or choose another out"
    )
    assert snapshot(out) == before


@pytest.mark.parametrize("kept", RUN_FILES)
def test_a_folder_holding_one_file_of_a_run_alone_is_refused_before_any_work(
    tmp_path, kept, monkeypatch
):
    out = tmp_path / "run"
    out.mkdir()
    (out / kept).write_bytes(b"an earlier run's")

    def no_build(*args, **kwargs):
        raise AssertionError("the run was set up before the folder was checked")

    monkeypatch.setattr("accelat_train.training.plan.build", no_build)
    with pytest.raises(RunDirError, match=rf"already holds a run \({kept}\)"):
        train(_cfg(out), quiet=True)
    assert (out / kept).read_bytes() == b"an earlier run's"


@pytest.mark.slow
def test_the_command_line_says_the_choices_in_flags_and_exits_2(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    (out / "checkpoint.pt").unlink()
    before = snapshot(out)
    assert main(["train", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"accelat train: error: {out} already holds a run (config.json, metrics.jsonl, "
        "best.pt, report.json, curves.png, lr_find.png); pass --resume to continue it, pass "
        "--restart to move it aside and start over, or choose another --out"
    )
    assert snapshot(out) == before


@pytest.mark.slow
def test_resume_of_a_run_with_epochs_but_no_checkpoint_is_refused_and_loses_nothing(
    finished, tmp_path
):
    out = _copy(finished, tmp_path)
    (out / "checkpoint.pt").unlink()
    before = snapshot(out)
    with pytest.raises(RunDirError, match=r"but no checkpoint\.pt: it cannot be resumed; pass "
                                          r"restart=True"):  # fmt: skip
        train(_cfg(out), quiet=True, resume=True)
    assert snapshot(out) == before


@pytest.mark.slow
@pytest.mark.parametrize("left", [(), ("best.pt",), ("best.pt", "lr_find.png")])
def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_again(
    finished, tmp_path, left
):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(finished / "config.json", out)
    for name in left:
        shutil.copy(finished / name, out)
    first_line = (finished / "metrics.jsonl").read_bytes().split(b"\n")[0] + b"\n"
    (out / "metrics.jsonl").write_bytes(first_line if left else b"")
    train(_cfg(out), quiet=True, resume=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    want = [json.loads(line) for line in (finished / "metrics.jsonl").read_text().splitlines()]
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows] == [
        {k: v for k, v in r.items() if k not in drop} for r in want
    ]


# -- starting over moves the earlier run aside -----------------------------------------------------
def test_the_aside_name_is_one_past_the_largest_previous(tmp_path):
    run = tmp_path / "run"
    assert aside_name(run) == tmp_path / "run.previous-1"
    (tmp_path / "run.previous-1").mkdir()
    (tmp_path / "run.previous-3").mkdir()
    (tmp_path / "run.previous-x").mkdir()
    (tmp_path / "other.previous-9").mkdir()
    assert aside_name(run) == tmp_path / "run.previous-4"
    seed = tmp_path / "lr_find_seed0.json"
    (tmp_path / "lr_find_seed0.previous-2.json").write_text("{}")
    assert aside_name(seed, ".json") == tmp_path / "lr_find_seed0.previous-3.json"


@pytest.mark.slow
def test_restart_moves_the_earlier_run_aside_whole_and_starts_over(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    train(_cfg(out, seed=1), quiet=True, restart=True)
    aside = tmp_path / "run.previous-1"
    assert snapshot(aside) == before  # every file, byte for byte, the user's own included
    assert f"accelat: moved the earlier run in {out} to {aside}" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert (out / "report.json").is_file() and not (out / "notes.txt").exists()
    train(_cfg(out, seed=2), quiet=True, restart=True)
    assert json.loads((tmp_path / "run.previous-2" / "config.json").read_text())["seed"] == 1
    assert snapshot(aside) == before


def test_an_interrupted_restart_says_to_resume_it_not_to_restart_it_again(tmp_path):
    import argparse

    from accelat_train.cli import interrupted

    out = tmp_path / "run"
    args = argparse.Namespace(command="train", argv=["train", "--restart", "--out", str(out)],
                              out=str(out), resume=False)  # fmt: skip
    assert interrupted(args) == (
        f"interrupted before the first checkpoint in {out}; start it again: "
        f"accelat train --out {out} --resume"
    )


def test_resume_and_restart_together_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="resume and restart exclude each other"):
        train(_cfg(tmp_path / "run"), resume=True, restart=True)
    with pytest.raises(SystemExit) as exit_:
        main(["train", *TINY, "--resume", "--restart", "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    assert "--restart: not allowed with argument --resume" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_fit_again_on_the_same_out_says_resume_true_and_restart_true(tmp_path):
    x = torch.rand(60, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(60) % 3
    settings = dict(eps=0.05, epochs=1, lr_max=0.05, batch_size=20, val_size=20, monitor_size=20,
                    monitor_steps=1, eval_steps=1, device="cpu", quiet=True, policy="constant",
                    out=str(tmp_path / "mine"))  # fmt: skip

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))

    fit(net(), (x, y), **settings)
    with pytest.raises(RunDirError) as refused:
        fit(net(), (x, y), **settings)
    assert "pass resume=True to continue it, pass restart=True" in str(refused.value)
    assert "--" not in str(refused.value)
    again = fit(net(), (x, y), restart=True, **settings)
    assert again.report is not None and (tmp_path / "mine.previous-1" / "report.json").is_file()


@pytest.mark.slow
def test_compare_restart_trains_again_only_the_runs_of_other_settings(tmp_path, monkeypatch):
    base = _cfg(tmp_path / "unused", lr_max=0.05)
    out = tmp_path / "cmp"
    compare(base, ["constant", "linear"], [0], out)
    linear = snapshot(out / "linear" / "seed0")
    # the same settings but constant's: only that arm differs
    arms = ["constant:weight_decay=0.001", "linear"]
    (out / "constant+weight_decay=0.001").mkdir()
    shutil.copytree(out / "constant" / "seed0", out / "constant+weight_decay=0.001" / "seed0")
    with pytest.raises(RunDirError, match=r"weight_decay: saved 0\.0005, requested 0\.001"):
        compare(base, arms, [0], out)
    trained = []
    real = train

    def spy(cfg, **kwargs):
        trained.append((cfg.out, kwargs))
        return real(cfg, **kwargs)

    monkeypatch.setattr("accelat_train.compare.train", spy)
    compare(base, arms, [0], out, restart=True)
    folder = out / "constant+weight_decay=0.001" / "seed0"
    assert trained == [(str(folder), {"quiet": True, "resume": False, "restart": True})]
    assert json.loads((folder / "config.json").read_text())["weight_decay"] == 0.001
    assert (out / "constant+weight_decay=0.001" / "seed0.previous-1" / "report.json").is_file()
    assert snapshot(out / "linear" / "seed0") == linear


def test_a_dangling_link_in_place_of_a_run_file_counts_as_a_file_of_a_run(tmp_path):
    folder = RunDir(tmp_path / "run")
    assert folder.held() == []
    folder.create()
    (folder.path / "metrics.jsonl").symlink_to(tmp_path / "nowhere")
    assert folder.held() == [folder.metrics]  # a dangling link is a file of a run too
