"""Robust evaluation by any registered attack (:data:`accelat_train.registry.ATTACKS`:
Foolbox's three, :mod:`~accelat_train.adversarial.foolbox_attacks`, and ART's APGD-CE, APGD-T
and an AutoAttack-style suite, :mod:`~accelat_train.adversarial.art_attacks`): per-image robust
masks, accuracies, and the worst case over attacks.

Each attack's record names its :class:`Attack`: how it runs on a batch and what it runs, in
words (:func:`describe_attack`). Every adversarial image is checked to lie in the ε-ball
around x and in [0, 1] (:func:`accelat_train.adversarial.attacks.check_in_ball`).

>>> robust_accuracy(model, x, y, "linfpgd", [2 / 255, 8 / 255])  # doctest: +SKIP
{0.00784313725490196: 0.61, 0.03137254901960784: 0.43}
>>> evaluate(model, x, y, ["linfpgd", "autoattack-art"], 8 / 255)["worst_case"]  # doctest: +SKIP
{'0.03137254901960784': 0.40}
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import torch
from torch import nn

from accelat_train.adversarial.attacks import (
    AttackRun,
    attack_mode,
    check_attack,
    check_eps,
    check_in_ball,
    clean_accuracy,
)
from accelat_train.deprecations import moved
from accelat_train.extras import needs_extra
from accelat_train.registry import ATTACKS


class Attack(Protocol):
    """What an attack's record builds (:class:`~accelat_train.registry.AttackEntry`)."""

    def runner(
        self, model: nn.Module, x: torch.Tensor, epsilons: list[float], steps: int, batch_size: int
    ) -> AbstractContextManager[AttackRun]:
        """Ready to attack ``model`` on batches of ``x`` at each of ``epsilons``: gives
        ``run(xb, yb) -> [(x_adv, success) per ε]`` (success: the prediction changed)."""
        ...

    def describe(self, steps: int) -> str:
        """What it runs with ``steps``, in words (the library, its settings, its order)."""
        ...


def describe_attack(attack: str, steps: int = 20) -> str:
    """What ``attack`` runs with ``steps``, in words (the library, its settings, its order).

    >>> describe_attack("apgd-ce", 50)
    'ART AutoProjectedGradientDescent: cross-entropy, untargeted, 50 iterations, 1 restart'
    """
    check_attack(attack, steps)
    described: Attack = ATTACKS[attack].load()
    return described.describe(steps)


def robust_mask(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str,
    eps: float | Sequence[float],
    *,
    steps: int = 20,
    batch_size: int = 500,
    progress: bool = False,
) -> dict[float, torch.Tensor]:
    """``{ε: bool mask (len(x),) on CPU}``: True where x is classified correctly clean AND
    ``attack`` (a registered attack) at ε failed to change the prediction.

    White-box, in eval mode, labels as int64, ``batch_size`` images at a time; every
    adversarial image passes :func:`check_in_ball`. ``steps``: PGD's steps or DeepFool's
    iteration limit (Foolbox; FGSM ignores it), APGD's iterations (``apgd-ce``, ``apgd-dlr``);
    ``autoattack-art`` runs its standard settings and ignores it (:func:`describe_attack`). ART
    attacks skip images misclassified clean and, at ε = 0, attack nothing (x_adv = x).

    >>> robust_mask(model, x, y, "apgd-ce", 8 / 255)[8 / 255].float().mean()  # doctest: +SKIP
    tensor(0.4300)
    """
    check_attack(attack, steps)
    attack = ATTACKS.canonical(attack)
    epsilons = _epsilons(eps)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if len(x) == 0:
        raise ValueError("x is empty: robust accuracy of no examples is undefined")
    masks: list[list[torch.Tensor]] = [[] for _ in epsilons]
    starts: Iterator[int] | range = range(0, len(x), batch_size)
    if progress:
        with needs_extra("progress bars"):
            from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"{attack} eval", unit="batch")
    runner: Attack = ATTACKS[attack].load()
    with attack_mode(model), runner.runner(model, x, epsilons, steps, batch_size) as run:
        for start in starts:
            xb = x[start : start + batch_size].detach()
            yb = y[start : start + batch_size].long()
            with torch.no_grad():
                correct = model(xb).argmax(1) == yb
            for k, (x_adv, success) in enumerate(run(xb, yb)):
                check_in_ball(attack, epsilons[k], xb, x_adv)
                masks[k].append((correct & ~success).cpu())
    return {e: torch.cat(masks[k]) for k, e in enumerate(epsilons)}


def robust_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str,
    eps: float | Sequence[float],
    *,
    steps: int = 20,
    batch_size: int = 500,
    progress: bool = False,
) -> dict[float, float]:
    """``{ε: fraction of examples classified correctly both clean and under attack at ε}``.

    The mean of :func:`robust_mask` (same arguments): an example misclassified clean counts as
    not robust at every ε.

    >>> robust_accuracy(model, x, y, "linfpgd", 8 / 255, steps=20)  # doctest: +SKIP
    {0.03137254901960784: 0.43}
    """
    masks = robust_mask(
        model, x, y, attack, eps, steps=steps, batch_size=batch_size, progress=progress
    )
    return {e: _fraction(mask) for e, mask in masks.items()}


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: Sequence[str],
    eps: float | Sequence[float],
    *,
    steps: int = 20,
    batch_size: int = 500,
    progress: bool = False,
) -> dict[str, Any]:
    """Clean accuracy, each attack's robust accuracy per ε, and the worst case over attacks.

    ``worst_case[ε]`` counts an image robust only if every attack failed on it (as AutoAttack
    reports), so it is at most ``min`` over attacks. Attacks run in the order given (a repeated
    name runs once); ε keys are ``str(float(ε))``; ``robust_acc`` is the first attack at the
    first ε; ``attack_details`` is :func:`describe_attack` for each.

    >>> evaluate(model, x, y, ["linfpgd", "apgd-ce"], 0.1)  # doctest: +SKIP
    {'clean_acc': 0.95, 'robust_acc': 0.78, 'attacks': {'linfpgd': {'0.1': 0.78},
     'apgd-ce': {'0.1': 0.77}}, 'worst_case': {'0.1': 0.765}, 'attack_seconds': {...}, ...}
    """
    names = list(dict.fromkeys(ATTACKS.canonical(a) for a in attacks))
    if not names:
        raise ValueError(f"attacks must name at least one of {tuple(ATTACKS)}, got {attacks!r}")
    for name in names:
        check_attack(name, steps)
    epsilons = _epsilons(eps)
    clean = clean_accuracy(model, x, y)
    masks: dict[str, dict[float, torch.Tensor]] = {}
    seconds: dict[str, float] = {}
    for name in names:
        began = time.perf_counter()
        masks[name] = robust_mask(
            model, x, y, name, epsilons, steps=steps, batch_size=batch_size, progress=progress
        )
        seconds[name] = time.perf_counter() - began
    results = {name: {str(e): _fraction(mask) for e, mask in masks[name].items()} for name in names}
    worst = {
        str(e): _fraction(torch.stack([masks[name][e] for name in names]).all(0)) for e in epsilons
    }
    return {
        "clean_acc": float(clean),
        "robust_acc": results[names[0]][str(epsilons[0])],
        "attacks": results,
        "worst_case": worst,
        "attack_seconds": seconds,
        "attack_details": {name: describe_attack(name, steps) for name in names},
    }


def _epsilons(eps: float | Sequence[float]) -> list[float]:
    epsilons = [float(eps)] if isinstance(eps, (int, float)) else [float(e) for e in eps]
    if not epsilons:
        raise ValueError("eps must be a number or a non-empty sequence of numbers, got []")
    for e in epsilons:
        check_eps(e)
    return epsilons


def _fraction(mask: torch.Tensor) -> float:
    return int(mask.sum()) / len(mask)  # exact count / n, as the Foolbox evaluation always did


_ART = "accelat_train.adversarial.art_attacks"
#: ART's settings moved with its attacks (deprecated here since 0.2, gone in 0.4).
__getattr__ = moved(__name__, {
    name: (f"{_ART}:{name}", f"{_ART}.{name}")
    for name in ("AUTOATTACK_ITERATIONS", "AUTOATTACK_TARGETS", "SQUARE_QUERIES", "ART_SEED")
})  # fmt: skip
