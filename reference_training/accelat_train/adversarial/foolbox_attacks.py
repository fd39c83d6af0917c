"""Foolbox 3's L-infinity attacks: :data:`LINF_PGD`, :data:`FGSM` and :data:`DEEPFOOL`, for the
robust evaluation (their records: :data:`accelat_train.registry.ATTACKS`) and for the
``foolbox-*`` training methods (:func:`foolbox_adversarial`).

Foolbox is imported only when an attack runs (the ``[train]`` extra). The model is given to
Foolbox as its network with the normalisation as Foolbox's preprocessing
(:func:`foolbox_model`); every adversarial image is checked to lie in the ε-ball around x and
in [0, 1] (:func:`~accelat_train.adversarial.attacks.check_in_ball`).

>>> LINF_PGD.describe(10)
'Foolbox LinfPGD: 10 steps of 2.5*eps/10, random start'
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from accelat_train.adversarial.attacks import AttackRun, attack_mode, check_eps, check_in_ball
from accelat_train.extras import needs_extra
from accelat_train.models import NormalizedModel
from accelat_train.registry import ATTACKS


class FoolboxAttack:
    """One Foolbox attack: ``make(fb, eps, steps)`` builds it from the ``foolbox`` module;
    ``per_eps``: its settings depend on ε, so it runs once per ε (else once for all of them);
    ``description`` says what it runs, ``{steps}`` filled in."""

    def __init__(
        self, name: str, make: Callable[[Any, float, int], Any], *, per_eps: bool, description: str
    ) -> None:
        self.name, self.make, self.per_eps, self.description = name, make, per_eps, description

    def describe(self, steps: int) -> str:
        """What it runs with ``steps``, in words."""
        return self.description.format(steps=steps)

    def foolbox(self, eps: float, steps: int) -> Any:
        """The Foolbox attack object at ``eps`` with ``steps``."""
        with needs_extra(f"the attack {self.name!r}"):
            import foolbox as fb

        return self.make(fb, eps, steps)

    @contextlib.contextmanager
    def runner(
        self, model: nn.Module, x: torch.Tensor, epsilons: list[float], steps: int, batch_size: int
    ) -> Iterator[AttackRun]:
        """``run(xb, yb) -> [(x_adv, success) per ε]`` (success: the prediction changed)."""
        fmodel = foolbox_model(model, x.device)

        def run(xb: torch.Tensor, yb: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
            if self.per_eps:
                outs = [self.foolbox(e, steps)(fmodel, xb, yb, epsilons=[e]) for e in epsilons]
                return [(clipped[0], success[0]) for _, clipped, success in outs]
            # FGSM and DeepFool take every ε in one call (DeepFool runs once for all)
            _, clipped, success = self.foolbox(epsilons[0], steps)(
                fmodel, xb, yb, epsilons=epsilons
            )
            return list(zip(clipped, success, strict=True))

        yield run

    def adversarial(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int
    ) -> torch.Tensor:
        """Adversarial images of ``x`` against the current model (in eval mode), clipped to
        the ε-ball and [0, 1]; a training method's minibatch."""
        check_eps(eps)
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        with attack_mode(model):
            fmodel = foolbox_model(model, x.device)
            _, clipped, _ = self.foolbox(eps, steps)(fmodel, x.detach(), y.long(), epsilons=[eps])
        check_in_ball(self.name, eps, x, clipped[0])
        return clipped[0].detach()


#: Foolbox's default step (0.033ε) cannot leave the start region in a few steps: 2.5ε/steps.
LINF_PGD = FoolboxAttack(
    "linfpgd",
    lambda fb, eps, steps: fb.attacks.LinfPGD(
        abs_stepsize=2.5 * eps / steps, steps=steps, random_start=True
    ),
    per_eps=True,
    description="Foolbox LinfPGD: {steps} steps of 2.5*eps/{steps}, random start",
)
FGSM = FoolboxAttack(
    "fgsm",
    lambda fb, eps, steps: fb.attacks.FGSM(),
    per_eps=False,
    description="Foolbox FGSM: one signed-gradient step of eps",
)
DEEPFOOL = FoolboxAttack(
    "deepfool",
    lambda fb, eps, steps: fb.attacks.LinfDeepFoolAttack(steps=steps),
    per_eps=False,
    description="Foolbox LinfDeepFoolAttack: at most {steps} steps",
)


def foolbox_model(model: nn.Module, device: torch.device):  # type: ignore[no-untyped-def]
    """Foolbox's view of ``model``: a NormalizedModel's network with its normalisation as
    Foolbox's preprocessing, or any other model of [0, 1] images as it is."""
    with needs_extra("Foolbox's attacks"):
        import foolbox as fb

    if not isinstance(model, NormalizedModel):
        return fb.PyTorchModel(model, bounds=(0, 1), device=device)
    preprocessing = dict(mean=model.mean.flatten(), std=model.std.flatten(), axis=-3)
    return fb.PyTorchModel(model.net, bounds=(0, 1), preprocessing=preprocessing, device=device)


def foolbox_adversarial(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str,
    eps: float,
    *,
    steps: int = 20,
) -> torch.Tensor:
    """The Foolbox attack named ``attack`` (``linfpgd``, ``fgsm`` or ``deepfool``, or another
    registered Foolbox attack) against the current model: :meth:`FoolboxAttack.adversarial`.
    ``steps`` is PGD's number of steps (step 2.5ε/steps, random start) or DeepFool's
    iteration limit; FGSM ignores it."""
    entry = ATTACKS.get(attack)
    runner = entry.load() if entry is not None else None
    if not isinstance(runner, FoolboxAttack):
        names = [n for n, e in ATTACKS.items() if "foolbox" in e.needs]
        raise ValueError(f"attack must be one of {', '.join(names)}, got {attack!r}")
    return runner.adversarial(model, x, y, eps, steps)
