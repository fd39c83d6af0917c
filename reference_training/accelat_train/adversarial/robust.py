"""Robust evaluation by any of ``ATTACK_NAMES``: Foolbox's three and ART's APGD-CE, APGD-T
(targeted DLR) and an AutoAttack-style suite; per-image robust masks, accuracies, and the
worst case over attacks.

The attacks from IBM's adversarial-robustness-toolbox (ART, the ``[eval]`` extra) are imported
only when asked for (ART takes seconds to import and reconfigures its logger).
:func:`describe_attack` says exactly what each runs. Every adversarial image is checked to lie
in the ε-ball around x and in [0, 1] (:func:`accelat_train.adversarial.attacks.check_in_ball`).

>>> robust_accuracy(model, x, y, "linfpgd", [2 / 255, 8 / 255])  # doctest: +SKIP
{0.00784313725490196: 0.61, 0.03137254901960784: 0.43}
>>> evaluate(model, x, y, ["linfpgd", "autoattack-art"], 8 / 255)["worst_case"]  # doctest: +SKIP
{'0.03137254901960784': 0.40}
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from accelat_train.adversarial import attacks
from accelat_train.adversarial.attacks import (
    ART_NAMES,
    ATTACK_NAMES,
    FOOLBOX_NAMES,
    attack_mode,
    canonical_attack,
    check_attack,
    check_eps,
    check_in_ball,
    clean_accuracy,
)
from accelat_train.extras import needs_extra

# AutoAttack's standard L∞ settings (Croce & Hein 2020, version="standard").
AUTOATTACK_ITERATIONS = 100
AUTOATTACK_TARGETS = 9
SQUARE_QUERIES = 5000
# ART draws random starts and Square's proposals from numpy's global RNG; each ART evaluation
# runs on this seed (AutoAttack's default) and puts the caller's numpy state back afterwards.
ART_SEED = 0

AttackRun = Callable[[torch.Tensor, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]


def describe_attack(attack: str, steps: int = 20) -> str:
    """What ``attack`` runs with ``steps``, in words (the library, its settings, its order).

    >>> describe_attack("apgd-ce", 50)
    'ART AutoProjectedGradientDescent: cross-entropy, untargeted, 50 iterations, 1 restart'
    """
    check_attack(attack, steps)
    attack = canonical_attack(attack)
    apgd = "ART AutoProjectedGradientDescent"
    targeted = (
        f"{apgd}: ART's targeted DLR loss -(z_t - max_(i!=t) z_i)/(z_pi1 - z_pi3), "
        f"targets the {AUTOATTACK_TARGETS} classes ranked 2 to {AUTOATTACK_TARGETS + 1} "
        "by clean logit (fewer if the model has fewer classes), 1 restart per target"
    )
    return {
        "linfpgd": f"Foolbox LinfPGD: {steps} steps of 2.5*eps/{steps}, random start",
        "fgsm": "Foolbox FGSM: one signed-gradient step of eps",
        "deepfool": f"Foolbox LinfDeepFoolAttack: at most {steps} steps",
        "apgd-ce": f"{apgd}: cross-entropy, untargeted, {steps} iterations, 1 restart",
        "apgd-dlr": f"{targeted}, {steps} iterations",
        "autoattack-art": (
            f"AutoAttack standard L-inf suite without FAB-T (ART has no FAB), each attack on "
            f"the images still robust: APGD-CE ({apgd}: cross-entropy, untargeted, "
            f"{AUTOATTACK_ITERATIONS} iterations, 1 restart), then APGD-T ({targeted}, "
            f"{AUTOATTACK_ITERATIONS} iterations), then ART SquareAttack ({SQUARE_QUERIES} "
            "queries, p_init 0.8, 1 restart); steps is not used"
        ),
    }[attack]


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
    ``attack`` (one of ``ATTACK_NAMES``) at ε failed to change the prediction.

    White-box, in eval mode, labels as int64, ``batch_size`` images at a time; every
    adversarial image passes :func:`check_in_ball`. ``steps``: PGD's steps or DeepFool's
    iteration limit (Foolbox; FGSM ignores it), APGD's iterations (``apgd-ce``, ``apgd-dlr``);
    ``autoattack-art`` runs its standard settings and ignores it (:func:`describe_attack`). ART
    attacks skip images misclassified clean and, at ε = 0, attack nothing (x_adv = x).

    >>> robust_mask(model, x, y, "apgd-ce", 8 / 255)[8 / 255].float().mean()  # doctest: +SKIP
    tensor(0.4300)
    """
    check_attack(attack, steps)
    attack = canonical_attack(attack)
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
    art = _art_context(x.device) if attack in ART_NAMES else contextlib.nullcontext()
    with attack_mode(model), art:
        if attack in FOOLBOX_NAMES:
            run = _foolbox_attacker(model, x, attack, epsilons, steps)
        else:
            run = _art_attacker(model, x, attack, epsilons, steps, batch_size)
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
    names = list(dict.fromkeys(canonical_attack(a) for a in attacks))
    if not names:
        raise ValueError(f"attacks must name at least one of {ATTACK_NAMES}, got {attacks!r}")
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


def _foolbox_attacker(
    model: nn.Module, x: torch.Tensor, attack: str, epsilons: list[float], steps: int
) -> AttackRun:
    """``run(xb, yb) -> [(x_adv, success) per ε]`` by Foolbox (success: prediction changed)."""
    fmodel = attacks.foolbox_model(model, x.device)

    def run(xb: torch.Tensor, yb: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if attack == "linfpgd":  # the step size depends on ε: one run per ε
            outs = [
                attacks.foolbox_attack(attack, e, steps)(fmodel, xb, yb, epsilons=[e])
                for e in epsilons
            ]
            return [(clipped[0], success[0]) for _, clipped, success in outs]
        # FGSM and DeepFool take every ε in one call (DeepFool runs once for all)
        _, clipped, success = attacks.foolbox_attack(attack, epsilons[0], steps)(
            fmodel, xb, yb, epsilons=epsilons
        )
        return list(zip(clipped, success, strict=True))

    return run


def _import_art() -> Any:
    with needs_extra(f"evaluating with ART's attacks ({', '.join(ART_NAMES)})"):
        from art.attacks import evasion
        from art.estimators.classification import PyTorchClassifier
    return evasion, PyTorchClassifier


@contextlib.contextmanager
def _art_context(device: torch.device) -> Iterator[None]:
    """numpy's global RNG seeded with ``ART_SEED`` and, on CUDA, ``device`` current.

    ART draws from numpy's global RNG and keeps its classifier on the *current* CUDA device;
    the caller's numpy state comes back afterwards.
    """
    state = np.random.get_state()
    np.random.seed(ART_SEED)
    try:
        with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            yield
    finally:
        np.random.set_state(state)


def _art_attacker(
    model: nn.Module,
    x: torch.Tensor,
    attack: str,
    epsilons: list[float],
    steps: int,
    batch_size: int,
) -> AttackRun:
    """``run(xb, yb) -> [(x_adv, success) per ε]`` by ART (success: prediction changed)."""
    evasion, classifier_type = _import_art()
    with torch.no_grad():
        nb_classes = int(model(x[:1]).shape[1])
    if attack != "apgd-ce" and nb_classes < 3:
        raise ValueError(
            f"attack {attack!r} needs a model with >= 3 classes (the DLR loss divides by "
            f"z_pi1 - z_pi3), got {nb_classes}"
        )
    height, width = x.shape[-2:]
    if attack == "autoattack-art" and max(round((0.8 * height * width) ** 0.5), 1) >= min(
        x.shape[-2:]
    ):
        raise ValueError(
            "attack 'autoattack-art' needs images whose first Square tile, round(sqrt(0.8*H*W)) "
            f"pixels wide, fits strictly inside them (5x5 or more), got {height}x{width}"
        )
    classifier = classifier_type(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=nb_classes,
        clip_values=(0.0, 1.0),
        device_type="gpu" if x.device.type == "cuda" else "cpu",
    )
    stages = {e: _art_stages(evasion, classifier, attack, e, steps, batch_size) for e in epsilons}
    targets = min(AUTOATTACK_TARGETS, nb_classes - 1)

    def run(xb: torch.Tensor, yb: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for e in epsilons:
            x_adv = _art_adversarial(model, stages[e], xb, yb, targets) if e > 0 else xb
            out.append((x_adv, _predict(model, x_adv) != yb))
        return out

    return run


def _art_stages(
    evasion: Any, classifier: Any, attack: str, eps: float, steps: int, batch_size: int
) -> list[tuple[Any, bool]]:
    """``[(ART attack, targeted)]`` in the order they run; none at ε = 0 (ART needs ε > 0)."""
    if eps == 0:
        return []

    def apgd(loss_type: str, iterations: int, targeted: bool) -> tuple[Any, bool]:
        # eps_step 2ε, 1 restart and the checkpoints of Croce & Hein's APGD (ART's defaults).
        return evasion.AutoProjectedGradientDescent(
            classifier,
            norm=np.inf,
            eps=eps,
            eps_step=2 * eps,
            max_iter=iterations,
            targeted=targeted,
            nb_random_init=1,
            batch_size=batch_size,
            loss_type=loss_type,
            verbose=False,
        ), targeted

    if attack == "apgd-ce":
        return [apgd("cross_entropy", steps, False)]
    if attack == "apgd-dlr":
        return [apgd("difference_logits_ratio", steps, True)]
    square = evasion.SquareAttack(
        classifier,
        norm=np.inf,
        max_iter=SQUARE_QUERIES,
        eps=eps,
        p_init=0.8,
        nb_restarts=1,
        batch_size=batch_size,
        verbose=False,
    )
    return [
        apgd("cross_entropy", AUTOATTACK_ITERATIONS, False),
        apgd("difference_logits_ratio", AUTOATTACK_ITERATIONS, True),
        (square, False),
    ]


def _art_adversarial(
    model: nn.Module,
    stages: list[tuple[Any, bool]],
    xb: torch.Tensor,
    yb: torch.Tensor,
    targets: int,
) -> torch.Tensor:
    """Each image's first point that a stage found misclassified, else the image itself.

    Each stage attacks only the images still classified correctly; a targeted stage runs once
    per target, the classes ranked 2nd, 3rd, ... by clean logit (APGD-T's choice).
    """
    x_np = xb.detach().cpu().float().numpy()
    y_np = yb.cpu().numpy()
    x_adv = x_np.copy()
    with torch.no_grad():
        logits = model(xb)
    robust = (logits.argmax(1) == yb).cpu().numpy()
    ranked = logits.argsort(1, descending=True).cpu().numpy()
    for art_attack, targeted in stages:
        for label in [ranked[:, k] for k in range(1, targets + 1)] if targeted else [y_np]:
            index = np.flatnonzero(robust)
            if index.size == 0:
                break
            found = art_attack.generate(x=x_np[index], y=label[index]).astype(np.float32)
            broken = _predict(model, torch.from_numpy(found).to(xb.device)).cpu().numpy()
            broken = broken != y_np[index]
            x_adv[index[broken]] = found[broken]
            robust[index[broken]] = False
    return torch.from_numpy(x_adv).to(xb.device, xb.dtype)


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)
