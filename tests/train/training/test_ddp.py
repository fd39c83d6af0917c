"""DDP on CPU (gloo, 2 processes via torch.distributed.run): ranks agree on lr and weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from accelat_core import AccelAT
from accelat_train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

ARGS = [
    "train", "--dataset", "digits", "--eps", "0.1", "--batch-size", "40", "--train-size", "200",
    "--val-size", "40", "--monitor-size", "40", "--monitor-steps", "2", "--eval-size", "40",
    "--eval-steps", "2", "--device", "cpu", "--quiet", "--method", "free", "--replays", "2",
    "--lr-max", "0.05",
]  # fmt: skip
# A demanding min_gain: AccelAT cuts at the first decision and after each cooldown, so the
# ranks must agree on several decisions.
POLICY = {"policy": "AccelAT", "lr_max": 0.05, "min_lr": 5e-5, "min_gain": 0.5, "factor": 0.5,
          "window": 1}  # fmt: skip


ROOT = Path(__file__).resolve().parents[3]


def _torchrun(out, dump, epochs, *extra, nan_at=None):
    """Run 2 ranks with the tests' listeners (tests/train/listeners.py); their
    rank{r}_final.json dumps, or the failed process when ``nan_at`` stops the run."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1"]
    cmd += ["--nproc_per_node", "2", "-m", "tests.train.listeners", "--dump", str(dump)]
    cmd += ["--nan-at", nan_at] if nan_at else []
    config = out.parent / "policy.json"
    config.write_text(json.dumps(POLICY))
    cmd += ["--", *ARGS, "--policy-config", str(config), "--epochs", str(epochs)]
    cmd += ["--out", str(out), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    if nan_at:
        return done
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((dump / f"rank{r}_final.json").read_text()) for r in (0, 1)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    ranks = _torchrun(base / "run", base / "dump", 4)
    return base / "run", ranks


def _rows(run_dir, drop=("seconds",)):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in lines]


def test_two_ranks_hold_the_same_lr_and_weights_and_match_a_single_process_replay(uninterrupted):
    out, (rank0, rank1) = uninterrupted
    assert rank0["lrs"] == rank1["lrs"]
    assert rank0["weights_sha256"] == rank1["weights_sha256"]

    rows = _rows(out)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    # One process fed the same metric history takes the same lr decisions.
    replay = AccelAT(**{k: v for k, v in POLICY.items() if k != "policy"})
    lrs = []
    for row in rows:
        lrs.append(replay.lr)
        replay.step(row["monitor_value"])
    assert rank0["lrs"] == lrs == [r["lr"] for r in rows]
    assert lrs == [0.05, 0.05, 0.05, 0.025]
    assert [r["decision"] is not None for r in rows] == [False, False, True, True]
    # Passes count both ranks' shards: 100 images each, 2 minibatches of <= 40, 2 replays.
    assert rows[0]["passes"] == 2 * (40 + 40) * 2
    assert json.loads((out / "config.json").read_text())["world_size"] == 2


def test_both_ranks_resume_from_rank_0_checkpoint_mid_run(uninterrupted, tmp_path):
    want_dir, (want0, _) = uninterrupted
    out = tmp_path / "run"
    # Stop the run at epoch 3 (NaN injected on every rank), then resume it.
    done = _torchrun(out, tmp_path / "dump_a", 4, nan_at="3:1")
    assert done.returncode != 0 and "epoch 3 batch 1" in done.stderr
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
    rank0, rank1 = _torchrun(out, tmp_path / "dump_b", 4, "--resume")
    assert rank0["weights_sha256"] == rank1["weights_sha256"] == want0["weights_sha256"]
    assert _rows(out) == _rows(want_dir)
