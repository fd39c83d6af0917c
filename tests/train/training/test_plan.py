"""A run is resolved once, before its first epoch (``training.plan.plan_run``), into a frozen
plan the trainer takes: what it evaluates is the plan's, not a side effect of a listener, and
the lr range test reads the run's own loader."""

from __future__ import annotations

import dataclasses
from itertools import islice

import pytest
import torch

from accelat_train import TrainConfig
from accelat_train.data import load_splits, stream
from accelat_train.data.loader import DatasetLoader, DeviceLoader
from accelat_train.run_dir import RunDir
from accelat_train.training import lr_finder
from accelat_train.training.distributed import DistInfo
from accelat_train.training.plan import plan_run

torch.set_num_threads(1)


def _cfg(tmp_path, **kw) -> TrainConfig:
    base = TrainConfig(
        dataset="digits", model="cnn", method="free", replays=2, eps=0.1, policy="constant",
        lr_max=0.05, epochs=2, batch_size=32, train_size=96, val_size=40, monitor_size=20,
        monitor_steps=1, eval_steps=1, eval_size=20, device="cpu", out=str(tmp_path / "run"),
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


def _plan(cfg):
    run_dir = RunDir(cfg.out)
    run_dir.create()  # as train() claims it
    return plan_run(cfg, run_dir, DistInfo())


def test_the_plan_says_which_model_is_evaluated(tmp_path):
    averaged = _plan(_cfg(tmp_path, ema_epochs=1.0))
    assert averaged.evaluated is averaged.averaging.module
    assert averaged.evaluated is not averaged.setup.model
    live = _plan(_cfg(tmp_path, ema_epochs=0.0))
    assert live.averaging is None and live.evaluated is live.setup.model


def test_the_plan_is_resolved_and_frozen(tmp_path):
    plan = _plan(_cfg(tmp_path, co_check=False, early_stop=2))
    assert (plan.epochs, plan.seed, plan.lr_max, plan.lr_find) == (2, 0, 0.05, None)
    assert plan.setup.optimizer.param_groups[0]["lr"] == 0.05  # the schedule's, written
    assert plan.early_stopping.patience == 2 and plan.rollback is None
    assert plan.config == _cfg(tmp_path, co_check=False, early_stop=2).to_json()
    assert plan.fresh_config()["updates_per_epoch"] == 4  # 3 batches -> 2 a share, 2 replays
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.lr_max = 0.1  # type: ignore[misc]


def test_auto_finds_the_lr_with_the_methods_attack_and_records_its_setting(tmp_path):
    cfg = _cfg(tmp_path, lr_max="auto", lr_find_steps=5)
    plan = _plan(cfg)
    assert plan.lr_find["steps"] == 5 and plan.lr_find["setting"] == cfg.finder_setting()
    assert plan.lr_max == plan.lr_find["lr_max"]
    assert plan.setup.range_test.attack == "fgsm-rs"  # free's record: FGSM-RS
    reused = dataclasses.replace(cfg, lr_find=plan.lr_find, out=str(tmp_path / "again"))
    again = _plan(reused)  # the record holds for this setting: no range test
    assert (again.lr_max, again.lr_find) == (plan.lr_max, plan.lr_find)
    assert not RunDir(reused.out).lr_find_plot.exists()


def test_an_lr_free_optimizer_reads_no_finder(tmp_path):
    pytest.importorskip("schedulefree")
    plan = _plan(_cfg(tmp_path, lr_max="auto", policy="schedulefree"))
    assert (plan.lr_max, plan.lr_find) == (1.0, None)


def _batches(loader, n=6):
    return [(x.clone(), y.clone()) for x, y in islice(stream(loader, 0, None), n)]


def _same(a, b):
    return len(a) == len(b) and all(
        torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("augment", [False, True])
def test_the_unsharded_run_loader_gives_the_batches_of_a_loader_without_ranks(augment):
    data = load_splits("digits", train_size=200, val_size=40).train
    whole = DeviceLoader(data, 32, augment=augment, seed=3)
    shard = DeviceLoader(data, 32, augment=augment, seed=3, rank=1, world_size=2)
    assert whole.unsharded() is whole
    assert not _same(_batches(shard), _batches(whole))
    assert _same(_batches(shard.unsharded()), _batches(whole))
    assert shard.unsharded().x is shard.x  # nothing is copied


def test_a_dataset_loaders_unsharded_view_reads_the_whole_dataset():
    dataset = torch.utils.data.TensorDataset(torch.rand(20, 1, 4, 4), torch.arange(20) % 3)
    shard = DatasetLoader(dataset, 4, seed=1, rank=1, world_size=2)
    assert _same(_batches(shard.unsharded()), _batches(DatasetLoader(dataset, 4, seed=1)))


def test_the_range_test_reads_the_runs_own_loader_unsharded(tmp_path, monkeypatch):
    setup = _plan(_cfg(tmp_path)).setup
    data = setup.splits.train
    sharded = DeviceLoader(data, 32, seed=0, rank=1, world_size=2)
    seen = {}

    def fake_lr_find(model, optimizer, criterion, batches, **kw):
        seen["batches"] = [(x.clone(), y.clone()) for x, y in islice(iter(batches), 4)]
        raise ValueError("no curve")  # the finder falls back; its batches are what matters

    monkeypatch.setattr(lr_finder, "lr_find", fake_lr_find)
    with pytest.warns(UserWarning, match="no readable curve"):
        lr_finder.find_lr(dataclasses.replace(setup, loader=sharded))
    assert _same(seen["batches"], _batches(DeviceLoader(data, 32, seed=0), 4))
    # the run's loader itself, not one built beside it: another order is followed
    other = DeviceLoader(data, 32, seed=5)
    with pytest.warns(UserWarning, match="no readable curve"):
        lr_finder.find_lr(dataclasses.replace(setup, loader=other))
    assert _same(seen["batches"], _batches(other, 4))
