"""The command line when something goes wrong, each failure a hostile review found with the
test that pins its fix: a folder two processes share, a full disk, damaged configs, values out
of range, and interrupts. Every error names the flag or the file and the value, and comes
before any work where it can. (Damaged CIFAR batches and archives: data/test_cifar.py.)
"""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from accelat_train import TrainConfig, train
from accelat_train.run_dir import RunDir, RunDirError

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--dataset", "digits", "--eps", "0.1", "--batch-size", "40", "--train-size", "200",
    "--val-size", "40", "--monitor-size", "40", "--monitor-steps", "2", "--eval-size", "40",
    "--eval-steps", "2", "--device", "cpu", "--quiet", "--policy", "step", "--lr-max", "0.05",
]  # fmt: skip


def _accelat(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "accelat_train.cli", *args],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT,
    )  # fmt: skip


def _tiny(tmp_path, **kw) -> TrainConfig:
    return TrainConfig(dataset="digits", eps=0.1, batch_size=40, train_size=200, val_size=40,
                       monitor_size=40, monitor_steps=2, eval_size=40, eval_steps=2,
                       device="cpu", policy="step", lr_max=0.05,
                       out=str(tmp_path / "run"), **kw)  # fmt: skip


# -- a folder in use ---------------------------------------------------------------------------
def test_a_second_process_on_a_locked_run_folder_fails_at_once_naming_it_and_the_holder(
    tmp_path,
):
    out = tmp_path / "run"
    with RunDir(out).claimed():
        done = _accelat("train", *TINY, "--out", str(out), timeout=60)
    assert done.returncode == 2
    assert f"run directory {out} is in use by process {os.getpid()}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (out / "metrics.jsonl").exists()


def test_a_second_claim_in_one_process_is_refused_and_the_first_keeps_the_folder(tmp_path):
    folder = RunDir(tmp_path / "run")
    second = RunDir(tmp_path / "run")
    with (
        folder.claimed(),
        pytest.raises(RunDirError, match="is in use by process"),
        second.claimed(),
    ):
        pass
    with folder.claimed():  # released when the first claim ended
        pass


def test_a_lock_left_by_a_killed_process_does_not_block_its_resume(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from accelat_train.run_dir import RunDir\n"
         f"with RunDir({str(out)!r}).claimed(): print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / ".lock").read_text().strip() == str(holder.pid)  # the stale pid is still there
    with RunDir(out).claimed():
        assert (out / ".lock").read_text().strip() == str(os.getpid())


def test_temp_files_a_killed_writer_left_are_removed_when_the_folder_is_claimed(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = [out / ".checkpoint.pt.k3j2.tmp", out / ".best.pt.x.tmp", out / ".report.json.q.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    (out / "keep.tmp").write_bytes(b"not ours")
    with RunDir(out).claimed():
        assert not any(path.exists() for path in stale)
    assert (out / "keep.tmp").exists()


# -- the output folder is checked before any work ----------------------------------------------
def test_out_under_a_regular_file_fails_before_data_and_model_are_set_up(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")

    def no_build(*args, **kwargs):
        raise AssertionError("the data and model were set up before the folder was checked")

    monkeypatch.setattr("accelat_train.training.plan.build", no_build)
    cfg = dataclasses.replace(_tiny(tmp_path), out=str(tmp_path / "file" / "run"))
    with pytest.raises(RunDirError, match=rf"{tmp_path / 'file'} is a file, not a folder"):
        train(cfg)


def test_an_empty_out_is_refused_naming_the_flag():
    done = _accelat("train", *TINY, "--out", "", timeout=60)
    assert done.returncode == 2 and "--out must name a run directory, got ''" in done.stderr


def test_resume_of_a_folder_without_its_config_names_what_is_missing(tmp_path):
    cfg = _tiny(tmp_path, epochs=1)
    train(cfg, quiet=True)
    (Path(cfg.out) / "config.json").unlink()
    with pytest.raises(RunDirError, match=r"holds .*checkpoint\.pt.* but no config\.json"):
        train(cfg, quiet=True, resume=True)


def test_resume_with_a_truncated_config_names_the_file(tmp_path):
    cfg = _tiny(tmp_path, epochs=1)
    train(cfg, quiet=True)
    config = Path(cfg.out) / "config.json"
    config.write_text(config.read_text()[:40])
    with pytest.raises(RunDirError, match=rf"{config} is not valid JSON \(truncated\?\)"):
        train(cfg, quiet=True, resume=True)


# -- a full disk ------------------------------------------------------------------------------
def test_a_full_disk_is_one_error_naming_the_file_and_the_old_checkpoint_is_intact(
    tmp_path, monkeypatch
):
    folder = RunDir(tmp_path / "run")
    folder.create()
    folder.save_checkpoint(folder.checkpoint, {"epoch": 1})

    def full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise RuntimeError("PytorchStreamWriter failed writing file") from OSError(
            errno.ENOSPC, os.strerror(errno.ENOSPC)
        )

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(RunDirError) as caught:
        folder.save_checkpoint(folder.checkpoint, {"epoch": 2})
    assert str(caught.value) == (
        f"could not write {folder.checkpoint}: No space left on device; "
        "the previous version is intact"
    )
    monkeypatch.undo()
    assert folder.load_checkpoint()["epoch"] == 1
    assert not list(folder.path.glob(".*.tmp"))


def test_a_full_disk_while_writing_text_names_the_cause(tmp_path, monkeypatch):
    folder = RunDir(tmp_path / "run")
    folder.create()

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(RunDirError, match=r"config.json: No space left on device; nothing"):
        folder.write_config({"a": 1})


# -- values out of range, caught at the edge -------------------------------------------------------
@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--eps", "1e400", "argument --eps: '1e400' is not a finite number or fraction"),
        ("--lr-max", "1e400", "'1e400' is not a finite number"),
        ("--lr-max", "1e300", "'1e300' must be 'auto' or a number in (0, 10]"),
        ("--val-size", "0", "'0' must be >= 1"),
        ("--weight-decay", "nan", "--weight-decay must be finite, got nan"),
        ("--momentum", "inf", "--momentum must be finite, got inf"),
        ("--ema-epochs", "-1", "--ema-epochs must be in [0, inf), got -1.0"),
        ("--device", "gpu", "--device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    ],
)
def test_a_bad_value_exits_2_naming_the_flag_before_any_work(flag, value, says, tmp_path, capsys):
    from accelat_train.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", *TINY, flag, value, "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_data_dir_with_digits_is_refused_not_ignored(tmp_path, capsys):
    from accelat_train.cli import main

    with pytest.raises(SystemExit):
        main(["train", *TINY, "--data-dir", str(tmp_path), "--out", str(tmp_path / "run")])
    assert "--data-dir applies to cifar10, cifar100, folder" in capsys.readouterr().err


def test_a_binary_policy_config_exits_2_naming_the_flag_and_the_file(tmp_path, capsys):
    from accelat_train.cli import main

    config = tmp_path / "policy.bin"
    config.write_bytes(bytes(range(256)))
    with pytest.raises(SystemExit):
        main(["train", *TINY, "--policy-config", str(config), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert f"--policy-config {config}: {config} cannot be read" in err


# -- interrupts ---------------------------------------------------------------------------------
def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _ignores_sigint(pid: int) -> bool | None:
    """Whether process ``pid`` ignores SIGINT (Linux's /proc; None where it cannot tell)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    mask = next((line.split()[1] for line in status.splitlines() if line.startswith("SigIgn")), "0")
    return bool(int(mask, 16) & (1 << (signal.SIGINT - 1)))


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_prints_one_line_with_the_resume_command_and_leaves_no_temp_file(
    tmp_path, sig, code
):
    out = tmp_path / "run"
    # A budget no run reaches, so the signal lands in training even when this process is
    # starved of CPU while the run goes on (200 epochs were once all done before it woke up).
    args = ["train", *TINY, "--epochs", "1000000000", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    # A shell's background job (CI run with `&`) ignores SIGINT, and a child inherits that;
    # the run under test gets the default, as a terminal's Ctrl-C would find it.
    proc = subprocess.Popen([sys.executable, "-m", "accelat_train.cli", *args], env=env,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=_default_sigint)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        ignored = _ignores_sigint(proc.pid)
        proc.kill()
        proc.communicate()
        pytest.fail(f"the run went on 120 s after signal {sig} (SIGINT ignored there: {ignored})")
    assert proc.returncode == code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(f"accelat train: interrupted; the last checkpoint is {out}")
    assert lines[0].endswith(f"--out {out} --resume")
    assert not list(out.glob(".*.tmp"))
    with RunDir(out).claimed():  # the lock went with the process
        pass


def test_the_checkpoint_epoch_in_messages_says_when_there_is_none_or_it_is_unreadable(
    tmp_path,
):
    folder = RunDir(tmp_path / "run")
    assert folder.checkpoint_epoch() == "none yet"
    folder.create()
    folder.checkpoint.write_bytes(b"not a checkpoint")
    assert folder.checkpoint_epoch() == "unreadable"


def test_a_command_line_run_validates_its_config_once(tmp_path, monkeypatch):
    from accelat_train.cli import main

    calls = []
    validate = TrainConfig.validate
    monkeypatch.setattr(TrainConfig, "validate", lambda self: (calls.append(1), validate(self))[1])
    argv = ["train", *TINY, "--epochs", "1", "--method", "free", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    assert len(calls) == 1
