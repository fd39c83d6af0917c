"""Adversarial training methods: one ``Method`` per way of making a batch's training examples.

``Method.train_batch(model, optimizer, x, y) -> BatchStats`` runs one minibatch (Free AT: its
``replays`` updates) and counts its gradient passes: forward + backward of one image = 1
pass, counted by a forward hook on the network for every forward run with autograd enabled
(natural 1/img, free 1/img/replay, fgsm-rs 2/img, pgd ``k+1``/img, Foolbox attacks whatever
they run). A forward alone (an evaluation) is 1/3 pass; :mod:`accelat_train.adversarial.evaluation`
counts those.

To add a method: subclass :class:`Method` in a module of your own, define ``_adversarial``
(or ``_train`` for one that updates more than once per batch), and give it a record,
:class:`~accelat_train.registry.MethodEntry`: its name, help line, the lr finder's attack and
what a minibatch costs (:data:`accelat_train.registry.METHODS`, or ``METHODS.register`` for
your own). :data:`METHODS` here is what each name builds.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from accelat_train import registry
from accelat_train.adversarial import attacks
from accelat_train.adversarial.foolbox_attacks import (
    DEEPFOOL,
    FGSM,
    LINF_PGD,
    FoolboxAttack,
)
from accelat_train.deprecations import moved


class BatchStats(NamedTuple):
    """One ``train_batch``: summed loss and correct count over ``n`` adversarial examples
    (``images x replays`` for Free AT) and the gradient ``passes`` it cost."""

    loss_sum: float
    correct: int
    n: int
    passes: int


class NonFiniteLoss(FloatingPointError):
    """The training loss was NaN or inf; raised before the backward pass."""

    def __init__(self, value: float) -> None:
        super().__init__(f"loss is {value}")
        self.value = value


class Method:
    """One adversarial training method: ``train_batch(model, optimizer, x, y) -> BatchStats``.

    ``x`` holds images in [0, 1] (B x C x H x W), ``model`` normalises inside
    (``NormalizedModel``, possibly wrapped in DDP). Attacks run on the unwrapped model;
    the weight update goes through ``model``. ``on_step`` (if given) runs after each
    ``optimizer.step()`` (the loop steps per-update schedulers there). Randomness (random
    starts) comes from ``generator``, which the loop reseeds per epoch.
    """

    replays = 1

    def __init__(
        self,
        eps: float,
        *,
        pgd_steps: int = 7,
        amp: str | None = None,
        scaler: torch.amp.GradScaler | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.eps = float(eps)
        self.pgd_steps = pgd_steps
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[amp]
        self.scaler = scaler
        self.generator = generator or torch.Generator()
        self._on_step: Callable[[], None] | None = None

    # The loop's hooks ---------------------------------------------------------------------
    def train_batch(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
        on_step: Callable[[], None] | None = None,
    ) -> BatchStats:
        counter = PassCounter(network(model))
        self._on_step = on_step
        try:
            loss_sum, correct, n = self._train(model, optimizer, x, y)
        finally:
            counter.close()
            self._on_step = None
        passes = cast(int, counter.count)  # forward_only=0: whole passes, an int
        return BatchStats(loss_sum, correct, n, passes)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # What each method defines -------------------------------------------------------------
    def _train(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[float, int, int]:
        return self._update(model, optimizer, self._adversarial(model, x, y), y)

    def _adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # Shared pieces ------------------------------------------------------------------------
    def _autocast(self, x: torch.Tensor) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(x.device.type, dtype=self.amp_dtype)

    def _update(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        x_in: torch.Tensor,
        y: torch.Tensor,
        extra_grad: torch.Tensor | None = None,
    ) -> tuple[float, int, int]:
        """Forward, finite-loss check, backward, optimizer step; ``(loss_sum, correct, n)``."""
        with self._autocast(x_in):
            logits = model(x_in)
            loss = F.cross_entropy(logits, y)
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLoss(value)
        optimizer.zero_grad(set_to_none=True)
        if extra_grad is not None:
            extra_grad.grad = None
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if self._on_step is not None:
            self._on_step()
        n = y.shape[0]
        correct = int((logits.detach().argmax(1) == y).sum().item())
        return value * n, correct, n


class NaturalMethod(Method):
    """Plain training on clean images: 1 pass per image."""

    def _adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x


class FreeMethod(Method):
    """Free AT (Shafahi et al. 2019): each minibatch replayed ``replays`` times.

    One backward gives both the weight gradient and the gradient ``g`` on the perturbation;
    after each replay ``delta <- clip(delta + eps * sign(g), -eps, eps)``. The input is
    ``clip(x + delta, 0, 1)``. ``delta`` is one persistent buffer the size of the batch,
    carried from minibatch to minibatch (a smaller last batch uses its first rows).
    """

    def __init__(self, eps: float, *, replays: int = 4, **kwargs: Any) -> None:
        super().__init__(eps, **kwargs)
        self.replays = replays
        self.delta: torch.Tensor | None = None

    def _train(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[float, int, int]:
        n = x.shape[0]
        if self.delta is None or self.delta.shape[0] < n or self.delta.shape[1:] != x.shape[1:]:
            self.delta = torch.zeros_like(x, requires_grad=True)
        elif self.delta.device != x.device:
            self.delta = self.delta.detach().to(x.device).requires_grad_(True)
        loss_sum, correct, total = 0.0, 0, 0
        for _ in range(self.replays):
            x_adv = (x + self.delta[:n]).clamp(0.0, 1.0)
            s, c, k = self._update(model, optimizer, x_adv, y, extra_grad=self.delta)
            loss_sum, correct, total = loss_sum + s, correct + c, total + k
            with torch.no_grad():
                delta_grad = self.delta.grad
                assert delta_grad is not None  # filled by _update's backward
                grad = delta_grad[:n]
                # A GradScaler step that overflowed leaves inf/NaN here; sign(NaN) is NaN.
                step = torch.nan_to_num(grad, nan=0.0).sign_().mul_(self.eps)
                self.delta[:n].add_(step).clamp_(-self.eps, self.eps)
            self.delta.grad = None
        return loss_sum, correct, total

    def state_dict(self) -> dict[str, Any]:
        return {} if self.delta is None else {"delta": self.delta.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        delta = state.get("delta")
        self.delta = None if delta is None else delta.clone().requires_grad_(True)


class FgsmRsMethod(Method):
    """ "Fast is better than free" (Wong et al. 2020): FGSM from a uniform random start,
    step ``1.25 eps``, projected; 2 passes per image."""

    def _adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._autocast(x):
            return attacks.fgsm_rs(unwrap(model), x, y, self.eps, generator=self.generator)


class PgdMethod(Method):
    """Madry et al. PGD-k training: random start, ``k = pgd_steps`` steps of ``2.5 eps / k``;
    ``k + 1`` passes per image."""

    def _adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._autocast(x):
            return attacks.pgd(
                unwrap(model), x, y, self.eps, self.pgd_steps, generator=self.generator
            )


class FoolboxMethod(Method):
    """Each minibatch attacked by a Foolbox attack against the current model (20 steps)."""

    attack: FoolboxAttack

    def _steps(self) -> int:
        return 20

    def _adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.attack.adversarial(unwrap(model), x, y, self.eps, self._steps()).detach()


class FoolboxPgdMethod(FoolboxMethod):
    """Foolbox's LinfPGD with ``pgd_steps`` steps."""

    attack = LINF_PGD

    def _steps(self) -> int:
        return self.pgd_steps


class FoolboxFgsmMethod(FoolboxMethod):
    attack = FGSM


class FoolboxDeepFoolMethod(FoolboxMethod):
    attack = DEEPFOOL


class _Builders(Mapping[str, Callable[..., Method]]):
    """Each registered method's builder by name (its class, for the built-ins), read from
    :data:`accelat_train.registry.METHODS` when used."""

    def __getitem__(self, name: str) -> Callable[..., Method]:
        return registry.METHODS[name].load()

    def __iter__(self) -> Iterator[str]:
        return iter(registry.METHODS)

    def __len__(self) -> int:
        return len(registry.METHODS)


#: What each ``--method`` name builds (``METHODS["free"]`` is :class:`FreeMethod`).
METHODS: Mapping[str, Callable[..., Method]] = _Builders()


#: What a forward alone (an evaluation) costs, in passes: about a third of forward + backward.
FORWARD_ONLY = 1 / 3


class PassCounter:
    """Counts the gradient passes of ``net``: the batch size of every forward run with
    autograd enabled (forward + backward = 1 pass per image), plus ``forward_only`` times
    the batch size of every forward without (0 by default: training charges only its
    gradient work; evaluations pass :data:`FORWARD_ONLY`). Also a context manager.

    >>> net = nn.Linear(2, 2)
    >>> with PassCounter(net, forward_only=FORWARD_ONLY) as counter, torch.no_grad():
    ...     _ = net(torch.zeros(3, 2))
    >>> counter.count
    1.0
    """

    def __init__(self, net: nn.Module, forward_only: float = 0.0) -> None:
        self.count: float = 0
        self.forward_only = forward_only
        self._handle = net.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if torch.is_grad_enabled():
            self.count += int(inputs[0].shape[0])
        elif self.forward_only:
            self.count += self.forward_only * int(inputs[0].shape[0])

    def close(self) -> None:
        self._handle.remove()

    def __enter__(self) -> PassCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unwrap(model: nn.Module) -> nn.Module:
    """The NormalizedModel inside a DDP wrapper (attacks must not run through DDP)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def network(model: nn.Module) -> nn.Module:
    inner = unwrap(model)
    return getattr(inner, "net", inner)


#: Names that became the records' (deprecated since 0.2, gone in 0.4).
__getattr__ = moved(__name__, {
    "METHOD_NAMES": (lambda: tuple(registry.METHODS), "tuple(accelat_train.registry.METHODS)"),
    "METHOD_HELP": (registry.METHODS.helps, "accelat_train.registry.METHODS.helps()"),
})  # fmt: skip
