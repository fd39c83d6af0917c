"""lr_find: exact restore, the recorded curve, the batch_loss hook and the plot."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from accelat_core import RangeTest, suggest
from accelat_torch import lr_find


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)


def batches(digits, size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = digits
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y), generator=g)
    return [(x[i], y[i]) for i in order.split(size)]


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 10)
    )


def snapshot(model: nn.Module, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    return copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())


def assert_bitwise_equal(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_bitwise_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            assert_bitwise_equal(u, v)
    else:
        assert a == b


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4),
        lambda p: torch.optim.AdamW(p, lr=1e-3),
    ],
    ids=["SGD", "AdamW"],
)
def test_lr_find_restores_model_and_optimizer_bit_for_bit(digits, make_opt):
    model = mlp()
    opt = make_opt(model.parameters())
    data = batches(digits)
    for x, y in data[:3]:  # give the optimizer state (momentum buffers, Adam moments)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    before = snapshot(model, opt)

    lr_find(model, opt, F.cross_entropy, data, start_lr=1e-4, end_lr=1.0, num_steps=20)

    assert_bitwise_equal(snapshot(model, opt), before)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_lr_find_restores_even_when_the_loss_raises(digits):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = snapshot(model, opt)
    calls = []

    def failing_loss(model, batch):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("boom")
        x, y = batch
        return F.cross_entropy(model(x), y)

    with pytest.raises(RuntimeError, match="boom"):
        lr_find(model, opt, None, batches(digits), num_steps=10, batch_loss=failing_loss)
    assert_bitwise_equal(snapshot(model, opt), before)


def test_lr_find_records_the_range_test_lrs_and_stops_at_divergence(digits):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    result = lr_find(model, opt, F.cross_entropy, batches(digits), 1e-4, 100.0, num_steps=200)

    schedule = RangeTest(1e-4, 100.0, 200)
    assert result.lrs == [schedule.at(t).lr for t in range(len(result.lrs))]
    assert len(result.losses) == len(result.lrs)
    assert len(result.lrs) < 200, "lr 100 with momentum must diverge before the end"
    smoothed = suggest(result.lrs, result.losses, method="minimum", smooth=0.98).smoothed
    assert len(smoothed) == len(result.lrs) - 1  # the last point recorded is the divergent one
    assert result.suggestion == suggest(result.lrs, result.losses, method="paper", smooth=0.98)
    assert 1e-4 <= result.suggestion.lr_min <= result.suggestion.lr_max <= 100.0


def test_suggested_lr_max_trains_the_model(digits):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = batches(digits)
    result = lr_find(model, opt, F.cross_entropy, data, 1e-4, 100.0, num_steps=200)
    for group in opt.param_groups:
        group["lr"] = result.suggestion.lr_max
    x, y = digits
    first = F.cross_entropy(model(x), y).item()
    for xb, yb in data * 2:
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    model.eval()
    accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert F.cross_entropy(model(x), y).item() < first / 4
    assert accuracy > 0.9


def test_batch_loss_hook_gets_each_batch_and_short_loaders_are_cycled(digits):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = batches(digits)[:3]
    seen, returned = [], []

    def tagged_loss(model, batch):
        x, y = batch
        seen.append(next(i for i, b in enumerate(data) if b[0] is x))
        loss = F.cross_entropy(model(x + 0.01), y)  # a stand-in for an adversarial loss
        returned.append(loss.item())
        return loss

    result = lr_find(
        model, opt, None, data, 1e-5, 1e-2, 8, batch_loss=tagged_loss, method="minimum"
    )
    assert seen == [0, 1, 2, 0, 1, 2, 0, 1]
    assert result.losses == returned


def test_missing_loss_fn_and_hook_is_an_error(digits):
    with pytest.raises(ValueError, match="lr_find needs loss_fn, or a batch_loss"):
        lr_find(mlp(), torch.optim.SGD(mlp().parameters(), lr=0.1), None, batches(digits))


def test_plot_writes_a_png(digits, tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = lr_find(model, opt, F.cross_entropy, batches(digits), 1e-4, 10.0, num_steps=30)
    path = result.plot(tmp_path / "lr_find.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
