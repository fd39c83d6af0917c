"""L-infinity attacks: fast torch ones for training, Foolbox ones for training and evaluation.

All take and return images in [0, 1] (the :class:`~accelat_train.models.NormalizedModel` input)
and never leave gradients on the model's parameters.

- :func:`fgsm_rs`: FGSM with a random start (Wong et al. 2020): one gradient pass.
- :func:`pgd`: Madry et al. PGD-k: k gradient passes.
- :func:`foolbox_adversarial`, :func:`robust_accuracy`: Foolbox 3 ``LinfPGD``, ``FGSM`` and
  ``LinfDeepFoolAttack`` against the model in eval mode.

>>> x_adv = pgd(model, x, y, eps=8 / 255, steps=10)  # doctest: +SKIP
>>> robust_accuracy(model, x, y, "linfpgd", [2 / 255, 8 / 255])  # doctest: +SKIP
{0.00784313725490196: 0.61, 0.03137254901960784: 0.43}
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .models import NormalizedModel

ATTACK_NAMES = ("linfpgd", "fgsm", "deepfool")


def fgsm_rs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """FGSM from a random start: ``δ ~ U(-ε, ε)``, ``δ <- clip_ε(δ + α·sign(∇_x L))``.

    ``α`` defaults to 1.25ε (Wong et al. 2020); ``x + δ`` is kept in [0, 1] throughout.
    Runs in the model's current mode; ``generator`` (any device) seeds the start.
    """
    _check_eps(eps)
    alpha = 1.25 * eps if alpha is None else alpha
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    return _projected_sign_ascent(model, x, y, eps, alpha, 1, True, generator)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    step_size: float | None = None,
    *,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Madry et al. PGD-k: ``steps`` times ``δ <- clip_ε(δ + a·sign(∇_x L))``, ``x + δ`` in [0, 1].

    ``a`` (``step_size``) defaults to 2.5ε/steps, so the walk can cross the ball from any start.
    Runs in the model's current mode; ``generator`` (any device) seeds the start.
    """
    _check_eps(eps)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    step_size = 2.5 * eps / steps if step_size is None else step_size
    if not step_size >= 0:
        raise ValueError(f"step_size must be >= 0, got {step_size}")
    return _projected_sign_ascent(model, x, y, eps, step_size, steps, random_start, generator)


def _projected_sign_ascent(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    step_size: float,
    steps: int,
    random_start: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    x = x.detach()
    if random_start:
        # Drawn where the generator lives, so a CPU generator also serves CUDA inputs.
        where = generator.device if generator is not None else x.device
        noise = torch.rand(x.shape, generator=generator, device=where, dtype=x.dtype).to(x.device)
        x_adv = (x + (2 * noise - 1) * eps).clamp_(0, 1)
    else:
        x_adv = x.clone()
    with torch.enable_grad():
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv).float(), y, reduction="sum")
            # Gradient with respect to the input only: parameters' .grad stay untouched.
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = x_adv.detach() + step_size * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0, 1)
    return x_adv.detach()


def _check_eps(eps: float) -> None:
    if not (isinstance(eps, (int, float)) and 0 <= eps <= 1):
        raise ValueError(f"eps must be a number in [0, 1] (pixels in [0, 1]), got {eps!r}")


# ---------------------------------------------------------------------------------- Foolbox


@contextlib.contextmanager
def _attack_mode(model: NormalizedModel) -> Iterator[None]:
    """Eval mode and frozen parameters for the duration, both restored afterwards.

    Foolbox takes input gradients with ``loss.backward()``, which would otherwise fill (and add
    to) every parameter's ``.grad``; freezing the parameters keeps ``.grad`` exactly as it was
    and skips the weight gradients altogether.
    """
    was_training = model.training
    frozen = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)


def _foolbox_attack(attack: str, eps: float, steps: int):  # type: ignore[no-untyped-def]
    import foolbox as fb

    if attack == "linfpgd":
        # Foolbox's default step (0.033ε) cannot leave the start region in a few steps.
        return fb.attacks.LinfPGD(abs_stepsize=2.5 * eps / steps, steps=steps, random_start=True)
    if attack == "fgsm":
        return fb.attacks.FGSM()
    return fb.attacks.LinfDeepFoolAttack(steps=steps)


def _foolbox_model(model: NormalizedModel, device: torch.device):  # type: ignore[no-untyped-def]
    import foolbox as fb

    if not isinstance(model, NormalizedModel):
        raise ValueError(f"model must be a NormalizedModel, got {type(model).__name__}")
    preprocessing = dict(mean=model.mean.flatten(), std=model.std.flatten(), axis=-3)
    return fb.PyTorchModel(model.net, bounds=(0, 1), preprocessing=preprocessing, device=device)


def _check_attack(attack: str, steps: int) -> None:
    if attack not in ATTACK_NAMES:
        raise ValueError(f"attack must be one of {ATTACK_NAMES}, got {attack!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")


def foolbox_adversarial(
    model: NormalizedModel,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str,
    eps: float,
    *,
    steps: int = 20,
) -> torch.Tensor:
    """Foolbox ``attack`` (one of ``ATTACK_NAMES``) against the current model, in eval mode.

    Returns the adversarial images clipped to the ε-ball and [0, 1]. ``steps`` is PGD's number
    of steps (step 2.5ε/steps, random start) or DeepFool's iteration limit; FGSM ignores it.
    """
    _check_attack(attack, steps)
    _check_eps(eps)
    with _attack_mode(model):
        fmodel = _foolbox_model(model, x.device)
        _, clipped, _ = _foolbox_attack(attack, eps, steps)(
            fmodel, x.detach(), y.long(), epsilons=[eps]
        )
    return clipped[0].detach()


def robust_accuracy(
    model: NormalizedModel,
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

    White-box Foolbox ``attack`` in eval mode, labels as int64; an example misclassified clean
    counts as not robust at every ε.
    """
    _check_attack(attack, steps)
    epsilons = [float(eps)] if isinstance(eps, (int, float)) else [float(e) for e in eps]
    if not epsilons:
        raise ValueError("eps must be a number or a non-empty sequence of numbers, got []")
    for e in epsilons:
        _check_eps(e)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if len(x) == 0:
        raise ValueError("x is empty: robust accuracy of no examples is undefined")
    robust = torch.zeros(len(epsilons), dtype=torch.long)
    starts = range(0, len(x), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"{attack} eval", unit="batch")
    with _attack_mode(model):
        fmodel = _foolbox_model(model, x.device)
        for start in starts:
            xb = x[start : start + batch_size].detach()
            yb = y[start : start + batch_size].long()
            with torch.no_grad():
                correct = model(xb).argmax(1) == yb
            if attack == "linfpgd":  # the step size depends on ε: one run per ε
                success = torch.cat(
                    [
                        _foolbox_attack(attack, e, steps)(fmodel, xb, yb, epsilons=[e])[2]
                        for e in epsilons
                    ]
                )
            else:  # FGSM and DeepFool take every ε in one call (DeepFool runs once for all)
                success = _foolbox_attack(attack, epsilons[0], steps)(
                    fmodel, xb, yb, epsilons=epsilons
                )[2]
            robust += (correct & ~success).sum(dim=1).cpu()
    return {e: robust[k].item() / len(x) for k, e in enumerate(epsilons)}


def clean_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1000
) -> float:
    """Fraction of ``x`` (in [0, 1]) that ``model`` classifies as ``y``, in eval mode."""
    if len(x) == 0:
        raise ValueError("x is empty: accuracy of no examples is undefined")
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                logits = model(x[start : start + batch_size])
                correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / len(x)
