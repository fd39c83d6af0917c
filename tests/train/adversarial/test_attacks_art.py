"""ART's APGD-CE, APGD-T and AutoAttack suite, the ε-ball check and the worst case over attacks.

The expected robustness comes from the weights: for a linear model z = W x + b and a rival class
j, the margin z_y - z_j is linear in x, so its minimum over the ε-ball ∩ [0, 1] is reached at
``clip(x - ε·sign(w_y - w_j), 0, 1)``. An image is robust at ε iff every rival's minimum margin
stays positive; no attack can report less robustness than that.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

import accelat_train.adversarial.art_attacks as art_module
import accelat_train.adversarial.robust as robust_module
from accelat_train.adversarial.attacks import check_in_ball, clean_accuracy
from accelat_train.adversarial.foolbox_attacks import FoolboxAttack, foolbox_adversarial
from accelat_train.adversarial.robust import describe_attack, evaluate, robust_accuracy, robust_mask
from accelat_train.models import NormalizedModel
from accelat_train.registry import ATTACKS

FOOLBOX_NAMES = tuple(n for n, e in ATTACKS.items() if "foolbox" in e.needs)
ART_NAMES = tuple(n for n, e in ATTACKS.items() if "art" in e.needs)

torch.set_num_threads(1)

EPSILONS = [0.01, 0.03, 0.1]


def linear_model(classes: int, n: int, *, seed: int = 0, masked: bool = False):
    """A linear model on 1x8x8 images with 80 % of the labels it predicts.

    ``masked=True`` keeps the same logits but gives them a zero input gradient (gradient
    masking): only a score-based attack can find the worst case.
    """
    torch.manual_seed(seed)
    linear = nn.Linear(64, classes)
    net = nn.Sequential(_ZeroGradient() if masked else nn.Identity(), nn.Flatten(), linear)
    model = NormalizedModel(net, [0.4], [0.25])
    x = torch.rand(n, 1, 8, 8)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    flip = torch.rand(n) < 0.2
    y = torch.where(flip, (predicted + 1) % classes, predicted)
    return model, x, y


class _ZeroGradient(nn.Module):
    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return v.detach() + 0 * v  # the same values, a zero gradient


def exact_robust(model: NormalizedModel, x: torch.Tensor, y: torch.Tensor, eps: float):
    """Per image: correct at every point of the ε-ball ∩ [0, 1] (float64, from the weights)."""
    linear = model.net[2]
    w = linear.weight.detach().double() / model.std.double().flatten()  # logits = w·x + b
    b = linear.bias.detach().double() - (w * model.mean.double().flatten()).sum(1)
    flat = x.double().flatten(1)
    robust = torch.ones(len(x), dtype=torch.bool)
    for rival in range(w.shape[0]):
        d = w[y] - w[rival]
        worst = (flat - eps * torch.sign(d)).clamp(0, 1)
        margin = (d * worst).sum(1) + b[y] - b[rival]
        robust &= (margin > 0) | (y == rival)
    return robust


@pytest.fixture(scope="module")
def binary():
    return linear_model(2, 200)


@pytest.fixture(scope="module")
def four_class():
    return linear_model(4, 60, seed=1)


@pytest.fixture
def fast_suite(monkeypatch):
    """AutoAttack with fewer APGD iterations and Square queries, to keep the tests fast."""
    monkeypatch.setattr(art_module, "AUTOATTACK_ITERATIONS", 10)
    monkeypatch.setattr(art_module, "SQUARE_QUERIES", 300)


def test_apgd_ce_on_a_binary_linear_model_is_the_hand_computed_optimum(binary):
    # Two classes: the cross-entropy's input gradient has the sign of w_o - w_y everywhere,
    # so APGD-CE walks to the worst corner and must find every breakable image.
    model, x, y = binary
    masks = robust_mask(model, x, y, "apgd-ce", [0.0, *EPSILONS], steps=20, batch_size=64)
    for eps, mask in masks.items():
        assert mask.dtype == torch.bool and mask.shape == (len(x),) and mask.device.type == "cpu"
        assert torch.equal(mask, exact_robust(model, x, y, eps)), eps
    accuracy = robust_accuracy(model, x, y, "apgd-ce", EPSILONS, steps=20, batch_size=64)
    assert accuracy == {e: masks[e].sum().item() / len(x) for e in EPSILONS}
    assert masks[0.0].sum() > masks[0.01].sum() > masks[0.03].sum() > masks[0.1].sum()


def test_autoattack_on_a_multiclass_linear_model_is_the_hand_computed_optimum(
    monkeypatch, four_class
):
    # Four classes: the cross-entropy no longer points at the weakest rival, but APGD-T
    # attacks each rival in turn, so the suite finds the optimum that APGD-CE can miss.
    # (APGD at the standard 100 iterations; Square cut to 50 queries, for time.)
    monkeypatch.setattr(art_module, "SQUARE_QUERIES", 50)
    model, x, y = four_class
    masks = {
        attack: robust_mask(model, x, y, attack, EPSILONS, steps=20)
        for attack in ("apgd-ce", "apgd-dlr", "autoattack")
    }
    for eps in EPSILONS:
        exact = exact_robust(model, x, y, eps)
        assert torch.equal(masks["autoattack"][eps], exact), eps
        for attack in ("apgd-ce", "apgd-dlr"):  # sound: never breaks a provably robust image
            assert bool((masks[attack][eps] | ~exact).all()), (attack, eps)
    missed_by_ce = sum(
        int((masks["apgd-ce"][e] & ~exact_robust(model, x, y, e)).sum()) for e in EPSILONS
    )
    assert missed_by_ce > 0  # the model is hard enough to tell the suite from APGD-CE alone


def test_square_breaks_a_gradient_masked_model_that_apgd_cannot(fast_suite):
    model, x, y = linear_model(3, 60, seed=2, masked=True)
    eps = 0.1
    exact = exact_robust(model, x, y, eps).sum().item()
    clean = exact_robust(model, x, y, 0.0).sum().item()
    apgd = robust_mask(model, x, y, "apgd-ce", eps)[eps].sum().item()
    suite = robust_mask(model, x, y, "autoattack", eps)[eps].sum().item()
    assert exact < clean / 2  # at this ε most images are breakable...
    assert apgd >= clean - 10  # ...but a zero gradient leaves APGD only its random start
    assert exact <= suite <= apgd - 10  # Square (score-based) finds what the gradient hides


def _fake_foolbox(shift: float):
    """A Foolbox-shaped attack whose 'clipped' images are x + shift (a broken attack)."""

    def attack(fmodel, x, y, *, epsilons):
        clipped = [x + shift for _ in epsilons]
        return clipped, clipped, torch.zeros(len(epsilons), len(x), dtype=torch.bool)

    return lambda self, eps, steps: attack


@pytest.mark.parametrize(
    ("attack", "shift", "message"),
    [
        ("fgsm", 0.2, r"attack 'fgsm' at eps=0.1 left the eps-ball: max \|x_adv - x\| = 0.2"),
        ("deepfool", -0.05, r"attack 'deepfool' at eps=0.1 left \[0, 1\]: pixels span \[-0.05"),
        ("linfpgd", 0.1 + 3e-6, r"attack 'linfpgd' at eps=0.1 left the eps-ball"),
    ],
)
def test_a_foolbox_result_outside_the_ball_or_the_box_raises(monkeypatch, attack, shift, message):
    model, x, y = linear_model(2, 8)
    x = x * 0.5  # pixels in [0, 0.5]: +0.2 stays in [0, 1] and leaves only the ball
    x[0, 0, 0, 0] = 0.0  # and -0.05 leaves only the box
    monkeypatch.setattr(FoolboxAttack, "foolbox", _fake_foolbox(shift))
    with pytest.raises(RuntimeError, match=message):
        robust_mask(model, x, y, attack, 0.1)
    if attack != "linfpgd":
        with pytest.raises(RuntimeError, match=message):
            foolbox_adversarial(model, x, y, attack, 0.1)


@pytest.mark.parametrize("attack", ART_NAMES)
def test_an_art_result_outside_the_ball_raises(monkeypatch, four_class, attack):
    model, x, y = four_class
    monkeypatch.setattr(
        art_module, "_art_adversarial", lambda m, s, xb, yb, t: (xb + 0.15).clamp(0, 1)
    )
    with pytest.raises(RuntimeError, match=rf"attack '{attack}' at eps=0.1 left the eps-ball"):
        robust_mask(model, x, y, attack, [0.2, 0.1])  # 0.2 passes, 0.1 does not


def test_the_ball_check_allows_float32_rounding_and_nothing_more():
    half, one = torch.full((2, 1, 2, 2), 0.5, dtype=torch.float64), torch.ones(2, 1, 2, 2)
    check_in_ball("apgd-ce", 0.1, half, half + 0.1 + 0.9e-6)  # rounding of x + ε: allowed
    check_in_ball("apgd-ce", 0.1, one, one + 0.9e-6)  # rounding past 1: allowed
    for x, bad, where in [
        (half, half + 0.1 + 1.1e-6, "the eps-ball: max .* = 0.100001"),
        (one, one + 1.1e-6, r"\[0, 1\]: pixels span \[1.000001"),
        (half, half * float("nan"), "the eps-ball: max .* = nan"),
    ]:
        with pytest.raises(RuntimeError, match=f"attack 'apgd-ce' at eps=0.1 left {where}"):
            check_in_ball("apgd-ce", 0.1, x, bad)
    with pytest.raises(RuntimeError, match=r"returned shape \(2, 4\)"):
        check_in_ball("fgsm", 0.1, half, half.flatten(1))


def test_worst_case_is_the_per_image_and_over_attacks(monkeypatch, binary):
    model, x, y = binary
    hand = {  # per attack, per image: robust?
        "linfpgd": [1, 1, 0, 1, 1, 0, 1, 1],
        "fgsm": [1, 0, 0, 1, 1, 1, 1, 1],
        "deepfool": [0, 1, 0, 1, 1, 1, 1, 0],
    }

    def fake_mask(model, x, y, attack, eps, **kwargs):
        return {e: torch.tensor(hand[attack]).bool() for e in eps}

    monkeypatch.setattr(robust_module, "robust_mask", fake_mask)
    result = evaluate(model, x[:8], y[:8], list(hand), [0.03, 0.1])
    assert result["attacks"] == {
        "linfpgd": {"0.03": 0.75, "0.1": 0.75},
        "fgsm": {"0.03": 0.75, "0.1": 0.75},
        "deepfool": {"0.03": 0.625, "0.1": 0.625},
    }
    assert result["worst_case"] == {"0.03": 0.375, "0.1": 0.375}  # images 0-based 3, 4, 6
    assert result["robust_acc"] == 0.75


def test_evaluate_runs_clean_then_each_attack_in_order_like_the_trainer_did(four_class):
    # The trainer's evaluate_test: clean_accuracy, then robust_accuracy per attack in order
    # (the same torch RNG draws, so linfpgd's random starts and numbers are unchanged).
    model, x, y = four_class
    names, eps = ["linfpgd", "fgsm", "apgd-ce"], [0.03, 0.1]
    torch.manual_seed(7)
    result = evaluate(model, x, y, names, eps, steps=5)
    torch.manual_seed(7)
    clean = clean_accuracy(model, x, y)
    masks = {name: robust_mask(model, x, y, name, eps, steps=5) for name in names}
    assert result["clean_acc"] == clean
    assert result["attacks"] == {
        name: {str(e): masks[name][e].sum().item() / len(x) for e in eps} for name in names
    }
    assert result["robust_acc"] == result["attacks"]["linfpgd"]["0.03"]
    for e in eps:
        every = torch.stack([masks[name][e] for name in names]).all(0)
        assert result["worst_case"][str(e)] == every.sum().item() / len(x)
        assert result["worst_case"][str(e)] <= min(a[str(e)] for a in result["attacks"].values())
    assert set(result["attack_seconds"]) == set(names)
    assert all(s > 0 for s in result["attack_seconds"].values())
    assert result["attack_details"]["apgd-ce"] == describe_attack("apgd-ce", 5)


class _EvalOnly(nn.Module):
    """A linear net that refuses to run in training mode."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(64, classes)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        assert not self.training, "attacked in training mode"
        return self.linear(v.flatten(1))


@pytest.mark.parametrize("attack", ART_NAMES)
def test_art_attacks_run_in_eval_mode_and_restore_grads_mode_and_numpy(fast_suite, attack):
    torch.manual_seed(3)
    model = NormalizedModel(_EvalOnly(5), [0.5], [0.3])
    x, y = torch.rand(12, 1, 8, 8), torch.randint(0, 5, (12,), dtype=torch.int32)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    model.train()
    np.random.seed(123)
    before = np.random.get_state()
    first = robust_mask(model, x, y, attack, [0.05, 0.3], steps=3, batch_size=5)
    after = np.random.get_state()
    assert after[0] == before[0] and np.array_equal(after[1], before[1]) and after[2] == before[2]
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert model.training and model.net.training
    again = robust_mask(model, x, y.long(), attack, [0.05, 0.3], steps=3, batch_size=5)
    assert all(torch.equal(first[e], again[e]) for e in first)  # seeded: reproducible


@pytest.mark.parametrize("attack", ART_NAMES)
def test_eps_zero_attacks_nothing_and_gives_clean_accuracy(four_class, attack):
    model, x, y = four_class
    assert robust_accuracy(model, x, y, attack, 0.0) == {0.0: clean_accuracy(model, x, y)}


def test_without_art_the_error_names_the_eval_extra(monkeypatch, four_class):
    model, x, y = four_class
    monkeypatch.setitem(sys.modules, "art", None)
    monkeypatch.setitem(sys.modules, "art.attacks", None)
    with pytest.raises(
        ImportError, match=r"adversarial-robustness-toolbox package: pip install 'accelat\[eval\]'"
    ):
        robust_mask(model, x, y, "apgd-ce", 0.1)
    robust_mask(model, x, y, "fgsm", 0.1)  # Foolbox's attacks do not need it


def test_names_and_descriptions():
    assert tuple(ATTACKS) == (
        "linfpgd",
        "fgsm",
        "deepfool",
        "apgd-ce",
        "apgd-dlr",
        "autoattack-art",
    )
    assert tuple(ATTACKS) == FOOLBOX_NAMES + ART_NAMES
    suite = describe_attack("autoattack")
    for part in ("APGD-CE", "APGD-T", "targeted DLR", "SquareAttack (5000 queries", "FAB"):
        assert part in suite
    assert "50 iterations" in describe_attack("apgd-dlr", 50)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m, x, y: foolbox_adversarial(m, x, y, "apgd-ce", 0.1), ValueError, "one of"),
        (lambda m, x, y: robust_mask(m, x, y, "fab", 0.1), ValueError, "attack must be one of"),
        (lambda m, x, y: robust_mask(m, x, y, "apgd-ce", 0.1, steps=0), ValueError, "steps"),
        (lambda m, x, y: robust_mask(m, x, y, "apgd-dlr", 0.1), ValueError, ">= 3 classes"),
        (lambda m, x, y: robust_mask(m, x, y, "autoattack", 0.1), ValueError, ">= 3 classes"),
        (lambda m, x, y: robust_mask(m, x, y, "apgd-ce", 0.1, batch_size=0), ValueError, "batch"),
        (lambda m, x, y: evaluate(m, x, y, [], 0.1), ValueError, "attacks must name"),
        (lambda m, x, y: evaluate(m, x, y, ["fgsm"], 1.5), ValueError, "eps must be"),
    ],
)
def test_bad_arguments_raise_naming_them(binary, call, error, message):
    model, x, y = binary
    with pytest.raises(error, match=message):
        call(model, x[:4], y[:4])


def test_autoattack_refuses_images_too_small_for_square():
    model = NormalizedModel(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), [0.5], [0.3])
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"Square tile.*got 4x4"):
        robust_mask(model, x, y, "autoattack", 0.1)


def test_evaluate_checks_every_name_before_attacking(monkeypatch, binary):
    model, x, y = binary
    monkeypatch.setattr(robust_module, "robust_mask", lambda *a, **k: pytest.fail("attacked"))
    with pytest.raises(ValueError, match=r"attack must be one of .* got 'cw'"):
        evaluate(model, x, y, ["linfpgd", "cw"], 0.1)
