"""L-infinity attacks: our fast torch ones for training and the monitor, and what every
attack shares: the checks its images pass and the mode its model runs in. The evaluation's
attacks (Foolbox's, :mod:`~accelat_train.adversarial.foolbox_attacks`, and ART's,
:mod:`~accelat_train.adversarial.art_attacks`) run through
:mod:`accelat_train.adversarial.robust`.

All take and return images in [0, 1] (the :class:`~accelat_train.models.NormalizedModel` input)
and never leave gradients on the model's parameters.

- :func:`fgsm_rs`: FGSM with a random start (Wong et al. 2020): one gradient pass.
- :func:`pgd`: Madry et al. PGD-k: k gradient passes.
- :func:`check_in_ball`: every adversarial image lies in the ε-ball around x and in [0, 1]
  (``BALL_TOLERANCE``).
- :func:`attack_mode`: eval mode and frozen parameters while a library attacks.

>>> x_adv = pgd(model, x, y, eps=8 / 255, steps=10)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from accelat_train.deprecations import moved
from accelat_train.registry import ATTACKS

#: An attack at work on one batch: ``run(xb, yb) -> [(x_adv, success) per ε]``, success where
#: the prediction changed (:class:`accelat_train.adversarial.robust.Attack`).
AttackRun = Callable[[torch.Tensor, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]

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


def check_attack(attack: str, steps: int) -> None:
    """Raise ``ValueError`` unless ``attack`` names a registered attack (or an alias of one)
    and ``steps`` is a positive int."""
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {tuple(ATTACKS)}, got {attack!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")


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


def _named(needs: str) -> tuple[str, ...]:
    return tuple(n for n, e in ATTACKS.items() if needs in e.needs)


_FOOLBOX = "accelat_train.adversarial.foolbox_attacks"
#: Names that became the records' or moved (deprecated since 0.2, gone in 0.4).
__getattr__ = moved(__name__, {
    "ATTACK_NAMES": (lambda: tuple(ATTACKS), "tuple(accelat_train.registry.ATTACKS)"),
    "ATTACK_HELP": (ATTACKS.helps, "accelat_train.registry.ATTACKS.helps()"),
    "ATTACK_ALIASES": (lambda: {a: n for n, e in ATTACKS.items() for a in e.aliases},
                       "accelat_train.registry.ATTACKS.canonical"),
    "canonical_attack": (lambda: ATTACKS.canonical, "accelat_train.registry.ATTACKS.canonical"),
    "FOOLBOX_NAMES": (lambda: _named("foolbox"), "the ATTACKS records that need foolbox"),
    "ART_NAMES": (lambda: _named("art"), "the ATTACKS records that need art"),
    "foolbox_adversarial": (f"{_FOOLBOX}:foolbox_adversarial", f"{_FOOLBOX}.foolbox_adversarial"),
    "foolbox_model": (f"{_FOOLBOX}:foolbox_model", f"{_FOOLBOX}.foolbox_model"),
})  # fmt: skip
