"""The training loop: adversarial training methods, the epoch loop, metrics, the scheduler.

Units and conventions (they matter for comparing policies):

- **Epoch = epoch-equivalent.** One epoch is one pass of gradient work over the training
  set. For Free AT with ``m`` replays it is ``ceil(len(loader) / m)`` minibatches, each
  replayed ``m`` times, taken from a running stream of loader epochs (the next epoch
  continues where this one stopped), so every method does about ``len(loader)`` weight
  updates per epoch.
- **Gradient passes.** Forward + backward of one image = 1 pass. They are counted by a
  forward hook on the network: every forward with autograd enabled inside ``train_batch``
  adds its batch size (natural 1/img, free 1/img/replay, fgsm-rs 2/img, pgd ``k+1``/img,
  Foolbox attacks whatever they run). Under DDP the count is summed over ranks.
- **Scheduler unit.** A fixed-shape policy steps once per weight update (a Free AT replay
  is an update), with ``total_steps = epochs x updates per epoch``; a metric-driven policy
  (AccelAT) and ``plateau`` step once per epoch with the monitored value.

Default policies, all built from ``lr_max`` (the lr finder's "paper" suggestion when
``lr_max="auto"``) with the same rules for every dataset:

====================  =========================================================
constant              ``Constant(lr_max)``
step                  ``StepDecay.free_at(lr_max, T)``: /10 at 50 % and 75 % of T
linear                ``LinearDecay(lr_max, lr_max / 1000, T)``
exponential           ``ExponentialDecay(lr_max, rate=1e-3, decay_steps=T)`` (to lr_max/1000)
onecycle              ``OneCycle.paper(lr_max, T)``
cyclical              ``Cyclical(lr_max / 10, lr_max, step_size_up=T // 4)``: two cycles
restarts              ``WarmRestarts(lr_max, T / 7, lr_max / 1000, period_mult=2)``: 3 cycles
accelat               ``AccelAT(lr_max, lr_max / 1000, min_gain=0.005, factor=0.5, window=w)``
plateau               torch ``ReduceLROnPlateau(mode="max", factor=0.5, patience=w,
                      threshold=0.005, threshold_mode="abs", min_lr=lr_max / 1000)``
====================  =========================================================

with ``w = clamp(epochs // 5, 1, 5)``. The released AccelAT code uses ``min_gain=0.005``,
``window=cooldown=5`` epochs, ``lr_min = lr_max / 1000`` and ``factor=0.8`` for runs of
50-500 epochs; our runs are 5-30 epochs, so the window scales with the budget (5 from 25
epochs on) and the factor is 0.5 so that a cut is felt within a short run.

Optimiser: SGD, momentum 0.9, weight decay 5e-4 (Free AT / "Fast is better than free" use
5e-4 and 2e-4 on CIFAR; 5e-4 is the common choice), no Nesterov. A policy that emits
momentum (onecycle, cyclical) drives it.

Test hook: ``ACCELAT_INJECT_NAN_AT=epoch:batch`` (1-based) replaces that batch's inputs by
NaN, so the loss is NaN through the real model; the run must then stop with the epoch and
batch in its message and keep the last good checkpoint. ``ACCELAT_RANK_DUMP_DIR=dir`` makes
every rank write ``rank{r}_final.json`` (per-epoch lrs, a hash of the final weights).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from accelat_core import (
    AccelAT,
    Constant,
    Cyclical,
    ExponentialDecay,
    LinearDecay,
    OneCycle,
    Policy,
    StepDecay,
    WarmRestarts,
    from_config,
)
from accelat_torch import PolicyScheduler, lr_find
from accelat_train import distributed
from accelat_train.checkpoint import (
    CheckpointError,
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
)

POLICY_NAMES = (
    "constant",
    "step",
    "linear",
    "exponential",
    "onecycle",
    "cyclical",
    "restarts",
    "accelat",
    "plateau",
)
MONITOR_NAMES = ("robust_val_acc", "val_acc", "train_adv_acc")
AMP_NAMES = ("bf16", "fp16")

#: AccelAT defaults (see the module docstring for the reasoning).
ACCELAT_MIN_GAIN = 0.005
ACCELAT_FACTOR = 0.5
LR_MIN_RATIO = 1e-3
#: fgsm-rs catastrophic-overfitting check: stop when PGD accuracy on a fixed batch drops
#: by more than this from one epoch to the next (Wong et al. 2020 use 0.2).
CO_DROP = 0.2

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
CONFIG_NAME = "config.json"


@dataclass
class TrainConfig:
    """Everything that defines a run; written resolved to ``config.json``.

    ``epochs`` are epoch-equivalents; ``replays`` only applies to ``method="free"``
    (None there means 4); ``lr_max`` is a float or ``"auto"`` (lr finder on the adversarial
    loss); ``eval_every`` = 0 evaluates the test set only at the end.
    """

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    model: str = "cnn"
    method: str = "free"
    eps: float = 8 / 255
    replays: int | None = None
    pgd_steps: int = 7
    policy: str = "accelat"
    policy_config: dict[str, Any] | None = None
    lr_max: float | str = "auto"
    epochs: int = 10
    batch_size: int = 128
    train_size: int | None = None
    val_size: int | None = None
    seed: int = 0
    device: str = "auto"
    out: str = "runs/run"
    monitor: str = "robust_val_acc"
    monitor_steps: int = 5
    monitor_size: int = 500
    eval_every: int = 0
    attacks: tuple[str, ...] = ("linfpgd",)
    eval_steps: int = 20
    eval_size: int | None = None
    amp: str | None = None
    compile: bool = False
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    co_check: bool = False
    lr_find_steps: int = 100
    window: int | None = None
    #: The lr finder's result when a caller (``accelat compare``) ran it for this run.
    lr_find: dict[str, Any] | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field, its value and the allowed values."""
        _one_of("method", self.method, METHOD_NAMES)
        _one_of("monitor", self.monitor, MONITOR_NAMES)
        if self.policy_config is None:
            _one_of("policy", self.policy, POLICY_NAMES)
        if not (isinstance(self.eps, (int, float)) and 0 < self.eps <= 1):
            raise ValueError(f"eps must be in (0, 1] (pixels in [0, 1]), got {self.eps!r}")
        if self.replays is not None and self.method != "free":
            raise ValueError(
                f"replays applies only to method 'free', got replays={self.replays!r} "
                f"with method {self.method!r}"
            )
        for name, lo in (
            ("epochs", 1),
            ("batch_size", 1),
            ("pgd_steps", 1),
            ("monitor_steps", 1),
            ("monitor_size", 1),
            ("eval_every", 0),
            ("eval_steps", 1),
            ("lr_find_steps", 5),
            ("seed", 0),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")
        for name in ("replays", "train_size", "val_size", "eval_size", "window"):
            value = getattr(self, name)
            lo = 0 if name == "val_size" else 1
            if value is not None and (not isinstance(value, int) or value < lo):
                raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")
        if self.lr_max != "auto" and not (
            isinstance(self.lr_max, (int, float)) and math.isfinite(self.lr_max) and self.lr_max > 0
        ):
            raise ValueError(f"lr_max must be 'auto' or a finite float > 0, got {self.lr_max!r}")
        if self.amp is not None:
            _one_of("amp", self.amp, AMP_NAMES)
        _one_of("device", self.device.split(":")[0], ("auto", "cpu", "cuda"))
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.co_check and self.method != "fgsm-rs":
            raise ValueError(f"co_check applies only to method 'fgsm-rs', got {self.method!r}")
        if self.policy_config is not None:
            build_policy_from_config(self.policy_config)  # raises on an invalid config

    @property
    def num_replays(self) -> int:
        return (4 if self.replays is None else self.replays) if self.method == "free" else 1

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["attacks"] = list(self.attacks)
        return d


# -- training methods ----------------------------------------------------------------------
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


class TrainingDiverged(RuntimeError):
    """A run stopped on a NaN/inf loss; the message gives the epoch and batch."""


class Method:
    """One adversarial training method: ``train_batch(model, optimizer, x, y) -> BatchStats``.

    ``x`` holds images in [0, 1] (B x C x H x W), ``model`` normalises inside
    (``NormalizedModel``, possibly wrapped in DDP). Attacks run on the unwrapped model;
    the weight update goes through ``model``. ``after_update`` (if set) runs after each
    ``optimizer.step()`` (the loop steps per-update schedulers there). Randomness (random
    starts) comes from ``generator``, which the loop reseeds per epoch.
    """

    name = ""
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
        self.generator = generator
        self.after_update: Callable[[], None] | None = None

    # The loop's hooks ---------------------------------------------------------------------
    def train_batch(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
    ) -> BatchStats:
        counter = _PassCounter(_network(model))
        try:
            loss_sum, correct, n = self._train(model, optimizer, x, y)
        finally:
            counter.close()
        return BatchStats(loss_sum, correct, n, counter.count)

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
        if self.after_update is not None:
            self.after_update()
        n = y.shape[0]
        correct = int((logits.detach().argmax(1) == y).sum().item())
        return value * n, correct, n


class NaturalMethod(Method):
    """Plain training on clean images: 1 pass per image."""

    name = "natural"

    def _adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x


class FreeMethod(Method):
    """Free AT (Shafahi et al. 2019): each minibatch replayed ``replays`` times.

    One backward gives both the weight gradient and the gradient ``g`` on the perturbation;
    after each replay ``delta <- clip(delta + eps * sign(g), -eps, eps)``. The input is
    ``clip(x + delta, 0, 1)``. ``delta`` is one persistent buffer the size of the batch,
    carried from minibatch to minibatch (a smaller last batch uses its first rows).
    """

    name = "free"

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
                grad = self.delta.grad[:n]
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

    name = "fgsm-rs"

    def _adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from accelat_train import attacks

        with self._autocast(x):
            return attacks.fgsm_rs(_unwrap(model), x, y, self.eps, generator=self.generator)


class PgdMethod(Method):
    """Madry et al. PGD-k training: random start, ``k = pgd_steps`` steps of ``2.5 eps / k``;
    ``k + 1`` passes per image."""

    name = "pgd"

    def _adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from accelat_train import attacks

        with self._autocast(x):
            return attacks.pgd(
                _unwrap(model), x, y, self.eps, self.pgd_steps, generator=self.generator
            )


class FoolboxMethod(Method):
    """Each minibatch attacked by a Foolbox attack against the current model."""

    attack = ""

    def _adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from accelat_train import attacks

        steps = self.pgd_steps if self.attack == "linfpgd" else 20
        x_adv = attacks.foolbox_adversarial(
            _unwrap(model), x, y, self.attack, self.eps, steps=steps
        )
        return x_adv.detach()


class FoolboxPgdMethod(FoolboxMethod):
    name, attack = "foolbox-pgd", "linfpgd"


class FoolboxFgsmMethod(FoolboxMethod):
    name, attack = "foolbox-fgsm", "fgsm"


class FoolboxDeepFoolMethod(FoolboxMethod):
    name, attack = "foolbox-deepfool", "deepfool"


METHODS: dict[str, type[Method]] = {
    m.name: m
    for m in (
        FreeMethod,
        FgsmRsMethod,
        PgdMethod,
        FoolboxPgdMethod,
        FoolboxFgsmMethod,
        FoolboxDeepFoolMethod,
        NaturalMethod,
    )
}
METHOD_NAMES = tuple(METHODS)


def make_method(cfg: TrainConfig, **kwargs: Any) -> Method:
    """The configured method; ``kwargs`` (amp, scaler, generator) pass through."""
    cls = METHODS[cfg.method]
    if cls is FreeMethod:
        return FreeMethod(cfg.eps, replays=cfg.num_replays, pgd_steps=cfg.pgd_steps, **kwargs)
    return cls(cfg.eps, pgd_steps=cfg.pgd_steps, **kwargs)


class _PassCounter:
    """Adds the batch size of every forward of ``net`` run with autograd enabled."""

    def __init__(self, net: nn.Module) -> None:
        self.count = 0
        self._handle = net.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if torch.is_grad_enabled():
            self.count += int(inputs[0].shape[0])

    def close(self) -> None:
        self._handle.remove()


def _unwrap(model: nn.Module) -> nn.Module:
    """The NormalizedModel inside a DDP wrapper (attacks must not run through DDP)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _network(model: nn.Module) -> nn.Module:
    inner = _unwrap(model)
    return getattr(inner, "net", inner)


# -- policies ------------------------------------------------------------------------------
def default_window(epochs: int) -> int:
    """AccelAT window (and plateau patience) for a budget: ``clamp(epochs // 5, 1, 5)``."""
    return max(1, min(5, epochs // 5))


def build_policy(
    name: str, lr_max: float, *, total_steps: int, epochs: int, window: int | None = None
) -> Policy:
    """The named default policy (not ``plateau``); ``total_steps`` counts weight updates."""
    lr_min = lr_max * LR_MIN_RATIO
    if name == "constant":
        return Constant(lr_max)
    if name == "step":
        return StepDecay.free_at(lr_max, max(4, total_steps))
    if name == "linear":
        return LinearDecay(lr_max, lr_min, total_steps)
    if name == "exponential":
        return ExponentialDecay(lr_max, rate=LR_MIN_RATIO, decay_steps=total_steps)
    if name == "onecycle":
        return OneCycle.paper(lr_max, total_steps)
    if name == "cyclical":
        return Cyclical(lr_max / 10, lr_max, step_size_up=max(1, total_steps // 4))
    if name == "restarts":
        period = max(1.0, total_steps / 7)  # a restart lasts at least one step
        return WarmRestarts(lr_max, period=period, lr_min=lr_min, period_mult=2.0)
    if name == "accelat":
        return AccelAT(
            lr_max,
            lr_min,
            min_gain=ACCELAT_MIN_GAIN,
            factor=ACCELAT_FACTOR,
            window=window or default_window(epochs),
        )
    raise ValueError(f"policy must be one of {POLICY_NAMES}, got {name!r}")


def build_policy_from_config(config: dict[str, Any]) -> Policy:
    """``accelat_core.from_config`` with the error naming the config."""
    if not isinstance(config, dict):
        raise ValueError(f"policy config must be a JSON object, got {config!r:.100}")
    try:
        return from_config(config)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"invalid policy config {json.dumps(config)[:200]}: {exc}") from None


class _Schedule:
    """The scheduler in use and when it steps: per update (fixed-shape) or per epoch."""

    def __init__(
        self, cfg: TrainConfig, optimizer: torch.optim.Optimizer, lr_max: float | None, total: int
    ) -> None:
        self.plateau = cfg.policy_config is None and cfg.policy == "plateau"
        window = cfg.window or default_window(cfg.epochs)
        if self.plateau:
            assert lr_max is not None
            for group in optimizer.param_groups:
                group["lr"] = lr_max
            self.policy = None
            self.scheduler: Any = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="max",
                factor=ACCELAT_FACTOR,
                patience=window,
                threshold=ACCELAT_MIN_GAIN,
                threshold_mode="abs",
                min_lr=lr_max * LR_MIN_RATIO,
            )
            self.per_epoch = True
        else:
            if cfg.policy_config is not None:
                policy = build_policy_from_config(cfg.policy_config)
            else:
                assert lr_max is not None
                policy = build_policy(
                    cfg.policy, lr_max, total_steps=total, epochs=cfg.epochs, window=window
                )
            self.policy = policy
            self.scheduler = PolicyScheduler(optimizer, policy, momentum="auto")
            self.per_epoch = policy.needs_metric
        self.optimizer = optimizer

    def after_update(self) -> None:
        if not self.per_epoch:
            self.scheduler.step()

    def after_epoch(self, epoch: int, metric: float) -> dict[str, Any] | None:
        """Step a per-epoch scheduler with ``metric``; the decision it took, if any."""
        if not self.per_epoch:
            return None
        old = self.optimizer.param_groups[0]["lr"]
        if self.plateau:
            best = self.scheduler.best
            self.scheduler.step(metric)
            new = self.optimizer.param_groups[0]["lr"]
            if new != old:
                return {"index": epoch - 1, "gain": metric - best, "old_lr": old, "new_lr": new}
            return None
        before = len(getattr(self.policy, "decisions", []))
        self.scheduler.step(metric)
        decisions = getattr(self.policy, "decisions", [])
        if len(decisions) > before:
            d = decisions[-1]
            return {"index": d.evaluation, "gain": d.gain, "old_lr": d.old_lr, "new_lr": d.new_lr}
        return None

    @property
    def should_stop(self) -> bool:
        return bool(getattr(self.scheduler, "should_stop", False))

    def state_json(self) -> str:
        return json.dumps(self.scheduler.state_dict())

    def load_state_json(self, text: str) -> None:
        self.scheduler.load_state_dict(json.loads(text))


# -- setting a run up ----------------------------------------------------------------------
@dataclass
class Setup:
    """Data, model, optimizer and method of a run, ready to train (before any scheduler)."""

    cfg: TrainConfig
    device: torch.device
    dist: distributed.DistInfo
    splits: Any
    loader: Any
    model: nn.Module  # NormalizedModel, uncompiled: what is saved and evaluated
    train_model: nn.Module  # what the method trains through (compiled / DDP-wrapped)
    optimizer: torch.optim.Optimizer
    method: Method
    scaler: torch.amp.GradScaler | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def updates_per_epoch(self) -> int:
        return self.batches_per_epoch * self.method.replays

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self.loader) // self.method.replays)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def prepare(cfg: TrainConfig, *, dist_info: distributed.DistInfo | None = None) -> Setup:
    """Load the data and build model, optimizer and method for ``cfg`` (seeded)."""
    from accelat_train.data import DeviceLoader, load_splits
    from accelat_train.models import NormalizedModel, build_model

    cfg.validate()
    device = resolve_device(cfg.device)
    info = dist_info or distributed.DistInfo()
    if info.active and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    amp = cfg.amp
    if amp is not None and device.type != "cuda":
        warnings.warn(f"--amp {amp} needs CUDA; training in float32 on {device}", stacklevel=2)
        amp = None
    splits = load_splits(
        cfg.dataset,
        cfg.data_dir,
        train_size=cfg.train_size,
        val_size=cfg.val_size,
        seed=cfg.seed,
        download=cfg.download,
    )
    loader = DeviceLoader(
        splits.train,
        cfg.batch_size,
        device=device,
        augment=splits.augment,
        seed=cfg.seed,
        rank=info.rank,
        world_size=info.world_size,
    )
    torch.manual_seed(cfg.seed)
    _, height, _, channels = splits.train.x.shape
    net = build_model(cfg.model, len(splits.classes), in_channels=channels, image_size=height)
    model = NormalizedModel(net, splits.mean, splits.std).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    train_model: nn.Module = model
    if cfg.compile:
        # The compiled net shares the parameters; the plain model is what is saved.
        train_model = NormalizedModel(torch.compile(model.net), splits.mean, splits.std).to(device)
    if info.active:
        ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(train_model, device_ids=ids)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr_max if isinstance(cfg.lr_max, float) else 0.1,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
    )
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    method = make_method(cfg, amp=amp, scaler=scaler, generator=generator)
    return Setup(cfg, device, info, splits, loader, model, train_model, optimizer, method, scaler)


def find_lr(setup: Setup, *, num_steps: int | None = None) -> Any:
    """The lr range test on ``setup``'s adversarial loss (model and optimizer restored).

    The loss of a batch is the cross-entropy on adversarial examples of the run's method:
    FGSM-RS for free / fgsm-rs (Free AT's replayed perturbation has no per-batch form;
    FGSM-RS is the one-step attack of the same strength), PGD-k for pgd and the Foolbox
    methods, clean images for natural. Every rank reads the whole training set in the
    same order, and rank 0's suggestion is broadcast.
    """
    from accelat_train import attacks
    from accelat_train.data import DeviceLoader

    cfg = setup.cfg
    model = setup.model
    generator = torch.Generator(device=setup.device).manual_seed(cfg.seed + 7919)
    eps = cfg.eps

    def batch_loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        if cfg.method in ("free", "fgsm-rs"):
            x = attacks.fgsm_rs(m, x, y, eps, generator=generator)
        elif cfg.method != "natural":
            x = attacks.pgd(m, x, y, eps, cfg.pgd_steps, generator=generator)
        return F.cross_entropy(m(x), y)

    loader = DeviceLoader(
        setup.splits.train,
        cfg.batch_size,
        device=setup.device,
        augment=setup.splits.augment,
        seed=cfg.seed,
    )
    batches = _stream(loader, 0, None)
    result = lr_find(
        model,
        setup.optimizer,
        None,
        _Reiterable(batches),
        start_lr=1e-5,
        end_lr=10.0,
        num_steps=num_steps or cfg.lr_find_steps,
        batch_loss=batch_loss,
        method="paper",
    )
    return result


class _Reiterable:
    """An iterable over one shared (endless) iterator: lr_find may re-iterate it."""

    def __init__(self, it: Iterator[Any]) -> None:
        self._it = it

    def __iter__(self) -> Iterator[Any]:
        return self._it


def _stream(loader: Any, start: int, count: int | None) -> Iterator[Any]:
    """``count`` batches (None: endless) from loader epochs 0, 1, ... after skipping ``start``."""
    per_epoch = len(loader)
    epoch, skip = divmod(start, per_epoch)
    taken = 0
    while count is None or taken < count:
        for i, batch in enumerate(loader.epoch(epoch)):
            if i < skip:
                continue
            yield batch
            taken += 1
            if count is not None and taken == count:
                return
        epoch, skip = epoch + 1, 0


# -- evaluation ----------------------------------------------------------------------------
def as_tensors(data: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """An ``ArrayData`` split as ``(x float32 N x C x H x W in [0, 1], y int64)`` on ``device``."""
    x = torch.from_numpy(data.x).permute(0, 3, 1, 2).float().div_(255.0).to(device)
    return x.contiguous(), torch.from_numpy(data.y).long().to(device)


def eval_subset(
    x: torch.Tensor, y: torch.Tensor, size: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random subset of ``size`` examples (all when None).

    Random, not the first ``size``: an image-folder test split is sorted by class, so its
    first 300 CIFAR images are all airplanes. The same subset for every run and ``accelat eval``.
    """
    if size is None or size >= len(y):
        return x, y
    keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:size]
    keep = keep.to(y.device)
    return x[keep], y[keep]


def pgd_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    *,
    seed: int,
    batch_size: int = 500,
) -> float:
    """Accuracy under our PGD-``steps`` (eval mode, random start from ``seed``)."""
    from accelat_train import attacks

    if len(y) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    correct = 0
    try:
        for i in range(0, len(y), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            x_adv = attacks.pgd(model, xb, yb, eps, steps, generator=generator)
            with torch.no_grad():
                correct += int((model(x_adv).argmax(1) == yb).sum().item())
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return correct / len(y)


def evaluate_test(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks_: tuple[str, ...] | list[str],
    eps: float | list[float],
    *,
    steps: int = 20,
    progress: bool = False,
) -> dict[str, Any]:
    """The final evaluation: clean accuracy and Foolbox robust accuracy per attack and eps.

    ``{"clean_acc", "robust_acc" (first attack, first eps), "attacks": {name: {eps: acc}}}``
    with eps keys as ``str(float)``.
    """
    from accelat_train import attacks

    eps_list = [float(e) for e in (eps if isinstance(eps, (list, tuple)) else [eps])]
    clean = attacks.clean_accuracy(model, x, y)
    results: dict[str, dict[str, float]] = {}
    for name in attacks_:
        accs = attacks.robust_accuracy(model, x, y, name, eps_list, steps=steps, progress=progress)
        results[name] = {str(float(e)): float(a) for e, a in accs.items()}
    first = results[attacks_[0]][str(eps_list[0])]
    return {"clean_acc": float(clean), "robust_acc": first, "attacks": results}


# -- the epoch loop ------------------------------------------------------------------------
def train(cfg: TrainConfig, *, quiet: bool = False, resume: bool = False) -> Path:
    """Train ``cfg`` into ``cfg.out``; return the run dir.

    Writes ``config.json``, one ``metrics.jsonl`` line and an atomic ``checkpoint.pt`` per
    epoch, and after the final test evaluation ``report.json`` and ``curves.png``.
    ``resume=True`` continues from ``checkpoint.pt`` (or starts afresh if there is none)
    and reproduces the uninterrupted run's metrics on CPU. Raises
    :class:`TrainingDiverged` on a NaN/inf loss (the last checkpoint is kept).
    """
    cfg.validate()
    info = distributed.init_from_env(resolve_device(cfg.device).type)
    try:
        run_dir = _train(cfg, info, quiet=quiet or not info.is_main, resume=resume)
        # Every rank waits for rank 0's test evaluation and report before any leaves.
        distributed.barrier(info)
        return run_dir
    finally:
        distributed.shutdown(info)


def _train(cfg: TrainConfig, info: distributed.DistInfo, *, quiet: bool, resume: bool) -> Path:
    from tqdm.auto import tqdm

    if cfg.method == "free":
        cfg = dataclasses.replace(cfg, replays=cfg.num_replays)
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / CHECKPOINT_NAME
    metrics_path = run_dir / METRICS_NAME
    config_path = run_dir / CONFIG_NAME
    checkpoint = None
    if resume and ckpt_path.exists():
        checkpoint = load_checkpoint(ckpt_path)
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        _check_resume_config(cfg, saved, run_dir)
        cfg = dataclasses.replace(cfg, lr_max=saved["lr_max"])
    elif ckpt_path.exists() and not resume:
        raise ValueError(
            f"{run_dir} already holds a run ({ckpt_path.name}); pass --resume to continue it "
            "or choose another --out"
        )

    setup = prepare(cfg, dist_info=info)
    lr_find_info: dict[str, Any] | None = None
    lr_max: float | None = None
    if cfg.policy_config is None:
        if cfg.lr_max == "auto":
            result = find_lr(setup)
            lr_max = distributed.broadcast_float(info, float(result.suggestion.lr_max))
            lr_find_info = {
                "lr_max": lr_max,
                "lr_min": float(result.suggestion.lr_min),
                "method": "paper",
                "steps": len(result.lrs),
            }
            if info.is_main:
                run_dir.mkdir(parents=True, exist_ok=True)
                result.plot(run_dir / "lr_find.png")
            cfg = dataclasses.replace(cfg, lr_max=lr_max)
        else:
            lr_max = float(cfg.lr_max)

    total = cfg.epochs * setup.updates_per_epoch
    schedule = _Schedule(cfg, setup.optimizer, lr_max, total)
    last_hyper = [_hyper_of(setup.optimizer)]

    def after_update() -> None:
        last_hyper[0] = _hyper_of(setup.optimizer)
        schedule.after_update()

    setup.method.after_update = after_update

    val_x, val_y = as_tensors(setup.splits.val, setup.device)
    mon_x, mon_y = val_x[: cfg.monitor_size], val_y[: cfg.monitor_size]
    test_x, test_y = as_tensors(setup.splits.test, setup.device)
    test_x, test_y = eval_subset(test_x, test_y, cfg.eval_size)
    co_x, co_y = None, None
    if cfg.co_check:
        co_x, co_y = next(setup.loader.epoch(0))

    start_epoch, consumed, passes, seconds, co_prev = 0, 0, 0, 0.0, None
    if checkpoint is not None:
        setup.model.load_state_dict(checkpoint["model"])
        setup.optimizer.load_state_dict(checkpoint["optimizer"])
        schedule.load_state_json(checkpoint["scheduler"])
        method_states = checkpoint["method"]["ranks"]
        if len(method_states) != info.world_size:
            raise ValueError(
                f"{ckpt_path} was written by {len(method_states)} rank(s); resume it with "
                f"the same number of processes, not {info.world_size}"
            )
        setup.method.load_state_dict(method_states[info.rank])
        if setup.scaler is not None and checkpoint.get("scaler"):
            setup.scaler.load_state_dict(checkpoint["scaler"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        start_epoch = int(checkpoint["epoch"])
        consumed = int(checkpoint["consumed"])
        passes = int(checkpoint["passes"])
        seconds = float(checkpoint["seconds"])
        co_prev = checkpoint.get("co_prev")
        last_hyper[0] = (float(checkpoint["last_lr"]), checkpoint.get("last_momentum"))
        if info.is_main:
            _truncate(metrics_path, int(checkpoint["metrics_bytes"]))
    elif info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        resolved = cfg.to_json()
        resolved["lr_find"] = lr_find_info or cfg.lr_find
        resolved["world_size"] = info.world_size
        resolved["resolved_device"] = str(setup.device)
        resolved["updates_per_epoch"] = setup.updates_per_epoch
        atomic_write_text(config_path, json.dumps(resolved, indent=2) + "\n")
        metrics_path.write_bytes(b"")
    distributed.barrier(info)

    inject = _nan_injection()
    lrs: list[float] = []
    epochs_bar = tqdm(
        range(start_epoch + 1, cfg.epochs + 1),
        desc="epochs",
        initial=start_epoch,
        total=cfg.epochs,
        disable=True if quiet else None,
        leave=False,
    )
    for epoch in epochs_bar:
        setup.method.generator = torch.Generator(device=setup.device).manual_seed(
            _seed(cfg.seed, epoch, 1)
        )
        if setup.device.type == "cuda":
            torch.cuda.synchronize(setup.device)
        t0 = time.perf_counter()
        loss_sum, correct, n, epoch_passes = _train_epoch(
            setup, epoch, consumed, inject, ckpt_path, quiet=quiet
        )
        seconds += time.perf_counter() - t0
        consumed += setup.batches_per_epoch
        loss_sum, correct, n, epoch_passes = distributed.sum_over_ranks(
            info, [loss_sum, correct, n, epoch_passes]
        )
        passes += int(epoch_passes)
        distributed.broadcast_buffers(info, setup.model)

        val_acc = _clean_accuracy(setup.model, val_x, val_y)
        robust_val_acc = pgd_accuracy(
            setup.model, mon_x, mon_y, cfg.eps, cfg.monitor_steps, seed=_seed(cfg.seed, epoch, 2)
        )
        row: dict[str, Any] = {
            "epoch": epoch,
            "lr": last_hyper[0][0],
            "momentum": last_hyper[0][1],
            "passes": passes,
            "seconds": round(seconds, 6),
            "train_loss": loss_sum / n,
            "train_adv_acc": correct / n,
            "val_acc": val_acc,
            "robust_val_acc": robust_val_acc,
            "monitor": cfg.monitor,
        }
        row["monitor_value"] = row[cfg.monitor]

        co_stop = False
        if co_x is not None:
            co_acc = pgd_accuracy(
                setup.model, co_x, co_y, cfg.eps, 10, seed=_seed(cfg.seed, epoch, 3)
            )
            co_stop = co_prev is not None and co_prev - co_acc > CO_DROP
            co_prev = co_acc
        if co_stop:
            # Catastrophic overfitting: keep the previous epoch's weights, log nothing more.
            if info.is_main:
                tqdm.write(
                    f"catastrophic overfitting at epoch {epoch}: PGD accuracy on the check "
                    f"batch fell by more than {CO_DROP:.0%}; keeping epoch {epoch - 1}"
                )
            if ckpt_path.exists():
                setup.model.load_state_dict(load_checkpoint(ckpt_path)["model"])
            break

        row["decision"] = schedule.after_epoch(epoch, row["monitor_value"])
        row["test_clean_acc"] = None
        row["test_robust_acc"] = None
        if info.is_main and cfg.eval_every and epoch % cfg.eval_every == 0 and epoch < cfg.epochs:
            final = evaluate_test(
                setup.model, test_x, test_y, cfg.attacks, cfg.eps, steps=cfg.eval_steps
            )
            row["test_clean_acc"] = final["clean_acc"]
            row["test_robust_acc"] = final["robust_acc"]
        lrs.append(row["lr"])

        # Each rank's method state (Free AT's perturbation is per shard) goes to rank 0.
        method_states = distributed.gather_objects(info, setup.method.state_dict())
        if info.is_main:
            metrics_bytes = _append_line(metrics_path, json.dumps(row, allow_nan=False))
            save_checkpoint(
                ckpt_path,
                {
                    "model": setup.model.state_dict(),
                    "optimizer": setup.optimizer.state_dict(),
                    "scheduler": schedule.state_json(),
                    "method": {"ranks": method_states},
                    "scaler": setup.scaler.state_dict() if setup.scaler is not None else {},
                    "rng": {"torch": torch.get_rng_state()},
                    "epoch": epoch,
                    "consumed": consumed,
                    "passes": passes,
                    "seconds": seconds,
                    "metrics_bytes": metrics_bytes,
                    "last_lr": last_hyper[0][0],
                    "last_momentum": last_hyper[0][1],
                    "co_prev": co_prev,
                },
            )
            epochs_bar.set_postfix(
                lr=f"{row['lr']:.3g}", rval=f"{robust_val_acc:.3f}", val=f"{val_acc:.3f}"
            )
        distributed.barrier(info)
        if schedule.should_stop:
            break
    epochs_bar.close()

    _dump_rank(info, setup, lrs)
    if info.is_main:
        final = evaluate_test(
            setup.model,
            test_x,
            test_y,
            cfg.attacks,
            cfg.eps,
            steps=cfg.eval_steps,
            # attacks' bar is always on when asked for; ask only on a terminal.
            progress=not quiet and sys.stderr.isatty(),
        )
        from accelat_train import report

        report.write_run_report(run_dir, final)
    return run_dir


def _train_epoch(
    setup: Setup,
    epoch: int,
    consumed: int,
    inject: tuple[int, int] | None,
    ckpt_path: Path,
    *,
    quiet: bool,
) -> tuple[float, int, int, int]:
    """One epoch-equivalent: ``(loss_sum, correct, n, passes)`` summed over its batches."""
    from tqdm.auto import tqdm

    setup.model.train()
    setup.train_model.train()
    loss_sum, correct, n, passes = 0.0, 0, 0, 0
    batches = _stream(setup.loader, consumed, setup.batches_per_epoch)
    progress = tqdm(
        batches,
        desc=f"epoch {epoch}",
        total=setup.batches_per_epoch,
        disable=True if quiet else None,
        leave=False,
    )
    for b, (x, y) in enumerate(progress, start=1):
        if inject == (epoch, b):
            x = torch.full_like(x, float("nan"))
        try:
            stats = setup.method.train_batch(setup.train_model, setup.optimizer, x, y)
        except NonFiniteLoss as exc:
            kept = (
                f"{ckpt_path} (epoch {_checkpoint_epoch(ckpt_path)})"
                if ckpt_path.exists()
                else "none yet"
            )
            raise TrainingDiverged(
                f"loss is {exc.value} at epoch {epoch} batch {b} "
                f"(method {setup.cfg.method}, lr {setup.optimizer.param_groups[0]['lr']:.4g}); "
                f"stopping; last good checkpoint: {kept}"
            ) from None
        loss_sum += stats.loss_sum
        correct += stats.correct
        n += stats.n
        passes += stats.passes
    if setup.device.type == "cuda":
        torch.cuda.synchronize(setup.device)
    return loss_sum, correct, n, passes


def _checkpoint_epoch(path: Path) -> int | str:
    try:
        return int(load_checkpoint(path)["epoch"])
    except CheckpointError:
        return "unreadable"


def _clean_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    from accelat_train import attacks

    if len(y) == 0:
        return float("nan")
    was_training = model.training
    try:
        return float(attacks.clean_accuracy(model, x, y))
    finally:
        model.train(was_training)


def _hyper_of(optimizer: torch.optim.Optimizer) -> tuple[float, float | None]:
    group = optimizer.param_groups[0]
    momentum = group.get("momentum")
    return float(group["lr"]), (None if momentum is None else float(momentum))


def _seed(seed: int, epoch: int, stream: int) -> int:
    """A generator seed that depends only on (seed, epoch, stream)."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{stream}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def _append_line(path: Path, line: str) -> int:
    """Append ``line`` + newline durably; return the file's new length in bytes."""
    with open(path, "ab") as f:
        f.write(line.encode("utf-8") + b"\n")
        f.flush()
        os.fsync(f.fileno())
        return f.tell()


def _truncate(path: Path, length: int) -> None:
    """Cut ``path`` back to ``length`` bytes (lines written after the checkpoint go)."""
    if not path.exists():
        path.write_bytes(b"")
        return
    with open(path, "r+b") as f:
        f.truncate(length)
        f.flush()
        os.fsync(f.fileno())


def _nan_injection() -> tuple[int, int] | None:
    spec = os.environ.get("ACCELAT_INJECT_NAN_AT")
    if not spec:
        return None
    try:
        epoch, batch = (int(v) for v in spec.split(":"))
    except ValueError:
        raise ValueError(
            f"ACCELAT_INJECT_NAN_AT must be 'epoch:batch' (1-based ints), got {spec!r}"
        ) from None
    return epoch, batch


# Fields that may differ between a run and its resumption.
_RESUME_FREE = {
    "device",
    "eval_every",
    "lr_max",
    "lr_find",
    "attacks",
    "eval_steps",
    "eval_size",
    "out",
}


def _check_resume_config(cfg: TrainConfig, saved: dict[str, Any], run_dir: Path) -> None:
    current = cfg.to_json()
    diffs = [
        f"{k}: saved {saved.get(k)!r}, given {v!r}"
        for k, v in current.items()
        if k not in _RESUME_FREE and saved.get(k) != v
    ]
    if cfg.lr_max != "auto" and saved.get("lr_max") != cfg.lr_max:
        diffs.append(f"lr_max: saved {saved.get('lr_max')!r}, given {cfg.lr_max!r}")
    if diffs:
        raise ValueError(
            f"--resume: the flags differ from the run in {run_dir}: " + "; ".join(diffs)
        )


def _dump_rank(info: distributed.DistInfo, setup: Setup, lrs: list[float]) -> None:
    """Test hook: each rank writes its lr trajectory and a hash of its final weights."""
    target = os.environ.get("ACCELAT_RANK_DUMP_DIR")
    if not target:
        return
    digest = hashlib.sha256()
    for name, tensor in sorted(setup.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    Path(target).mkdir(parents=True, exist_ok=True)
    Path(target, f"rank{info.rank}_final.json").write_text(
        json.dumps({"rank": info.rank, "lrs": lrs, "weights_sha256": digest.hexdigest()})
    )


def _one_of(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}; got {value!r}")
