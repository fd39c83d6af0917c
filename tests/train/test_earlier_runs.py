"""A run written by the trainer before its runs were planned (``tests/train/fixtures/
run_made_before_the_plan``: digits, Free AT, AccelAT, weight averaging, early stopping and a
CSV log, stopped by a NaN after epoch 2 of 4, its checkpoint written by that code) resumes
with today's code: the files it holds keep their format, and its last two epochs are added.

The floats are that machine's, so what is compared is the layout and the resumed run against
another resume of the same files, never numbers recorded on one CPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from accelat_train import load_run
from accelat_train.checkpoint import load_checkpoint
from accelat_train.cli import main

pytestmark = pytest.mark.slow

torch.set_num_threads(1)

EARLIER = Path(__file__).parent / "fixtures" / "run_made_before_the_plan"


def _resume(tmp_path: Path, name: str) -> Path:
    run = tmp_path / name
    shutil.copytree(EARLIER, run)
    argv = ["train", "--config", str(run / "config.json"), "--out", str(run), "--resume",
            "--quiet", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    return run


def _rows(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def test_a_run_checkpointed_by_the_earlier_trainer_resumes_to_its_budget(tmp_path):
    run = _resume(tmp_path, "a")
    earlier = (EARLIER / "metrics.jsonl").read_text().splitlines(keepends=True)
    now = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    assert now[:2] == earlier and len(now) == 4  # its epochs kept, byte for byte
    assert list(json.loads(now[2])) == list(json.loads(earlier[0]))  # the same keys, in order
    before, after = (
        load_checkpoint(EARLIER / "checkpoint.pt"),
        load_checkpoint(run / "checkpoint.pt"),
    )
    assert sorted(after) == sorted(before) and after["epoch"] == 4
    assert sorted(after["callbacks"]) == sorted(before["callbacks"])  # Averaging, EarlyStopping
    assert json.loads(after["scheduler"]).keys() == json.loads(before["scheduler"]).keys()
    csv = (run / "metrics.csv").read_text().splitlines()
    assert csv[:3] == (EARLIER / "metrics.csv").read_text().splitlines() and len(csv) == 5
    config = json.loads((run / "config.json").read_text())
    assert config == json.loads((EARLIER / "config.json").read_text())
    report = json.loads((run / "report.json").read_text())
    assert report["epochs"] == 4 and report["evaluated"] == "averaged weights"
    assert load_run(run).epoch == 4


def test_two_resumes_of_the_earlier_run_are_the_same_run(tmp_path):
    a, b = _resume(tmp_path, "a"), _resume(tmp_path, "b")
    assert _rows(a) == _rows(b)
    first, second = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    for key in ("model", "evaluated"):
        assert all(torch.equal(first[key][k], second[key][k]) for k in first[key])
