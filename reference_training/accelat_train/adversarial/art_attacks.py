"""IBM's adversarial-robustness-toolbox (ART, the ``[eval]`` extra) attacks of the robust
evaluation: :data:`APGD_CE`, :data:`APGD_DLR` (APGD-T) and :data:`AUTOATTACK`, an
AutoAttack-style suite without FAB-T (their records: :data:`accelat_train.registry.ATTACKS`).

ART is imported only when one runs (it takes seconds to import and reconfigures its logger).
Each evaluation runs on numpy's global RNG seeded with :data:`ART_SEED` (ART draws its random
starts and Square's proposals from it), and puts the caller's numpy state back afterwards.

>>> APGD_CE.describe(50)
'ART AutoProjectedGradientDescent: cross-entropy, untargeted, 50 iterations, 1 restart'
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from accelat_train.adversarial.attacks import AttackRun
from accelat_train.extras import needs_extra
from accelat_train.registry import ATTACKS

# AutoAttack's standard L∞ settings (Croce & Hein 2020, version="standard").
AUTOATTACK_ITERATIONS = 100
AUTOATTACK_TARGETS = 9
SQUARE_QUERIES = 5000
# ART draws random starts and Square's proposals from numpy's global RNG; each ART evaluation
# runs on this seed (AutoAttack's default) and puts the caller's numpy state back afterwards.
ART_SEED = 0

_APGD = "ART AutoProjectedGradientDescent"

#: ``stages(evasion, classifier, eps, steps, batch_size)``: ``[(ART attack, targeted)]``.
Stages = Callable[[Any, Any, float, int, int], list[tuple[Any, bool]]]


class ArtAttack:
    """One ART attack (or suite): ``stages`` builds its ART attacks at one ε, in the order
    they run; ``dlr``: it reads the DLR loss, which needs 3 classes or more; ``square``: it
    ends in Square, whose first tile must fit inside the images; ``description(steps)`` says
    what it runs."""

    def __init__(
        self, name: str, stages: Stages, *, dlr: bool, square: bool,
        description: Callable[[int], str],
    ) -> None:  # fmt: skip
        self.name, self.stages, self.dlr, self.square = name, stages, dlr, square
        self.description = description

    def describe(self, steps: int) -> str:
        """What it runs with ``steps``, in words."""
        return self.description(steps)

    @contextlib.contextmanager
    def runner(
        self, model: nn.Module, x: torch.Tensor, epsilons: list[float], steps: int, batch_size: int
    ) -> Iterator[AttackRun]:
        """``run(xb, yb) -> [(x_adv, success) per ε]`` (success: the prediction changed),
        within the seeded numpy RNG and, on CUDA, with ``x``'s device current."""
        with _art_context(x.device):
            evasion, classifier_type = _import_art()
            with torch.no_grad():
                nb_classes = int(model(x[:1]).shape[1])
            self._check(nb_classes, x)
            classifier = classifier_type(
                model=model,
                loss=nn.CrossEntropyLoss(),
                input_shape=tuple(x.shape[1:]),
                nb_classes=nb_classes,
                clip_values=(0.0, 1.0),
                device_type="gpu" if x.device.type == "cuda" else "cpu",
            )
            # none at ε = 0 (ART needs ε > 0): the image itself
            stages = {
                e: self.stages(evasion, classifier, e, steps, batch_size) if e > 0 else []
                for e in epsilons
            }
            targets = min(AUTOATTACK_TARGETS, nb_classes - 1)

            def run(xb: torch.Tensor, yb: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
                out = []
                for e in epsilons:
                    x_adv = _art_adversarial(model, stages[e], xb, yb, targets) if e > 0 else xb
                    out.append((x_adv, _predict(model, x_adv) != yb))
                return out

            yield run

    def _check(self, nb_classes: int, x: torch.Tensor) -> None:
        if self.dlr and nb_classes < 3:
            raise ValueError(
                f"attack {self.name!r} needs a model with >= 3 classes (the DLR loss divides by "
                f"z_pi1 - z_pi3), got {nb_classes}"
            )
        height, width = x.shape[-2:]
        if self.square and max(round((0.8 * height * width) ** 0.5), 1) >= min(height, width):
            raise ValueError(
                f"attack {self.name!r} needs images whose first Square tile, "
                "round(sqrt(0.8*H*W)) pixels wide, fits strictly inside them (5x5 or more), "
                f"got {height}x{width}"
            )


def _apgd(
    evasion: Any, classifier: Any, eps: float, batch_size: int, *, loss_type: str,
    iterations: int, targeted: bool,
) -> tuple[Any, bool]:  # fmt: skip
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


def _apgd_ce(evasion: Any, classifier: Any, eps: float, steps: int, batch_size: int) -> Any:
    return [_apgd(evasion, classifier, eps, batch_size, loss_type="cross_entropy",
                  iterations=steps, targeted=False)]  # fmt: skip


def _apgd_dlr(evasion: Any, classifier: Any, eps: float, steps: int, batch_size: int) -> Any:
    return [_apgd(evasion, classifier, eps, batch_size, loss_type="difference_logits_ratio",
                  iterations=steps, targeted=True)]  # fmt: skip


def _autoattack(evasion: Any, classifier: Any, eps: float, _steps: int, batch_size: int) -> Any:
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
        *_apgd_ce(evasion, classifier, eps, AUTOATTACK_ITERATIONS, batch_size),
        *_apgd_dlr(evasion, classifier, eps, AUTOATTACK_ITERATIONS, batch_size),
        (square, False),
    ]


def _targeted(steps: int) -> str:
    return (
        f"{_APGD}: ART's targeted DLR loss -(z_t - max_(i!=t) z_i)/(z_pi1 - z_pi3), "
        f"targets the {AUTOATTACK_TARGETS} classes ranked 2 to {AUTOATTACK_TARGETS + 1} "
        f"by clean logit (fewer if the model has fewer classes), 1 restart per target, "
        f"{steps} iterations"
    )


def _suite(_steps: int) -> str:
    return (
        f"AutoAttack standard L-inf suite without FAB-T (ART has no FAB), each attack on "
        f"the images still robust: APGD-CE ({_APGD}: cross-entropy, untargeted, "
        f"{AUTOATTACK_ITERATIONS} iterations, 1 restart), then APGD-T "
        f"({_targeted(AUTOATTACK_ITERATIONS)}), then ART SquareAttack ({SQUARE_QUERIES} "
        "queries, p_init 0.8, 1 restart); steps is not used"
    )


APGD_CE = ArtAttack(
    "apgd-ce", _apgd_ce, dlr=False, square=False,
    description=lambda steps: f"{_APGD}: cross-entropy, untargeted, {steps} iterations, 1 restart",
)  # fmt: skip
APGD_DLR = ArtAttack("apgd-dlr", _apgd_dlr, dlr=True, square=False, description=_targeted)
AUTOATTACK = ArtAttack("autoattack-art", _autoattack, dlr=True, square=True, description=_suite)


def _import_art() -> Any:
    names = ", ".join(n for n, e in ATTACKS.items() if "art" in e.needs)
    with needs_extra(f"evaluating with ART's attacks ({names})"):
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
