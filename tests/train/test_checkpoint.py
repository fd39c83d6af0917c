"""Checkpoints: atomic writes, weights_only loading, clear errors for bad files."""

from __future__ import annotations

import errno
import os
import pickle

import pytest
import torch

from accelat_train.atomic_writes import atomic_write_text
from accelat_train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from accelat_train.run_dir import RunDir, RunDirError


def _state() -> dict:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": '{"format": 1}',
        "rng": {"torch": torch.get_rng_state()},
        "epoch": 3,
        "seconds": 1.5,
        "co_prev": None,
    }


def test_round_trip_loads_with_weights_only(tmp_path):
    state = _state()
    path = save_checkpoint(tmp_path / "checkpoint.pt", state)
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["co_prev"] is None
    for key, value in state["model"].items():
        assert torch.equal(loaded["model"][key], value)
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    # The file itself is weights_only-safe, not only through our loader.
    torch.load(path, weights_only=True)


def test_failed_write_keeps_the_old_checkpoint_and_leaves_no_temp_file(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", _state())
    before = path.read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint(path, {"epoch": 4, "bad": lambda: None})  # cannot be pickled
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert load_checkpoint(path)["epoch"] == 3


def test_atomic_text_write_replaces_the_whole_file(tmp_path):
    target = tmp_path / "config.json"
    atomic_write_text(target, "a much longer first version\n")
    atomic_write_text(target, "short\n")
    assert target.read_text() == "short\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_truncated_checkpoint_is_an_error_naming_the_path(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", _state())
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_foreign_torch_file_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match=r"other\.pt.*not an accelat_train checkpoint"):
        load_checkpoint(path)


class _Payload:
    pass


def test_pickled_objects_are_refused_by_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"kind": "accelat_train.checkpoint", "format": 1, "obj": _Payload()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt"):
        load_checkpoint(path)


def test_missing_and_newer_format_checkpoints_are_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    path = tmp_path / "new.pt"
    torch.save({"kind": "accelat_train.checkpoint", "format": 99}, path)
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(path)


class _FullDisk:
    """A file on a disk that fills after ``room`` bytes: writes past it raise ENOSPC."""

    def __init__(self, handle, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def test_a_full_disk_during_torch_save_says_no_space_left_naming_the_file(tmp_path, monkeypatch):
    """torch.save turns the ENOSPC of a write into ``[enforce fail at inline_container.cc]``;
    the error names the file and the cause, and the previous checkpoint stays."""
    folder = RunDir(tmp_path / "run")
    folder.create()
    folder.save_checkpoint(folder.checkpoint, _state())
    before = folder.checkpoint.read_bytes()
    fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: _FullDisk(fdopen(fd, mode), room=600))
    with pytest.raises(RunDirError) as caught:
        folder.save_checkpoint(folder.checkpoint, _state())
    assert str(caught.value) == (
        f"could not write {folder.checkpoint}: {os.strerror(errno.ENOSPC)}; the previous "
        "version is intact"
    )
    assert folder.checkpoint.read_bytes() == before
    assert not list(folder.path.glob(".*.tmp"))
