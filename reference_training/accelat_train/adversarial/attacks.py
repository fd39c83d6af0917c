"""L-infinity attacks: fast torch ones for training, Foolbox's, and the checks every attack's
images pass. Evaluation by any of ``ATTACK_NAMES`` lives in :mod:`accelat_train.adversarial.robust`.

All take and return images in [0, 1] (the :class:`~accelat_train.models.NormalizedModel` input)
and never leave gradients on the model's parameters.

- :func:`fgsm_rs`: FGSM with a random start (Wong et al. 2020): one gradient pass.
- :func:`pgd`: Madry et al. PGD-k: k gradient passes.
- :func:`foolbox_adversarial`: Foolbox 3 ``LinfPGD``, ``FGSM`` and ``LinfDeepFoolAttack``.
- :func:`check_in_ball`: every adversarial image lies in the ε-ball around x and in [0, 1]
  (``BALL_TOLERANCE``).

>>> x_adv = pgd(model, x, y, eps=8 / 255, steps=10)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

# The names, aliases and help lines live in the torch-free ``choices`` (read by --help).
from accelat_train.choices import ATTACK_ALIASES as ATTACK_ALIASES
from accelat_train.choices import ATTACK_HELP as ATTACK_HELP
from accelat_train.choices import ATTACK_NAMES, ATTACKS
from accelat_train.choices import canonical_attack as canonical_attack
from accelat_train.extras import needs_extra
from accelat_train.models import NormalizedModel

#: The attacks Foolbox runs and those IBM's ART runs (the names and help: ``choices``).
FOOLBOX_NAMES = tuple(a.name for a in ATTACKS.values() if "foolbox" in a.needs)
ART_NAMES = tuple(a.name for a in ATTACKS.values() if "art" in a.needs)


# float32 rounding of x ± ε and of ART's projection x + clip(x' - x) is a few ulps of 1.0
# (1.2e-7 each); anything past this is an attack that left the ε-ball or [0, 1].
BALL_TOLERANCE = 1e-6


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
    check_eps(eps)
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
    check_eps(eps)
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


def check_eps(eps: float) -> None:
    if not (isinstance(eps, (int, float)) and 0 <= eps <= 1):
        raise ValueError(f"eps must be a number in [0, 1] (pixels in [0, 1]), got {eps!r}")


# ---------------------------------------------------------------------------------- Foolbox


@contextlib.contextmanager
def attack_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode, frozen parameters and no ``.grad`` for the duration, all restored afterwards.

    Foolbox and ART take input gradients with ``loss.backward()``, which would otherwise fill
    (and add to) every parameter's ``.grad``; freezing the parameters skips the weight
    gradients altogether. ART also calls ``model.zero_grad()``, so the ``.grad`` tensors are
    set aside meanwhile and put back as they were.
    """
    was_training = model.training
    params = list(model.parameters())
    frozen = [p for p in params if p.requires_grad]
    grads = [p.grad for p in params]
    model.eval()
    for p in params:
        p.grad = None
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        for p, grad in zip(params, grads, strict=True):
            p.grad = grad
        model.train(was_training)


def foolbox_attack(attack: str, eps: float, steps: int):  # type: ignore[no-untyped-def]
    with needs_extra(f"the attack {attack!r}"):
        import foolbox as fb

    if attack == "linfpgd":
        # Foolbox's default step (0.033ε) cannot leave the start region in a few steps.
        return fb.attacks.LinfPGD(abs_stepsize=2.5 * eps / steps, steps=steps, random_start=True)
    if attack == "fgsm":
        return fb.attacks.FGSM()
    return fb.attacks.LinfDeepFoolAttack(steps=steps)


def foolbox_model(model: nn.Module, device: torch.device):  # type: ignore[no-untyped-def]
    """Foolbox's view of ``model``: a NormalizedModel's network with its normalisation as
    Foolbox's preprocessing, or any other model of [0, 1] images as it is."""
    with needs_extra("Foolbox's attacks"):
        import foolbox as fb

    if not isinstance(model, NormalizedModel):
        return fb.PyTorchModel(model, bounds=(0, 1), device=device)
    preprocessing = dict(mean=model.mean.flatten(), std=model.std.flatten(), axis=-3)
    return fb.PyTorchModel(model.net, bounds=(0, 1), preprocessing=preprocessing, device=device)


def check_attack(attack: str, steps: int, names: tuple[str, ...] = ATTACK_NAMES) -> None:
    if canonical_attack(attack) not in names:
        raise ValueError(f"attack must be one of {names}, got {attack!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")


def foolbox_adversarial(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str,
    eps: float,
    *,
    steps: int = 20,
) -> torch.Tensor:
    """Foolbox ``attack`` (one of ``FOOLBOX_NAMES``) against the current model, in eval mode.

    Returns the adversarial images clipped to the ε-ball and [0, 1]. ``steps`` is PGD's number
    of steps (step 2.5ε/steps, random start) or DeepFool's iteration limit; FGSM ignores it.
    """
    check_attack(attack, steps, FOOLBOX_NAMES)
    check_eps(eps)
    with attack_mode(model):
        fmodel = foolbox_model(model, x.device)
        _, clipped, _ = foolbox_attack(attack, eps, steps)(
            fmodel, x.detach(), y.long(), epsilons=[eps]
        )
    check_in_ball(attack, eps, x, clipped[0])
    return clipped[0].detach()


def check_in_ball(attack: str, eps: float, x: torch.Tensor, x_adv: torch.Tensor) -> None:
    """Raise ``RuntimeError`` unless ``max |x_adv - x| <= eps`` and ``x_adv`` lies in [0, 1].

    Both up to ``BALL_TOLERANCE`` (float32 rounding), computed in float64; a NaN fails too.

    >>> check_in_ball("fgsm", 0.1, torch.zeros(1, 2), torch.full((1, 2), 0.2))  # doctest: +SKIP
    RuntimeError: attack 'fgsm' at eps=0.1 left the eps-ball: max |x_adv - x| = 0.2 ...
    """
    if x_adv.shape != x.shape:
        raise RuntimeError(
            f"attack {attack!r} at eps={eps} returned shape {tuple(x_adv.shape)} "
            f"for inputs of shape {tuple(x.shape)}"
        )
    x_adv = x_adv.detach().to(x.device, torch.float64)
    distance = (x_adv - x.detach().double()).abs().max().item() if x.numel() else 0.0
    low, high = (x_adv.min().item(), x_adv.max().item()) if x.numel() else (0.0, 1.0)
    if not distance <= eps + BALL_TOLERANCE:
        raise RuntimeError(
            f"attack {attack!r} at eps={eps} left the eps-ball: max |x_adv - x| = {distance:.7g}, "
            f"allowed eps + {BALL_TOLERANCE}"
        )
    if not (low >= -BALL_TOLERANCE and high <= 1 + BALL_TOLERANCE):
        raise RuntimeError(
            f"attack {attack!r} at eps={eps} left [0, 1]: pixels span [{low:.7g}, {high:.7g}], "
            f"allowed [0, 1] ± {BALL_TOLERANCE}"
        )


# ---------------------------------------------------------------------------------- ART


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
