"""``accelat`` end to end, run as a user would: subprocesses on tiny digits runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from accelat_train.checkpoint import load_checkpoint
from accelat_train.cli import main

pytestmark = pytest.mark.slow

TINY = [
    "--dataset", "digits", "--model", "cnn", "--eps", "0.1", "--batch-size", "40",
    "--train-size", "200", "--val-size", "40", "--monitor-size", "40", "--monitor-steps", "2",
    "--eval-size", "40", "--eval-steps", "2", "--device", "cpu", "--quiet",
]  # fmt: skip
TRAIN = ["train", *TINY, "--method", "free", "--replays", "2", "--policy", "onecycle"]
TRAIN += ["--lr-max", "0.05", "--epochs", "6", "--seed", "1"]


ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")


def _accelat(*args: str, listeners: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``accelat ARGS``; with ``listeners`` (tests/train/listeners.py's flags) through the
    entry point that adds the tests' listeners to the command line."""
    module = ["tests.train.listeners", *listeners, "--"] if listeners else ["accelat_train.cli"]
    return subprocess.run(
        [sys.executable, "-m", *module, *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        cwd=ROOT,
    )


def _accelat_module(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m accelat_train``: the package's __main__."""
    return subprocess.run(
        [sys.executable, "-m", "accelat_train", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )


def _rows(run_dir: Path, *, drop=("seconds",)) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in lines]


def _untimed(evaluation: dict) -> dict:
    """A test evaluation without its wall-clock seconds (they differ run to run)."""
    return {k: v for k, v in evaluation.items() if k != "attack_seconds"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "run"
    done = _accelat(*TRAIN, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_train_writes_config_metrics_checkpoint_and_report(trained):
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "report.json", "curves.png"):
        assert (trained / name).is_file(), name
    rows = _rows(trained)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    passes = [r["passes"] for r in rows]
    assert passes == sorted(passes) and passes[0] > 0
    config = json.loads((trained / "config.json").read_text())
    assert config["lr_max"] == 0.05 and config["replays"] == 2 and config["method"] == "free"
    report = json.loads((trained / "report.json").read_text())
    assert report["epochs"] == 6 and report["passes"] == passes[-1]
    assert set(report["final"]["attacks"]) == {"linfpgd"}
    assert load_checkpoint(trained / "checkpoint.pt")["epoch"] == 6


def test_resume_after_kill_9_reproduces_the_uninterrupted_metrics(trained, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "accelat_train.cli", *TRAIN, "--out", str(out)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if metrics.exists() and metrics.read_text().count("\n") >= 1:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = metrics.read_text().count("\n")
    assert killed_at < 6, "killed too late to test a mid-run resume"

    done = _accelat(*TRAIN, "--out", str(out), "--resume")
    assert done.returncode == 0, done.stderr
    assert _rows(out) == _rows(trained)
    want = json.loads((trained / "report.json").read_text())
    got = json.loads((out / "report.json").read_text())
    assert _untimed(got["final"]) == _untimed(want["final"])
    for name in ("checkpoint.pt", "best.pt"):
        a = load_checkpoint(trained / name)
        b = load_checkpoint(out / name)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name
        assert a["epoch"] == b["epoch"], name
    assert {**got["best"], "test": _untimed(got["best"]["test"])} == {
        **want["best"],
        "test": _untimed(want["best"]["test"]),
    }


def test_nan_loss_stops_with_epoch_and_batch_and_keeps_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    done = _accelat(*TRAIN, "--out", str(out), listeners=("--nan-at", "2:1"))
    assert done.returncode == 3
    assert "epoch 2 batch 1" in done.stderr and "nan" in done.stderr
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    assert [r["epoch"] for r in _rows(out)] == [1]
    assert not (out / "report.json").exists()


def test_eval_runs_each_attack_at_each_eps(trained):
    done = _accelat(
        "eval", "--checkpoint", str(trained), "--attacks", "linfpgd,fgsm", "--eps", "0.05,1/10",
        "--json",
        "--eval-size", "40", "--steps", "2", "--device", "cpu",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["epoch"] == 6
    assert set(result["attacks"]) == {"linfpgd", "fgsm"}
    for accs in result["attacks"].values():
        assert set(accs) == {"0.05", "0.1"}
        assert accs["0.1"] <= result["clean_acc"]
    assert result["robust_acc"] == result["attacks"]["linfpgd"]["0.05"]
    # The same fixed test subset as the run's own final evaluation.
    report = json.loads((trained / "report.json").read_text())
    assert result["clean_acc"] == report["final"]["clean_acc"]


def test_lr_find_prints_a_suggestion_and_writes_the_plot(tmp_path):
    finder_flags = TINY[: TINY.index("--monitor-size")] + TINY[TINY.index("--device") :]
    done = _accelat("lr-find", *finder_flags, "--lr-find-steps", "30", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "lr_max" in done.stdout
    lr_max = float(done.stdout.split("lr_max")[1].split()[0])
    assert 1e-5 <= lr_max <= 10
    assert (tmp_path / "lr_find.png").stat().st_size > 0


def test_plot_policy_writes_png(tmp_path):
    done = _accelat_module(
        "plot-policy", "--policy", "accelat", "--steps", "40", "--out", str(tmp_path / "a.png")
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.png").stat().st_size > 0


def test_demo_compares_policies_with_one_lr_find_per_seed(tmp_path):
    exe = shutil.which("accelat") or pytest.skip("console script accelat not installed")
    out = tmp_path / "demo"
    done = subprocess.run(
        [exe, "demo", "--out", str(out), "--policies", "constant,step:ema_epochs=0,accelat",
         "--epochs", "2",
         "--train-size", "120", "--val-size", "40", "--monitor-size", "40", "--eval-size", "40",
         "--eval-steps", "2", "--lr-find-steps", "30", "--quiet"],
        capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "compare.json").read_text())
    assert set(summary["policies"]) == {"constant", "step:ema_epochs=0", "accelat"}
    assert summary["baseline"] == "step:ema_epochs=0"  # Free AT's recipe, without averaging
    for entry in summary["policies"].values():
        assert {"passes_to_target", "final_clean_acc", "final_robust_acc", "runs"} <= set(entry)
        assert len(entry["runs"]) == 1
    # One range test for the seed, its lr_max shared by every policy.
    assert sorted(p.name for p in out.glob("lr_find*.png")) == ["lr_find_seed0.png"]
    lr_maxes = {
        json.loads((out / name / "seed0" / "config.json").read_text())["lr_max"]
        for name in ("constant", "step+ema_epochs=0", "accelat")
    }
    assert len(lr_maxes) == 1
    assert (out / "compare.png").stat().st_size > 0
    assert "compare.png" in done.stdout
    # It ends with what it found, in sentences computed from compare.json.
    from accelat_train.reporting.findings import first_to_target

    lines = done.stdout.rstrip().splitlines()
    found = lines[lines.index("What this comparison found:") + 1 :]
    first = first_to_target(summary["policies"])
    assert found[0].startswith("- First to the target (robust validation accuracy >= ")
    assert f"): {first[0] if first else 'none'}" in found[0]
    accelat = summary["policies"]["accelat"]["seeds"][0]["stopped"]
    said = "stopped by itself" if accelat["reason"] == "policy" else "did not stop by itself"
    assert any(line.startswith(f"- accelat {said}") for line in found)


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["train", "--method", "pgd", "--replays", "2"], "--replays"),
        (["train", "--eps", "0"], "--eps"),
        (["train", "--eps", "1.5"], "--eps"),
        (["train", "--eps", "8/0"], "--eps"),
        (["train", "--policy", "sometimes"], "--policy"),
        (["train", "--data-dir", "/nonexistent/cifar"], "--data-dir"),
        (["train", "--dataset", "cifar10"], "--dataset cifar10"),
        (["train", "--lr-max", "-1"], "--lr-max"),
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--method", "pgd", "--co-check"], "--co-check"),
        (["compare", "--policies", "constant,bogus"], "--policies"),
        (["train", "--dataset", "folder"], "--dataset folder"),
        (["train", "--dataset", "nope"], "--dataset"),
        (["train", "--model", "not a factory"], "--model"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(argv, names, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    assert names in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # rejected before any work


def test_invalid_policy_config_exits_2_in_a_subprocess(tmp_path):
    config = tmp_path / "p.json"
    config.write_text(json.dumps({"policy": "AccelAT", "lr_max": 0.1, "lr_min": 1.0}))
    done = _accelat("train", "--policy-config", str(config), "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    assert "--policy-config" in done.stderr and "p.json" in done.stderr
    assert not (tmp_path / "x").exists()


def test_load_run_gives_back_the_model_and_test_images_of_the_report(trained):
    from accelat_train import load_run

    run = load_run(trained)
    x, y = run.test_data()
    assert x.shape == (40, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert not run.model.training
    with torch.no_grad():
        correct = int((run.model(x).argmax(1) == y).sum())
    assert correct / len(y) == run.report["final"]["clean_acc"]
    assert run.epoch == 6 and [r["epoch"] for r in run.metrics] == [1, 2, 3, 4, 5, 6]
    assert run.config["policy"] == "onecycle"
    # A checkpoint file inside the run dir names the same run.
    assert load_run(trained / "checkpoint.pt").epoch == 6


def test_load_run_names_a_corrupt_or_foreign_checkpoint(trained, tmp_path):
    from accelat_train import load_run
    from accelat_train.checkpoint import CheckpointError

    run_dir = tmp_path / "copy"
    shutil.copytree(trained, run_dir)
    (run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt"):
        load_run(run_dir)
    torch.save({"model": {}}, run_dir / "foreign.pt")
    with pytest.raises(CheckpointError, match=r"foreign\.pt"):
        load_run(run_dir / "foreign.pt")
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_run(tmp_path)
    with pytest.raises(ValueError, match="which must be one of last, best"):
        load_run(run_dir, which="first")


def test_eval_reports_a_corrupt_checkpoint_with_exit_2(trained, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(trained, run_dir)
    (run_dir / "checkpoint.pt").write_bytes(b"\x00" * 10)
    done = _accelat("eval", "--checkpoint", str(run_dir), "--device", "cpu")
    assert done.returncode == 2
    assert "--checkpoint" in done.stderr and "checkpoint.pt" in done.stderr


def test_train_help_shows_every_option_with_its_default_as_typed():
    import dataclasses

    from accelat_train import TrainConfig
    from accelat_train.catalogue import CATALOGUE
    from accelat_train.flags import build_parser

    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    text = " ".join(train_parser.format_help().split())
    assert "--pgd-steps PGD_STEPS PGD steps of the pgd method (default: 7)" in text
    assert "(default: 8/255)" in text and "(default: linfpgd)" in text
    out = (
        "--out OUT the run's folder: config, metrics, checkpoints, report (required, unless "
        "--print-config)"
    )
    assert f"{out} --resume" in text  # required (unless only printing the config): no default
    for name, entry in CATALOGUE.items():  # every choice with its meaning
        assert f"{name} {' '.join(entry.help.split())}" in text
    assert "autoattack-art ART's APGD-CE, APGD-T, Square; no FAB-T" in text
    actions = {a.dest: a for a in train_parser._actions}
    for action in actions.values():
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help line"
    for f in dataclasses.fields(TrainConfig):
        if f.name != "lr_find":
            assert f.name in actions, f"TrainConfig.{f.name} has no flag"
            if f.name not in ("out", "policy_config", "log"):
                default, parse = actions[f.name].default, actions[f.name].type
                if isinstance(default, str) and parse is not None:
                    default = parse(default)  # argparse parses a string default as typed
                value = tuple(default) if isinstance(default, list) else default
                assert value == f.default, f.name


def test_lr_find_shows_only_the_range_tests_flags():
    from accelat_train.flags import LR_FIND_FIELDS, build_parser

    finder = build_parser()._subparsers._group_actions[0].choices["lr-find"]
    run_flags = {a.dest for a in finder._actions} - {"help", "out", "threads", "quiet"}
    assert run_flags - {"config", "print_config"} == set(LR_FIND_FIELDS)
    assert "--monitor-size" not in finder.format_help()


def test_eval_table_aligns_one_row_per_attack_and_the_worst_case():
    from accelat_train.cli import eval_table

    result = {
        "checkpoint": "runs/a/best.pt", "epoch": 7, "images": 100, "clean_acc": 0.99,
        "attacks": {"linfpgd": {"0.1": 0.74}, "autoattack": {"0.1": 0.72}},
        "worst_case": {"0.1": 0.71},
    }  # fmt: skip
    assert eval_table(result).splitlines() == [
        "runs/a/best.pt (epoch 7), 100 test images",
        "clean accuracy 99.0 %",
        "attack      eps 0.1     ",
        "linfpgd           74.0 %",
        "autoattack        72.0 %",
        "worst case        71.0 %",
    ]
