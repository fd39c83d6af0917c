"""A checkpoint is checked before any of it is used: its layout against one schema
(:data:`accelat_train.training.run_checkpoint.SCHEMA`), its ``epoch`` and ``metrics_bytes``
against its folder's ``metrics.jsonl``, its tensors against the run's network. A damaged one
is refused as one error naming the file and what is wrong, and the folder is left exactly as
it was: a resume never writes to a file it has not checked. JSON nested too deeply for
Python's parser (a ``--config``, a run's ``config.json``, a checkpoint's scheduler state, a
scheduler's ``load_state_dict``) is an error naming where, not a ``RecursionError``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from accelat_train import TrainConfig, load_run, train
from accelat_train.callbacks.record import RunState
from accelat_train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from accelat_train.cli import main
from accelat_train.run_dir import RunDirError
from accelat_train.training.run_checkpoint import SCHEMA
from tests.train.folders import snapshot

torch.set_num_threads(1)

DEEP = "[" * 100_000 + "]" * 100_000  # deeper than Python's parser can go


def _cfg(out: Path, **kw) -> TrainConfig:
    base = TrainConfig(
        dataset="digits", method="free", replays=2, eps=0.1, batch_size=40, train_size=80,
        val_size=40, monitor_size=40, monitor_steps=1, eval_size=40, eval_steps=1,
        device="cpu", policy="accelat", lr_max=0.05, epochs=3, ema_epochs=1.0, out=str(out),
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished 3-epoch run (weight averaging on: its checkpoint holds both models)."""
    out = tmp_path_factory.mktemp("schema") / "run"
    train(_cfg(out), quiet=True)
    return out


def _tampered(run: Path, tmp_path: Path, change) -> Path:
    """A copy of ``run`` whose checkpoint.pt is ``change``d (and saved as a checkpoint)."""
    out = tmp_path / "run"
    shutil.copytree(run, out)
    ckpt = load_checkpoint(out / "checkpoint.pt")
    change(ckpt)
    save_checkpoint(out / "checkpoint.pt", {k: v for k, v in ckpt.items()
                                             if k not in ("kind", "format")})  # fmt: skip
    return out


def _delete(key):
    return lambda ckpt: ckpt.pop(key)


def _set(key, value):
    return lambda ckpt: ckpt.__setitem__(key, value)


def _metrics_size(run: Path) -> int:
    return (run / "metrics.jsonl").stat().st_size


def _first_line_end(run: Path) -> int:
    return len((run / "metrics.jsonl").read_bytes().split(b"\n")[0]) + 1


def _reshape_weight(ckpt):
    name = next(k for k, v in ckpt["model"].items() if v.dim() == 4)
    ckpt["model"][name] = torch.zeros(3, 3, 3, 3)


def _reshape_momentum(ckpt):
    state = next(iter(ckpt["optimizer"]["state"].values()))
    state["momentum_buffer"] = torch.zeros(7)


CASES = {
    "optimizer missing": (_delete("optimizer"), "optimizer is missing"),
    "rng missing": (_delete("rng"), "rng is missing"),
    "epoch a word": (_set("epoch", "abc"), "epoch must be an integer >= 0, got 'abc'"),
    "epoch negative": (_set("epoch", -3), "epoch must be an integer >= 0, got -3"),
    "epoch a bool": (_set("epoch", True), "epoch must be an integer >= 0, got True"),
    "metrics_bytes negative": (
        _set("metrics_bytes", -1), "metrics_bytes must be an integer >= 0, got -1"),
    "scheduler a dict": (
        _set("scheduler", {"format": 1}),
        "scheduler must be the scheduler's state as the text of a JSON object, got {'format': 1}"),
    "scheduler nested too deep": (
        _set("scheduler", DEEP), "scheduler must be the scheduler's state as the text"),
    "seconds nan": (_set("seconds", float("nan")), "seconds must be a finite number >= 0"),
    "best after the last epoch": (_set("best_epoch", 9), "best_epoch 9 is after its epoch 3"),
    "method not per rank": (_set("method", {"delta": torch.zeros(1)}), "method must be"),
    "a weight of another shape": (
        _reshape_weight, "does not fit this run: model.net."),
    "a momentum buffer of another shape": (
        _reshape_momentum, "does not fit this run: optimizer state momentum_buffer"),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_checkpoint_is_one_error_naming_the_file_and_the_folder_is_left_as_it_was(
    run, tmp_path, case
):
    change, says = CASES[case]
    out = _tampered(run, tmp_path, change)
    before = snapshot(out)
    with pytest.raises(CheckpointError) as refused:
        train(_cfg(out), quiet=True, resume=True)
    message = str(refused.value)
    assert message.startswith(f"checkpoint {out / 'checkpoint.pt'} ")
    assert says in message
    assert snapshot(out) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("metrics_bytes", "says"),
    [
        (10**12, "metrics_bytes 1000000000000 is beyond the end of"),
        ("size+1", "is beyond the end of"),
        ("first line - 1", "is not at the end of a line of"),
        ("first line", "epoch 3 does not agree with"),
    ],
)
def test_a_checkpoint_that_disagrees_with_metrics_jsonl_is_refused_and_never_extends_it(
    run, tmp_path, metrics_bytes, says
):
    value = {
        "size+1": _metrics_size(run) + 1,
        "first line - 1": _first_line_end(run) - 1,
        "first line": _first_line_end(run),
    }.get(metrics_bytes, metrics_bytes)
    out = _tampered(run, tmp_path, _set("metrics_bytes", value))
    before = snapshot(out)
    with pytest.raises(CheckpointError, match="cannot be resumed") as refused:
        train(_cfg(out), quiet=True, resume=True)
    assert says in str(refused.value) and "metrics.jsonl" in str(refused.value)
    assert snapshot(out) == before
    assert (out / "metrics.jsonl").stat().st_size == _metrics_size(run)


@pytest.mark.slow
def test_an_empty_metrics_file_is_not_padded_by_a_resume(run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    (out / "metrics.jsonl").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"metrics_bytes \d+ is beyond the end of .*\(0 "):
        train(_cfg(out), quiet=True, resume=True)
    assert (out / "metrics.jsonl").read_bytes() == b""


def test_the_schema_covers_every_counter_a_run_state_carries():
    assert {f.name for f in dataclasses.fields(RunState)} <= set(SCHEMA)


# -- best.pt and load_run ----------------------------------------------------------------------
@pytest.mark.slow
def test_load_run_refuses_a_damaged_best_checkpoint_naming_it(run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    best = load_checkpoint(out / "best.pt")
    save_checkpoint(out / "best.pt", {"model": best["model"], "epoch": "abc"})
    with pytest.raises(CheckpointError) as refused:
        load_run(out, which="best")
    assert str(refused.value) == (
        f"checkpoint {out / 'best.pt'} is damaged: epoch must be an integer >= 0, got 'abc'"
    )
    save_checkpoint(out / "best.pt", {"epoch": 2})
    with pytest.raises(CheckpointError, match="model is missing"):
        load_run(out, which="best")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stopped", {"restored_epoch": "abc"}),
        ("rollback", "yes"),
        ("stopped", {"restored_epoch": -1}),
    ],
)
def test_a_stop_record_load_run_cannot_read_is_refused_naming_it(key, value, tmp_path):
    """``Run.epoch`` is the epoch a stop restored: ``load_run`` reads it (an int() of 'abc',
    a .get() of a str, were a bare ValueError and a traceback)."""
    path = tmp_path / "checkpoint.pt"
    weights = {"model": {"w": torch.zeros(1)}, "epoch": 3}
    save_checkpoint(path, {**weights, key: value})
    with pytest.raises(CheckpointError) as refused:
        load_weights(path)
    assert str(refused.value).startswith(
        f"checkpoint {path} is damaged: {key} must be a dict (its restored_epoch an integer >= 0)"
        " or None, got "
    )
    save_checkpoint(path, {**weights, key: {"restored_epoch": 2, "reason": "early_stop"}})
    assert load_weights(path)["epoch"] == 3


@pytest.mark.parametrize("saved", [5, {"updates": "many"}, {}])
def test_a_listener_state_it_cannot_take_is_named_by_its_key(saved):
    """A checkpoint's ``callbacks`` edited by hand: restore() reports the key, not a bare
    ``'int' object is not subscriptable`` (an AttributeError was a traceback)."""
    from accelat_train.callbacks.callback import Callback, Callbacks

    class Counter(Callback):
        def state_dict(self) -> dict[str, int]:
            return {"updates": 0}

        def load_state_dict(self, state: dict[str, int]) -> None:
            self.updates = int(state["updates"])

    with pytest.raises(ValueError, match=r"^callbacks\['Counter'\] cannot be loaded: "):
        Callbacks([Counter()]).load_state_dict({"Counter": saved})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda c: c.pop("model"), "does not say the run's model (a name), got None"),
        (lambda c: c.update(dataset=["digits"]), "does not say the run's dataset"),
    ],
)
def test_load_run_on_a_config_without_its_model_is_a_clean_error(run, tmp_path, change, says):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    config = json.loads((out / "config.json").read_text())
    change(config)
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as refused:
        load_run(out)
    assert str(refused.value).startswith(f"{out / 'config.json'} {says}")


@pytest.mark.slow
def test_load_run_names_config_json_for_a_data_setting_edited_by_hand(run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "train_size": "80"}))
    with pytest.raises(CheckpointError) as refused:
        load_run(out)
    assert str(refused.value).startswith(f"{out / 'config.json'}: train_size must be an int ")
    with pytest.raises(SystemExit) as refused_cli:
        main(["eval", "--checkpoint", str(out), "--device", "cpu"])
    assert refused_cli.value.code == 2
    err = capsys.readouterr().err
    assert f"--checkpoint: {out / 'config.json'}: train_size must be an int" in err, err


# -- JSON nested too deeply -----------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_config_nested_too_deeply_is_an_error_naming_it(run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    (out / "config.json").write_text('{"model": ' + DEEP + "}")
    with pytest.raises(CheckpointError, match=rf"{out / 'config.json'} is JSON nested too deeply"):
        load_run(out)
    before = snapshot(out)
    with pytest.raises(RunDirError, match=rf"{out / 'config.json'} is JSON nested too deeply"):
        train(_cfg(out), quiet=True, resume=True)
    assert snapshot(out) == before


def test_a_config_file_nested_too_deeply_exits_2_naming_it(tmp_path, capsys):
    config = tmp_path / "deep.json"
    config.write_text('{"eps": ' + DEEP + "}")
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", str(config), "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"--config: {config} is JSON nested too deeply to read" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_yaml_config_file_nested_too_deeply_exits_2_naming_it(tmp_path, capsys):
    pytest.importorskip("yaml")
    config = tmp_path / "deep.yaml"
    config.write_text("eps: " + DEEP + "\n")
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", str(config), "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    assert f"--config {config} is YAML nested too deeply to read" in capsys.readouterr().err


def test_metrics_lines_nested_too_deeply_are_an_error_naming_the_line(tmp_path):
    from accelat_train.run_dir import RunDir

    folder = RunDir(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n' + DEEP + "\n")
    with pytest.raises(RunDirError, match=r"metrics.jsonl: line 2 is JSON nested too deeply"):
        folder.rows()


def test_a_scheduler_state_nested_too_deeply_is_a_value_error():
    from accelat_core import OneCycle
    from accelat_torch import scheduler_for

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    scheduler = scheduler_for(optimizer, OneCycle(0.1, 100))
    deep: dict = {}
    inner = deep
    for _ in range(100_000):
        inner["a"] = {}
        inner = inner["a"]
    state = scheduler.state_dict()
    for bad in (deep, {**state, "base_lrs": [deep]}, {**state, "last_epoch": deep},
                {**state, "policy": {**state["policy"], "config": deep}}):  # fmt: skip
        with pytest.raises(ValueError, match="state_dict"):
            scheduler.load_state_dict(bad)
    assert scheduler.state_dict() == state
