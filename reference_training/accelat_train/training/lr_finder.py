"""The lr range test on the run's own adversarial loss, and the trainer's reading of it.

The loss of a batch is the cross-entropy on adversarial examples of the attack the method's
record names (:attr:`~accelat_train.registry.MethodEntry.finder_attack`): FGSM-RS for free /
fgsm-rs (Free AT's replayed perturbation has no per-batch form; FGSM-RS is the one-step
attack of the same strength), PGD-k (``pgd_steps``) for pgd and the Foolbox methods, clean
images for natural.

**Size.** ``lr_find_steps=None`` runs one step per training batch (one epoch of data),
clamped to [:data:`MIN_STEPS`, :data:`MAX_STEPS`], from 1e-5 to 10. Its gradient passes are
counted (``Finding.passes``) and charged to every policy that starts from its suggestion.

**Reading.** The losses are smoothed with an exponential average whose time constant is a
tenth of the test (``smooth = 1 - 10 / n``, at least 0): the 0.98 of the paper's reading
lags ~50 steps, about 3 decades of lr in a 100-step test, and on adversarial loss, which
flattens at chance instead of exploding, it read 0.658 on CIFAR-10 where every policy then
collapsed to chance. ``lr_max`` is the lr at the smoothed minimum / 10 (``suggest(method=
"minimum")``, the paper's own lr_max rule on the less lagged curve); ``lr_min = lr_max / 10``.
Each step also records the spread of the training forward's predictions (no extra pass), so
the reading stops at the first divergence or collapse to chance (``accelat_core.suggest``): on
CIFAR-10 the adversarial loss spiked and then fell to ln 10 with flat predictions, which the
minimum alone read as learning (lr_max 1). When the curve carries no information
(``accelat_core.finder.curve_problem``: the loss never left its plateau, or diverged or
collapsed at once) the trainer warns with the reason and uses :data:`FALLBACK_LR_MAX` instead:
it never picks a point silently. It warns too when the reading stopped at a divergence or
collapse past which the loss fell lower, or when the suggestion sits at the edge of the range
(``LRFindResult.notes``), and keeps both in the record.

>>> finder_smooth(100), finder_smooth(20), finder_smooth(5)
(0.9, 0.5, 0.0)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from accelat_core.finder import LRFindResult, curve_problem
from accelat_torch import lr_find
from accelat_train.adversarial import attacks
from accelat_train.adversarial.methods import PassCounter, network
from accelat_train.data import stream
from accelat_train.training import distributed
from accelat_train.training.build import Setup

MIN_STEPS = 20
MAX_STEPS = 100
START_LR, END_LR = 1e-5, 10.0
#: The lr used when the range test's curve carries no information (Free AT's, Madry's and
#: Wong et al.'s SGD peak lr on CIFAR-10).
FALLBACK_LR_MAX = 0.1


@dataclass
class Finding:
    """What the range test found: the lrs to use, what it cost, and why it was overruled."""

    lr_max: float
    lr_min: float
    steps: int
    passes: int
    problem: str | None  # why the curve carries no information (then lr_max is the fallback)
    result: LRFindResult | None  # None when the test produced no readable curve

    def plot(self, path: str | Path) -> Path | None:
        """The range test's curve as a PNG at ``path`` (None when there was no curve)."""
        return None if self.result is None else self.result.plot(path)

    def record(self) -> dict[str, Any]:
        """The JSON record kept in ``config.json`` (``lr_find``): the lrs, what they cost, and
        how the curve was read (``cut``: where the reading stopped at a divergence or a
        collapse; ``edge``: ``"first"``/``"last"`` when the suggestion sits at the range's
        edge; ``notes``: the warnings given)."""
        cut = None if self.result is None else self.result.suggestion.cut
        return {
            "lr_max": self.lr_max,
            "lr_min": self.lr_min,
            "method": "fallback" if self.problem else "minimum",
            "steps": self.steps,
            "passes": self.passes,
            "problem": self.problem,
            "cut": None if cut is None else {"reason": cut.reason, "lr": cut.lr},
            "edge": None if self.result is None or self.problem else self.result.edge,
            "notes": self.notes,
        }

    @property
    def notes(self) -> list[str]:
        """What the user should know about the reading (none when it was overruled)."""
        return [] if self.result is None or self.problem else self.result.notes


def finder_smooth(steps: int) -> float:
    """The smoothing factor for a test of ``steps`` points: time constant ``steps / 10``."""
    return max(0.0, 1.0 - 10.0 / steps)


def finder_steps(setup: Setup) -> int:
    """``lr_find_steps``, or one per training batch clamped to [MIN_STEPS, MAX_STEPS]."""
    if setup.range_test.steps is not None:
        return setup.range_test.steps
    return max(MIN_STEPS, min(MAX_STEPS, len(setup.loader)))


def find_lr(setup: Setup) -> Finding:
    """The range test on ``setup``'s adversarial loss (model and optimizer restored), on the
    run's own loader.

    Every rank reads the whole training set in the same order (the loader unsharded); the
    caller broadcasts rank 0's suggestion.
    """
    steps = finder_steps(setup)
    smooth = finder_smooth(steps)
    result: LRFindResult | None
    problem: str | None
    with PassCounter(network(setup.model)) as counter:
        try:
            result = _range_test(setup, steps, smooth)
        except ValueError as exc:  # fewer than 5 usable points: the loss diverged at once
            result, problem = None, f"the range test gave no readable curve ({exc})."
        else:
            problem = curve_problem(
                result.lrs, result.losses, smooth=smooth,
                spread=result.spreads, classes=result.classes,
            )  # fmt: skip
    if problem is None:
        assert result is not None
        lr_max, lr_min = result.suggestion.lr_max, result.suggestion.lr_min
    else:
        warnings.warn(f"lr finder: {problem} Using lr_max {FALLBACK_LR_MAX} instead.", stacklevel=2)
        lr_max, lr_min = FALLBACK_LR_MAX, FALLBACK_LR_MAX / 10
    finding = Finding(float(lr_max), float(lr_min), steps, int(counter.count), problem, result)
    for note in finding.notes:
        warnings.warn(f"lr finder: {note}", stacklevel=2)
    return finding


def run_finder(setup: Setup, plot: Path) -> tuple[float, dict[str, Any]]:
    """The range test of a run (:func:`find_lr`): rank 0's suggested lr_max on every rank,
    and the record ``config.json`` keeps (``lr_find``); the curve is drawn at ``plot``."""
    finding = find_lr(setup)
    lr_max = distributed.broadcast_float(setup.dist, finding.lr_max)
    if setup.dist.is_main:
        finding.plot(plot)
    return lr_max, {**finding.record(), "lr_max": lr_max}


def _range_test(setup: Setup, steps: int, smooth: float) -> LRFindResult:
    test = setup.range_test
    generator = torch.Generator(device=setup.device).manual_seed(test.seed + 7919)

    def batch_loss(
        m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        if test.attack == "fgsm-rs":
            x = attacks.fgsm_rs(m, x, y, test.eps, generator=generator)
        elif test.attack == "pgd":
            x = attacks.pgd(m, x, y, test.eps, test.pgd_steps, generator=generator)
        logits = m(x)
        return F.cross_entropy(logits, y), logits

    return lr_find(
        setup.model,
        setup.optimizer,
        None,
        _Reiterable(stream(setup.loader.unsharded(), 0, None)),
        start_lr=START_LR,
        end_lr=END_LR,
        num_steps=steps,
        batch_loss=batch_loss,
        method="minimum",
        smooth=smooth,
    )


class _Reiterable:
    """An iterable over one shared (endless) iterator: lr_find may re-iterate it."""

    def __init__(self, it: Iterator[Any]) -> None:
        self._it = it

    def __iter__(self) -> Iterator[Any]:
        return self._it
