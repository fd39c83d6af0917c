"""lr_find measures each step's prediction spread from the logits of the step's own forward."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from accelat_core.finder import CHANCE, _cut
from accelat_torch import lr_find
from accelat_torch.lr_find import prediction_spread

torch.set_num_threads(1)


def entropy(p: list[float]) -> float:
    return -sum(v * math.log(v) for v in p if v > 0)


def test_spread_is_the_entropy_of_the_mean_prediction_minus_the_mean_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.5], [1.0, 1.0, 1.0], [-2.0, 0.0, 4.0]])
    rows = [[math.exp(v) / sum(math.exp(u) for u in row) for v in row] for row in logits.tolist()]
    mean = [sum(row[c] for row in rows) / 4 for c in range(3)]
    expected = entropy(mean) - sum(entropy(row) for row in rows) / 4
    spread, classes = prediction_spread(logits)
    assert spread == pytest.approx(expected, rel=1e-12) and classes == 3
    assert expected > 0.3  # four different predictions: far from flat


def test_identical_outputs_have_no_spread_whatever_they_predict() -> None:
    for row in ([0.0] * 10, [5.0, -3.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]):
        spread, classes = prediction_spread(torch.tensor([row] * 64))
        assert spread == pytest.approx(0.0, abs=1e-12) and spread >= 0.0 and classes == 10


@pytest.mark.parametrize("logits", [None, torch.zeros(8), torch.zeros(8, 1), torch.zeros(2, 3, 4)])
def test_outputs_that_are_not_class_scores_give_no_spread(logits) -> None:
    assert prediction_spread(logits) == (None, None)


@pytest.fixture(scope="module")
def digits() -> list[tuple[torch.Tensor, torch.Tensor]]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    return [(x[i], torch.tensor(y)[i]) for i in order.split(64)]


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))


def test_each_step_records_the_spread_of_the_logits_its_batch_loss_returned(digits) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    seen = []

    def batch_loss(m, batch):
        x, y = batch
        logits = m(x + 0.01)
        seen.append(logits.detach().clone())
        return F.cross_entropy(logits, y), logits

    result = lr_find(model, opt, None, digits, 1e-4, 10.0, 40, batch_loss=batch_loss)
    assert result.classes == 10 and len(result.spreads) == len(result.losses)
    assert result.spreads == [prediction_spread(z)[0] for z in seen[: len(result.losses)]]


def test_the_default_loss_records_spreads_and_a_bare_loss_does_not(digits) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = lr_find(model, opt, F.cross_entropy, digits, 1e-4, 1.0, 20)
    assert result.classes == 10 and len(result.spreads) == len(result.losses) == 20

    def bare(m, batch):
        x, y = batch
        return F.cross_entropy(m(x), y)

    result = lr_find(model, opt, None, digits, 1e-4, 1.0, 20, batch_loss=bare)
    assert result.spreads is None and result.classes is None


def test_a_network_pushed_to_one_output_for_every_image_is_read_before_it_collapses(digits):
    # At eps 0.5 every digit lies within the ball around the same grey image, so FGSM-RS
    # training pushes the network towards one output for every image. At high lrs it gets
    # there: its loss falls to chance (ln 10) with flat predictions, below anything it
    # reached while learning, and the minimum of the whole curve sits in the collapse (seven
    # of eight seeds of this network here; the suggestion moves from lr 2.1 / 10 to 1.73 / 10).
    eps = 0.5
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(0)

    def fgsm_rs(m, batch):
        x, y = batch
        delta = ((torch.rand(x.shape, generator=g) * 2 - 1) * eps).requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(m((x + delta).clamp(0, 1)), y), delta)
        delta = (delta + 1.25 * eps * grad.sign()).clamp(-eps, eps).detach()
        logits = m((x + delta).clamp(0, 1))
        return F.cross_entropy(logits, y), logits

    smooth = 1 - 10 / 60
    result = lr_find(model, opt, None, digits, 1e-4, 10.0, 60, batch_loss=fgsm_rs, smooth=smooth)
    cut, spreads = result.suggestion.cut, result.spreads
    usable = _cut(result.losses, smooth)
    whole = usable.index(min(usable))  # the reading without the spreads
    assert cut is not None and cut.reason == "collapsed" and whole >= cut.index
    assert result.losses[cut.index] <= CHANCE * math.log(10)
    assert spreads[cut.index] <= 0.2 * (max(spreads[: cut.index + 1]) - spreads[0])
    assert result.suggestion.index < cut.index and result.problem is None
