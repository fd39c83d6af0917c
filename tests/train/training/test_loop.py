"""The training methods, pass counting, epoch-equivalents and the scheduler's unit."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from accelat_core import OneCycle
from accelat_train.adversarial.methods import METHODS, FreeMethod
from accelat_train.catalogue import CATALOGUE
from accelat_train.config import TrainConfig
from accelat_train.data import load_splits, stream
from accelat_train.data.loader import DeviceLoader
from accelat_train.models import NormalizedModel, build_model
from accelat_train.registry import METHODS as METHOD_RECORDS
from accelat_train.training.loop import train

torch.set_num_threads(1)


def _signed_linear_model() -> NormalizedModel:
    """logits = (sum(x), -sum(x)): the input gradient of the loss has one known sign.

    With p = softmax(logits): dL/dx_i = p_0 - p_1 - (1 if y == 0 else -1), which is < 0
    for y == 0 and > 0 for y == 1 at every pixel.
    """
    linear = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0] * 4, [-1.0] * 4]))
    return NormalizedModel(nn.Sequential(nn.Flatten(), linear), [0.0], [1.0])


def _free_reference(batches, eps, replays):
    """Free AT's inputs by hand: sign(g) = +1 (y=1) / -1 (y=0) where x + delta is inside
    [0, 1], 0 where the clamp cut the gradient; delta carried over, clipped to [-eps, eps]."""
    delta = torch.zeros_like(batches[0][0])
    seen = []
    for x, y in batches:
        n = x.shape[0]
        for _ in range(replays):
            raw = x + delta[:n]
            seen.append(raw.clamp(0, 1))
            inside = ((raw >= 0) & (raw <= 1)).float()
            sign = torch.where(y == 1, 1.0, -1.0).view(-1, 1, 1, 1) * inside
            delta[:n] = (delta[:n] + eps * sign).clamp(-eps, eps)
    return seen, delta


def test_free_perturbation_carries_over_batches_and_is_clipped_like_hand_computation():
    model = _signed_linear_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # weights fixed: signs stay known
    eps, replays = 0.1, 3
    x = torch.tensor([0.5, 0.95, 0.05, 0.3]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    batches = [
        (x, torch.tensor([1, 1])),
        (x, torch.tensor([0, 1])),  # rows diverge: row 0 pushed down, row 1 further up
        (x[:1], torch.tensor([0])),  # a smaller last batch uses the buffer's first row
        (x, torch.tensor([1, 0])),
    ]
    seen = []
    model.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    method = FreeMethod(eps, replays=replays)
    for bx, by in batches:
        stats = method.train_batch(model, optimizer, bx, by)
        assert stats.n == bx.shape[0] * replays
        assert stats.passes == bx.shape[0] * replays
    expected, expected_delta = _free_reference(batches, eps, replays)
    assert len(seen) == len(expected) == 4 * replays
    for got, want in zip(seen, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(method.delta.detach(), expected_delta, rtol=0, atol=1e-6)
    assert method.delta.abs().max() <= eps + 1e-7
    # The 0.95 pixel of a row pushed up sits at the clamp: its delta stopped at 0.05 + ...
    assert not torch.equal(expected_delta[0], expected_delta[1])


def test_free_state_round_trips_the_perturbation():
    method = FreeMethod(0.1, replays=2)
    model = _signed_linear_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    x = torch.full((2, 1, 2, 2), 0.5)
    method.train_batch(model, optimizer, x, torch.tensor([1, 0]))
    other = FreeMethod(0.1, replays=2)
    other.load_state_dict(method.state_dict())
    torch.testing.assert_close(other.delta, method.delta)
    assert other.delta.requires_grad


@pytest.fixture(scope="module")
def digits_batch():
    splits = load_splits("digits", train_size=100, val_size=50)
    loader = DeviceLoader(splits.train, 16, seed=0)
    x, y = next(loader.epoch(0))
    return splits, x, y


@pytest.mark.parametrize(
    ("method", "per_image"),
    [
        ("natural", 1),
        ("free", 3),
        ("fgsm-rs", 2),
        ("pgd", 5),
        ("foolbox-pgd", 5),
        ("foolbox-fgsm", 2),
    ],
)
def test_passes_per_batch_match_hand_count(digits_batch, method, per_image):
    splits, x, y = digits_batch
    cfg = TrainConfig(method=method, eps=0.1, replays=3 if method == "free" else None, pgd_steps=4)
    torch.manual_seed(0)
    model = NormalizedModel(
        build_model("cnn", 10, in_channels=1, image_size=8), splits.mean, splits.std
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    m = METHOD_RECORDS[cfg.method].make(
        cfg.eps,
        replays=cfg.replays,
        pgd_steps=cfg.pgd_steps,
        generator=torch.Generator().manual_seed(0),
    )
    stats = m.train_batch(model, optimizer, x, y)
    # free: 1 pass per image per replay; fgsm-rs / FGSM: attack + update; PGD-4: 4 + 1.
    assert stats.passes == per_image * len(y)
    assert stats.n == (3 if method == "free" else 1) * len(y)
    assert 0 <= stats.correct <= stats.n


def test_every_method_is_registered():
    assert set(METHODS) == {
        "free",
        "fgsm-rs",
        "pgd",
        "foolbox-pgd",
        "foolbox-fgsm",
        "foolbox-deepfool",
        "natural",
    }


def test_epoch_equivalents_cut_a_running_stream_of_loader_epochs():
    splits = load_splits("digits", train_size=100, val_size=50)
    loader = DeviceLoader(splits.train, 16, seed=3)  # 7 batches per loader epoch
    assert len(loader) == 7
    flat = [b for e in range(3) for b in loader.epoch(e)]
    per_epoch = -(-len(loader) // 3)  # free with m = 3: 3 minibatches per epoch-equivalent
    consumed = 0
    for _ in range(6):
        chunk = list(stream(loader, consumed, per_epoch))
        assert len(chunk) == per_epoch
        for (cx, cy), (fx, fy) in zip(chunk, flat[consumed : consumed + per_epoch], strict=True):
            assert torch.equal(cx, fx) and torch.equal(cy, fy)
        consumed += per_epoch


def test_default_step_policy_is_free_at_scaled_to_the_budget():
    policy = CATALOGUE["step"].build(0.2, total_steps=400, epochs=10)
    lrs = [policy.at(t).lr for t in range(400)]
    assert lrs[:200] == [0.2] * 200  # /10 at 50 % and again at 75 % of the updates
    assert lrs[200:300] == [pytest.approx(0.02, rel=1e-15)] * 100
    assert lrs[300:] == [pytest.approx(0.002, rel=1e-15)] * 100
    onecycle = CATALOGUE["onecycle"].build(0.2, total_steps=400, epochs=10)
    assert onecycle.get_config() == OneCycle.paper(0.2, 400).get_config()


@pytest.mark.parametrize(
    ("epochs", "window"), [(1, 1), (10, 1), (19, 1), (20, 2), (40, 2), (500, 2), (10**9, 2)]
)
def test_default_window_is_a_tenth_of_a_short_budget_and_two_epochs_beyond(epochs, window):
    from accelat_train.catalogue import default_window

    assert default_window(epochs) == window


def test_default_cyclical_is_two_triangles_from_a_tenth_of_lr_max():
    policy = CATALOGUE["cyclical"].build(0.1, total_steps=400, epochs=10)
    lrs = [policy.at(t).lr for t in range(401)]
    assert lrs[0] == pytest.approx(0.01) and lrs[100] == pytest.approx(0.1)
    assert lrs[200] == pytest.approx(0.01) and lrs[300] == pytest.approx(0.1)
    assert lrs[50] == pytest.approx(0.055) and lrs[400] == pytest.approx(0.01)


def test_default_restarts_are_three_doubling_cosine_cycles_down_to_a_thousandth():
    policy = CATALOGUE["restarts"].build(0.1, total_steps=700, epochs=10)
    # periods 100, 200, 400: restarts at t = 100 and t = 300
    assert policy.at(0).lr == pytest.approx(0.1)
    assert policy.at(50).lr == pytest.approx(0.0001 + (0.1 - 0.0001) / 2)
    assert policy.at(99).lr < 0.001 and policy.at(100).lr == pytest.approx(0.1)
    assert policy.at(300).lr == pytest.approx(0.1) and policy.at(299).lr < 0.001


def test_default_plateau_is_the_core_plateau_with_accelats_rule():
    from accelat_train.training.run_schedule import RunSchedule, policy_for

    w = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=1.0, momentum=0.9)
    cfg = TrainConfig(policy="plateau", epochs=20, lr_max=0.1)  # window = 20 // 10 = 2
    policy = policy_for(cfg.policy, None, cfg.rule, 0.1, total_steps=100, epochs=cfg.epochs)
    schedule = RunSchedule(policy, optimizer)
    assert optimizer.param_groups[0]["lr"] == 0.1
    # best 0.5 at epoch 1; +0.004 is below the 0.005 threshold: 3 bad epochs > patience 2
    decisions = [schedule.after_epoch(m) for m in [0.5, 0.504, 0.5, 0.503]]
    assert decisions[:3] == [None, None, None]
    assert decisions[3] == {"index": 3, "gain": pytest.approx(0.003), "old_lr": 0.1, "new_lr": 0.05}
    assert optimizer.param_groups[0]["lr"] == 0.05
    assert json.loads(schedule.state_json())["policy"]["state"]["num_bad_epochs"] == 0


def _tiny_cfg(tmp_path, **kw) -> TrainConfig:
    base = TrainConfig(
        dataset="digits",
        model="cnn",
        method="free",
        eps=0.1,
        replays=2,
        policy="onecycle",
        lr_max=0.05,
        epochs=3,
        batch_size=32,
        train_size=100,
        val_size=40,
        monitor_size=40,
        monitor_steps=2,
        eval_steps=2,
        eval_size=40,
        out=str(tmp_path / "run"),
    )
    return dataclasses.replace(base, **kw)


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_fixed_shape_policy_steps_per_update_and_logs_the_last_used_lr(tmp_path):
    cfg = _tiny_cfg(tmp_path)
    run_dir = train(cfg, quiet=True)
    rows = _rows(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    updates = config["updates_per_epoch"]
    assert updates == 2 * 2  # ceil(4 batches / 2 replays) minibatches x 2 replays
    policy = OneCycle.paper(0.05, cfg.epochs * updates)
    for row in rows:
        last_update = row["epoch"] * updates - 1
        assert row["lr"] == policy.at(last_update).lr
        assert row["momentum"] == policy.at(last_update).momentum
    # passes: every image of each epoch-equivalent's 2 minibatches, twice (m = 2).
    sizes = [32, 32, 32, 4]  # 100 images in batches of 32 -> the stream 32,32 | 32,4 | 32,32
    per_epoch = [2 * (sizes[0] + sizes[1]), 2 * (sizes[2] + sizes[3]), 2 * (sizes[0] + sizes[1])]
    assert [r["passes"] for r in rows] == [sum(per_epoch[: i + 1]) for i in range(3)]
    assert set(rows[0]) == {
        "epoch",
        "lr",
        "momentum",
        "passes",
        "seconds",
        "train_loss",
        "train_adv_acc",
        "val_acc",
        "robust_val_acc",
        "monitor",
        "monitor_passes",
        "val_passes",
        "overhead_passes",
        "monitor_value",
        "decision",
        "test_clean_acc",
        "test_robust_acc",
    }
    report = json.loads((run_dir / "report.json").read_text())
    assert report["passes"] == rows[-1]["passes"]


@pytest.mark.slow
def test_accelat_steps_once_per_epoch_with_the_monitor(tmp_path):
    from accelat_core import AccelAT

    cfg = _tiny_cfg(tmp_path, policy="accelat", epochs=4, window=1, method="natural", replays=None,
                    anneal=None)  # the anneal, stepped per update, has its own tests  # fmt: skip
    assert (cfg.monitor, cfg.accelat_z, cfg.stop_patience) == ("train_adv_acc", 1.0, 2)
    rows = _rows(train(cfg, quiet=True))
    # 100 training images in batches of 32: 4 batches, so 128 sampled images per epoch.
    replay = AccelAT(
        0.05, 0.05 / 8, min_gain=0.005, factor=0.5, window=1, samples=128, z=1.0,
        stop_patience=2,
    )  # fmt: skip
    assert [row["monitor_value"] for row in rows] == [row["train_adv_acc"] for row in rows]
    for row in rows:
        assert row["lr"] == replay.lr  # the lr used during the epoch
        replay.step(row["monitor_value"])
        decision = row["decision"]
        if decision is None:
            assert not replay.decisions or replay.decisions[-1].evaluation != row["epoch"] - 1
        else:
            assert decision["index"] == row["epoch"] - 1
            assert decision["new_lr"] == replay.lr


@pytest.mark.slow
def test_catastrophic_overfitting_check_rolls_back_to_the_best_checkpoint(tmp_path, monkeypatch):
    from accelat_train.callbacks import rollback
    from accelat_train.checkpoint import load_checkpoint

    scripted = iter([0.9, 0.85, 0.4])  # the check batch's PGD accuracy: -45 points at epoch 3
    monkeypatch.setattr(rollback, "pgd_accuracy", lambda *a, **kw: next(scripted))
    _script_monitor(monkeypatch, [0.5, 0.3, 0.2, 0.1])  # epoch 1 is the best
    cfg = _tiny_cfg(tmp_path, method="fgsm-rs", replays=None, co_check=True, policy="constant",
                    epochs=4, monitor_every=1)  # fmt: skip
    run_dir = train(cfg, quiet=True)
    # The epoch that collapsed is logged (measured before the rollback); the run stops there.
    assert [r["epoch"] for r in _rows(run_dir)] == [1, 2, 3]
    best = load_checkpoint(run_dir / "best.pt")
    assert best["epoch"] == 1 and best["robust_val_acc"] == 0.5
    last = load_checkpoint(run_dir / "checkpoint.pt")
    assert last["epoch"] == 3 and last["stopped"]["reason"] == "overfitting"
    assert all(torch.equal(last["model"][k], best["model"][k]) for k in best["model"])
    report = json.loads((run_dir / "report.json").read_text())
    assert report["co_check"] == {"fired": True, "epoch": 3, "restored_epoch": 1}
    assert report["stopped"]["epoch"] == 3 and report["stopped"]["reason"] == "overfitting"
    # The final evaluation is of the rolled-back (best) weights.
    untimed = [{k: v for k, v in e.items() if k != "attack_seconds"} for e in
               (report["final"], report["best"]["test"])]  # fmt: skip
    assert untimed[0] == untimed[1]


def _script_monitor(monkeypatch, values):
    """The monitor's robust_val_acc follows ``values`` (val_acc stays real)."""
    from accelat_train.adversarial import evaluation

    it = iter(values)
    monkeypatch.setattr(evaluation.Monitor, "robust", lambda self, model, epoch: next(it))


@pytest.mark.slow
def test_best_checkpoint_keeps_the_earlier_epoch_on_a_tie_and_its_weights(tmp_path, monkeypatch):
    from accelat_train.checkpoint import load_checkpoint

    _script_monitor(monkeypatch, [0.3, 0.5, 0.5, 0.4])
    cfg = _tiny_cfg(tmp_path, policy="constant", epochs=4, monitor_every=1)
    run_dir = train(cfg, quiet=True)
    best = load_checkpoint(run_dir / "best.pt")
    assert best["epoch"] == 2 and best["robust_val_acc"] == 0.5
    # A constant-lr run stopped after 2 epochs holds exactly epoch 2's weights.
    monkeypatch.undo()
    _script_monitor(monkeypatch, [0.3, 0.5])
    short = train(dataclasses.replace(cfg, epochs=2, out=str(tmp_path / "short")), quiet=True)
    last = load_checkpoint(short / "checkpoint.pt")
    weights = last["evaluated"]  # best.pt holds the weights the run evaluates: the average
    assert all(torch.equal(best["model"][k], weights[k]) for k in weights)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["best"]["epoch"] == 2 and report["best"]["robust_val_acc"] == 0.5
    assert report["robust_overfitting_gap"] == pytest.approx(0.5 - 0.4, abs=1e-15)
    assert set(report["best"]["test"]) >= {"clean_acc", "robust_acc", "attacks"}
    from accelat_train import load_run

    assert load_run(run_dir, "best").epoch == 2 and load_run(run_dir).epoch == 4


@pytest.mark.slow
def test_the_validation_monitor_runs_every_epoch_unless_asked_for_less(tmp_path):
    # accelat on the free train_adv_acc: validation still runs every epoch by default (for
    # best.pt and the log), every N epochs and at the last with monitor_every=N, 0: the last.
    cfg = _tiny_cfg(tmp_path, policy="accelat", epochs=4, window=1)
    assert cfg.monitor_every == 1
    rows = _rows(train(cfg, quiet=True))
    assert [r["robust_val_acc"] is None for r in rows] == [False] * 4
    monitor_passes = [r["monitor_passes"] for r in rows]
    assert monitor_passes == sorted(monitor_passes) and monitor_passes[0] > 0
    for every, measured in ((2, [False, True, False, True]), (0, [False, False, False, True])):
        out = f"{cfg.out}{every}"
        rows = _rows(train(dataclasses.replace(cfg, monitor_every=every, out=out), quiet=True))
        assert [r["robust_val_acc"] is not None for r in rows] == measured
    # a policy that reads a validation metric measures it every epoch, and nothing else will do
    with pytest.raises(ValueError, match="monitor_every must be 1 when the policy reads"):
        TrainConfig(policy="accelat", monitor="val_acc", monitor_every=2)


@pytest.mark.slow
def test_a_default_constant_run_keeps_its_best_validation_epoch_and_logs_every_one(
    tmp_path, capsys
):
    from accelat_train.checkpoint import load_checkpoint
    from accelat_train.cli import main

    out = tmp_path / "run"
    small = ["--train-size", "200", "--val-size", "60", "--monitor-size", "60", "--eval-size",
             "40", "--eval-steps", "2", "--device", "cpu"]  # fmt: skip
    assert main(["train", "--policy", "constant", "--epochs", "10", *small, "--out", str(out)]) == 0
    rows = _rows(out)
    robust = [r["robust_val_acc"] for r in rows]
    assert None not in robust and None not in [r["val_acc"] for r in rows]
    best = robust.index(max(robust)) + 1  # the first epoch with the highest value
    assert load_checkpoint(out / "best.pt")["epoch"] == best
    assert json.loads((out / "report.json").read_text())["best"]["epoch"] == best
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 10
    for line, row in zip(lines, rows, strict=True):
        assert f"val_acc {row['val_acc']:.4g}," in line
        assert f"robust_val_acc {row['robust_val_acc']:.4g}" in line


@pytest.mark.slow
def test_a_policy_config_carries_its_own_lr_and_needs_no_finder(tmp_path):
    config = {"policy": "StepDecay", "lr": 0.02, "milestones": [4], "factor": 0.5}
    cfg = _tiny_cfg(tmp_path, policy_config=config, lr_max="auto", epochs=2, ema_epochs=0.0)
    run_dir = train(cfg, quiet=True)
    rows = _rows(run_dir)
    assert [r["lr"] for r in rows] == [0.02, 0.01]  # 4 updates an epoch: the cut at update 4
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["lr_max"] == "auto" and saved["lr_find"] is None
    assert not (run_dir / "lr_find.png").exists()
