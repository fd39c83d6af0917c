"""Every ``--out`` is checked before the work: a folder where a file is wanted, a path under a
file, under ``/proc`` or in a place no one may write, a name longer than the file system
allows, a dangling symbolic link or a loop of them: one line naming the flag and the path,
exit 2, and nothing trained, loaded or drawn.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from accelat_train.cli import main

TINY = [
    "--dataset", "digits", "--eps", "0.1", "--batch-size", "40", "--train-size", "200",
    "--val-size", "40", "--monitor-size", "40", "--monitor-steps", "2", "--eval-size", "40",
    "--eval-steps", "2", "--device", "cpu", "--quiet", "--policy", "step", "--lr-max", "0.05",
    "--epochs", "1",
]  # fmt: skip
LONG = "x" * 300  # past every common file system's 255-byte name limit


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as its work."""

    def work(*args, **kwargs):
        raise AssertionError("the command started its work before checking --out")

    monkeypatch.setattr("accelat_train.export.export_run", work)
    monkeypatch.setattr("accelat_train.reporting.plots.plot_policy", work)
    monkeypatch.setattr("accelat_train.training.plan.build", work)
    monkeypatch.setattr("accelat_train.training.build.build", work)


def _file_outs(tmp: Path) -> list[tuple[str, str]]:
    """(``--out``, what the error says after ``--out PATH: ``) for a file to write."""
    (tmp / "a-file").write_text("x")
    (tmp / "a-folder").mkdir()
    os.symlink(tmp / "nowhere", tmp / "dangling")
    os.symlink(tmp / "loop-b", tmp / "loop-a")
    os.symlink(tmp / "loop-a", tmp / "loop-b")
    return [
        (str(tmp / "a-folder"), "is a folder; name a file in it"),
        (str(tmp / "a-file" / "x"), f"{tmp / 'a-file'} is a file, not a folder"),
        ("/proc/accelat-out", "cannot create files in /proc ("),  # ENOENT, or EACCES if not root
        ("/sys/accelat-out", "cannot create files in /sys ("),
        (str(tmp / LONG), "a name in it is 300 bytes long; the file system allows 255"),
        (str(tmp / "dangling"), f"is a symbolic link to {tmp / 'nowhere'}, which does not exist"),
        (str(tmp / "loop-a"), "is a loop of symbolic links"),
        (str(tmp / "dangling" / "x"), f"{tmp / 'dangling'} is a symbolic link to "),
        ("/dev/null", "is not a regular file"),
    ]


def test_export_refuses_each_bad_out_before_loading_the_run(tmp_path, capsys, no_work):
    for out, says in _file_outs(tmp_path):
        code, err = _run(["export", str(tmp_path), "--out", out], capsys)
        assert code == 2, (out, err)
        assert err.startswith("usage: accelat export"), err
        assert f"accelat export: error: --out {out}: {says}" in err, err


def test_plot_policy_refuses_each_bad_out_before_drawing(tmp_path, capsys, no_work):
    for out, says in _file_outs(tmp_path):
        code, err = _run(["plot-policy", "--policy", "step", "--out", out], capsys)
        assert code == 2, (out, err)
        assert f"accelat plot-policy: error: --out {out}: {says}" in err, err


@pytest.mark.parametrize("command", ["train", "lr-find", "compare"])
def test_a_run_folder_out_is_checked_before_the_data_are_read(command, tmp_path, capsys, no_work):
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    os.symlink(tmp_path / "loop-b", tmp_path / "loop-a")
    os.symlink(tmp_path / "loop-a", tmp_path / "loop-b")
    (tmp_path / "a-file").write_text("x")
    cases = [
        (str(tmp_path / LONG), "a name in it is 300 bytes long; the file system allows 255"),
        (str(tmp_path / "dangling"), "is a symbolic link to "),
        (str(tmp_path / "loop-a"), "is a loop of symbolic links"),
        (str(tmp_path / "a-file"), "is a file, not a folder"),
        ("/proc/accelat-run", "cannot create files in /proc"),
    ]
    flags = {"train": TINY, "lr-find": TINY[:10], "compare": TINY[:-6] + TINY[-4:]}[command]
    for out, says in cases:
        code, err = _run([command, *flags, "--out", out], capsys)
        assert code == 2, (out, err)
        assert f"accelat {command}: error: --out {out}: {says}" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "dangling", "loop-a", "loop-b"]


def test_a_path_over_the_whole_path_limit_is_named(tmp_path, capsys, no_work):
    deep = tmp_path / "/".join(["d" * 200] * 25)  # 5,000 bytes: past PATH_MAX (4096)
    code, err = _run(["plot-policy", "--out", str(deep / "p.png")], capsys)
    assert code == 2
    assert "is 5" in err and "bytes long; the file system allows paths of 4095" in err


def test_a_good_out_under_new_folders_is_accepted_and_leaves_no_probe(tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "p.png"
    code, err = _run(["plot-policy", "--policy", "step", "--steps", "20", "--out", str(out)],
                     capsys)  # fmt: skip
    assert code == 0, err
    assert out.stat().st_size > 0
    assert [p.name for p in out.parent.iterdir()] == ["p.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["new"]


@pytest.fixture
def no_loading(monkeypatch):
    def load(*args, **kwargs):
        raise AssertionError("export loaded the run before checking --out")

    monkeypatch.setattr("accelat_train.export.load_run", load)


def test_export_writes_a_pt2_ending_only(tmp_path, capsys, no_loading):
    code, err = _run(["export", str(tmp_path), "--out", str(tmp_path / "model.pt")], capsys)
    assert code == 2
    assert f"--out {tmp_path / 'model.pt'}: must end in .pt2 (torch.export's file" in err


def test_export_never_lets_its_note_overwrite_a_runs_file(tmp_path, capsys, no_loading):
    (tmp_path / "config.json").write_text("{}")
    code, err = _run(["export", str(tmp_path), "--out", str(tmp_path / "config.pt2")], capsys)
    assert code == 2
    assert f"its note {tmp_path / 'config.json'} would replace a file that is not" in err
    assert (tmp_path / "config.json").read_text() == "{}"


@pytest.mark.parametrize("name", ["config.json", "curves.png", "checkpoint.pt"])
def test_plot_policy_never_overwrites_a_file_of_a_run(name, tmp_path, capsys):
    from accelat_train.output_path import RUN_FILES
    from accelat_train.run_dir import RunDir

    assert tuple(p.name for p in RunDir(tmp_path).run_files) == RUN_FILES
    for other in ("config.json", "metrics.jsonl", "curves.png", "checkpoint.pt"):
        (tmp_path / other).write_text("the run's")
    out = tmp_path / name
    code, err = _run(["plot-policy", "--policy", "step", "--out", str(out)], capsys)
    assert code == 2
    assert f"--out {out}: is the {name} of the run in {tmp_path} (beside its " in err
    assert out.read_text() == "the run's"
    (tmp_path / "mine.png").write_text("old")  # a file of the user's own is replaced
    assert _run(["plot-policy", "--policy", "step", "--out", str(tmp_path / "mine.png")],
                capsys)[0] == 0  # fmt: skip


def test_lr_find_refuses_a_training_runs_folder_but_replaces_its_own_plot(tmp_path, capsys,
                                                                         no_work):  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "lr_find.png"):  # a run of lr_max auto: the plot is the run's
        (run / name).write_text("the run's")
    code, err = _run(["lr-find", "--dataset", "digits", "--out", str(run)], capsys)
    assert code == 2
    assert f"--out {run} holds a training run (config.json); its lr_find.png is that run's" in err
    assert (run / "lr_find.png").read_text() == "the run's"
    (run / "config.json").unlink()  # an earlier lr-find's folder: its plot is replaced
    with pytest.raises(AssertionError, match="started its work"):
        _run(["lr-find", "--dataset", "digits", "--out", str(run)], capsys)


def test_the_check_is_the_library_s_too(tmp_path, no_loading):
    from accelat_train.export import export_run

    with pytest.raises(ValueError, match=r"^out .*a-folder: is a folder; name a file in it"):
        (tmp_path / "a-folder").mkdir()
        export_run(tmp_path, tmp_path / "a-folder")


def test_plot_policy_in_python_names_a_folder_given_as_its_file(tmp_path):
    from accelat_core import Constant
    from accelat_train.reporting.plots import plot_policy

    with pytest.raises(ValueError, match=rf"^path {tmp_path}: is a folder; name a file in it"):
        plot_policy(Constant(0.1), 10, tmp_path)


def test_print_config_writes_nothing_so_its_out_is_not_checked(capsys):
    code, err = _run(["train", "--print-config", "--out", "/proc/never-written"], capsys)
    assert code == 0, err
