"""Attacks: torch FGSM-RS / PGD and the Foolbox evaluation, checked on models solved by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from accelat_train.adversarial.attacks import clean_accuracy, fgsm_rs, pgd
from accelat_train.adversarial.foolbox_attacks import foolbox_adversarial
from accelat_train.adversarial.robust import robust_accuracy
from accelat_train.models import NormalizedModel, build_model
from accelat_train.registry import ATTACKS

FOOLBOX_NAMES = tuple(n for n, e in ATTACKS.items() if "foolbox" in e.needs)

torch.set_num_threads(1)

EPSILONS = [0.0, 0.01, 0.03, 0.1]


@pytest.fixture(scope="module")
def linear():
    """A two-class linear model on 3x4x4 images, with 80% of the labels it predicts.

    For two classes the input gradient of the cross-entropy is ``(p_y - 1)(w_y - w_o) / std``, so
    the worst case in the ε-ball (and [0, 1]) is ``clip(x + ε·sign(w_o - w_y), 0, 1)``: FGSM and
    PGD both land there, which gives every expected number by hand.
    """
    torch.manual_seed(0)
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    model = NormalizedModel(net, mean, std)
    x = torch.rand(400, 3, 4, 4)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    flip = torch.rand(400) < 0.2
    y = torch.where(flip, 1 - predicted, predicted)
    return model, x, y


def analytic_worst_case(model: NormalizedModel, x: torch.Tensor, y: torch.Tensor, eps: float):
    """(x_adv, still-correct mask) in float64 from the weights alone."""
    weight = model.net[1].weight.detach().double()
    bias = model.net[1].bias.detach().double()
    mean, std = model.mean.double(), model.std.double()
    w_raw = (weight.view(2, 3, 4, 4) / std).view(2, 48)  # logits = w_raw · x + b_raw
    b_raw = bias - (weight.view(2, 3, 4, 4) * mean / std).view(2, 48).sum(1)
    direction = torch.sign(w_raw[1 - y] - w_raw[y]).view_as(x)
    x_adv = (x.double() + eps * direction).clamp(0, 1)
    logits = x_adv.flatten(1) @ w_raw.T + b_raw
    return x_adv, logits.argmax(1) == y


def test_foolbox_fgsm_robust_accuracy_matches_the_hand_computed_one(linear):
    model, x, y = linear
    clean_correct = analytic_worst_case(model, x, y, 0.0)[1]
    expected = {
        e: (clean_correct & analytic_worst_case(model, x, y, e)[1]).double().mean().item()
        for e in EPSILONS
    }
    assert robust_accuracy(model, x, y, "fgsm", EPSILONS, batch_size=128) == expected
    assert expected[0.0] == pytest.approx(clean_accuracy(model, x, y))
    assert expected[0.0] > expected[0.03] > expected[0.1]  # the test can tell attacks apart


def test_foolbox_pgd_finds_the_same_optimum_and_deepfool_cannot_beat_it(linear):
    model, x, y = linear
    fgsm = robust_accuracy(model, x, y, "fgsm", EPSILONS)
    assert robust_accuracy(model, x, y, "linfpgd", EPSILONS, steps=10) == fgsm
    deepfool = robust_accuracy(model, x, y, "deepfool", EPSILONS)
    for e in EPSILONS:
        assert fgsm[e] <= deepfool[e] <= fgsm[0.0]


@pytest.mark.parametrize("attack", ["fgsm", "linfpgd"])
def test_foolbox_adversarial_is_the_hand_computed_worst_case(linear, attack):
    model, x, y = linear
    expected, _ = analytic_worst_case(model, x, y, 0.05)
    x_adv = foolbox_adversarial(model, x, y, attack, 0.05, steps=10)
    torch.testing.assert_close(x_adv.double(), expected, atol=1e-6, rtol=0)


def test_torch_pgd_and_fgsm_rs_with_full_step_reach_the_hand_computed_worst_case(linear):
    model, x, y = linear
    expected, _ = analytic_worst_case(model, x, y, 0.05)
    torch.testing.assert_close(
        pgd(model, x, y, 0.05, steps=10).double(), expected, atol=1e-6, rtol=0
    )
    # From any start in the ball a step of 2ε reaches the corner.
    got = fgsm_rs(model, x, y, 0.05, alpha=0.1)
    torch.testing.assert_close(got.double(), expected, atol=1e-6, rtol=0)


def test_misclassified_examples_count_as_not_robust_even_if_the_attack_fixes_them():
    class Bump(nn.Module):
        """Class 1 wins only for pixel values within 0.1 of 0.5: logit_1 = 1 - 100 (v - 0.5)^2."""

        def forward(self, v):
            v = v.flatten(1)
            return torch.cat([torch.zeros_like(v), 1 - 100 * (v - 0.5) ** 2], dim=1)

    model = NormalizedModel(Bump(), [0.0], [1.0])
    # 0.45 is wrongly called class 1; FGSM (ε = 0.3) raises logit_1 by walking toward 0.5 and
    # overshoots to 0.75, where class 0 wins again: Foolbox calls that "not adversarial".
    # 0.85 is rightly class 0 and FGSM pushes it into the bump (0.55): a genuine success.
    x = torch.tensor([0.45, 0.85]).view(2, 1, 1, 1)
    y = torch.tensor([0, 0])
    x_adv = foolbox_adversarial(model, x, y, "fgsm", 0.3)
    assert x_adv.flatten().tolist() == pytest.approx([0.75, 0.55])
    assert model(x_adv).argmax(1).tolist() == [0, 1]
    assert robust_accuracy(model, x, y, "fgsm", 0.3) == {0.3: 0.0}
    assert robust_accuracy(model, x, y, "fgsm", 0.01) == {0.01: 0.5}


@pytest.fixture(scope="module")
def fitted_cnn_state():
    """A digits-sized CNN fitted to 32 random images, so that its loss responds to attacks."""
    torch.manual_seed(1)
    net = build_model("cnn", 10, in_channels=1, image_size=8)
    model = NormalizedModel(net, [0.3], [0.37])
    x = torch.rand(32, 1, 8, 8)
    x[:4] = 0.0  # images at the box's edges: the clip to [0, 1] must bind
    x[4:8] = 1.0
    y = torch.randint(0, 10, (32,))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(40):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.state_dict(), x, y


@pytest.fixture
def cnn(fitted_cnn_state):
    state, x, y = fitted_cnn_state
    model = NormalizedModel(build_model("cnn", 10, in_channels=1, image_size=8), [0.0], [1.0])
    model.load_state_dict(state)
    return model, x, y


@pytest.mark.parametrize("eps", [0.0, 0.03, 0.3])
def test_torch_attacks_stay_in_the_eps_ball_and_the_box(cnn, eps):
    model, x, y = cnn
    for x_adv in (pgd(model, x, y, eps, steps=3), fgsm_rs(model, x, y, eps)):
        assert x_adv.shape == x.shape and not x_adv.requires_grad
        assert (x_adv - x).abs().max() <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_pgd_raises_the_loss_over_clean_and_random_noise(cnn):
    model, x, y = cnn
    model.eval()
    g = torch.Generator().manual_seed(0)
    noise = (x + 0.1 * (2 * torch.rand(x.shape, generator=g) - 1)).clamp(0, 1)
    with torch.no_grad():
        losses = [F.cross_entropy(model(v), y).item() for v in (x, noise, pgd(model, x, y, 0.1, 5))]
    assert losses[2] > losses[0] + 0.1 and losses[2] > losses[1] + 0.1


def test_generator_makes_the_random_start_reproducible(cnn):
    model, x, y = cnn
    model.eval()
    runs = [fgsm_rs(model, x, y, 0.1, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(*runs)
    other = fgsm_rs(model, x, y, 0.1, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(runs[0], other)


@pytest.mark.parametrize("training", [True, False])
def test_attacks_leave_no_grad_and_keep_the_mode(cnn, training):
    model, x, y = cnn
    model.train(training)
    with torch.no_grad():  # also works when called from an evaluation block
        adv = pgd(model, x, y, 0.1, steps=2)
        fgsm_rs(model, x, y, 0.1)
    assert (adv - x).abs().max() > 0.05
    for attack in FOOLBOX_NAMES:  # ART's attacks: test_attacks_art.py
        foolbox_adversarial(model, x, y, attack, 0.1, steps=2)
        robust_accuracy(model, x, y, attack, [0.05, 0.1], steps=2, batch_size=10)
    clean_accuracy(model, x, y, batch_size=7)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training == training for m in model.modules())


def test_foolbox_evaluation_keeps_existing_gradients_exactly(cnn):
    model, x, y = cnn
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    robust_accuracy(model, x, y, "linfpgd", 0.1, steps=2)
    foolbox_adversarial(model, x, y, "deepfool", 0.1, steps=2)
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())


def test_eps_zero_robust_accuracy_is_clean_accuracy(linear):
    model, x, y = linear
    clean = clean_accuracy(model, x, y)
    for attack in FOOLBOX_NAMES:
        assert robust_accuracy(model, x, y, attack, 0.0, steps=2) == {0.0: clean}


def test_clean_accuracy_counts_correct_predictions(linear):
    model, x, y = linear
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).double().mean().item()
    assert clean_accuracy(model, x, y, batch_size=33) == pytest.approx(expected)
    assert np.isclose(expected, 0.8, atol=0.06)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x, y: robust_accuracy(m, x, y, "cw", 0.1), "attack must be one of"),
        (lambda m, x, y: robust_accuracy(m, x, y, "fgsm", []), "eps must be"),
        (lambda m, x, y: robust_accuracy(m, x, y, "fgsm", 2.0), "eps must be"),
        (lambda m, x, y: robust_accuracy(m, x, y, "linfpgd", 0.1, steps=0), "steps must be"),
        (lambda m, x, y: pgd(m, x, y, -0.1, 3), "eps must be"),
        (lambda m, x, y: pgd(m, x, y, 0.1, 0), "steps must be"),
        (lambda m, x, y: fgsm_rs(m, x, y, 0.1, alpha=-1.0), "alpha must be"),
    ],
)
def test_bad_attack_arguments_raise_naming_them(linear, call, message):
    model, x, y = linear
    with pytest.raises(ValueError, match=message):
        call(model, x[:4], y[:4])
