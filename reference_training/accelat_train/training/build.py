"""Setting a run up: device, data, model, optimizer and method for a ``TrainConfig``.

>>> setup = build(TrainConfig(dataset="digits", eps=0.1, lr_max=0.05))  # doctest: +SKIP
>>> setup.updates_per_epoch  # doctest: +SKIP
12
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from accelat_train import choices
from accelat_train.adversarial.evaluation import check_subset_size
from accelat_train.adversarial.methods import METHODS, FreeMethod, Method
from accelat_train.config import GIVEN, TrainConfig
from accelat_train.data import DeviceLoader, Splits, load_splits
from accelat_train.data.loader import DatasetLoader, make_loader
from accelat_train.extras import require
from accelat_train.models import NormalizedModel, build_model
from accelat_train.training import distributed
from accelat_train.training.network_check import check_materialized, check_splits_network
from accelat_train.training.optimizers import make_optimizer, optimizer_name


@dataclass
class Setup:
    """Data, model, optimizer and method of a run, ready to train (before any scheduler)."""

    cfg: TrainConfig
    device: torch.device
    dist: distributed.DistInfo
    splits: Splits
    loader: DeviceLoader | DatasetLoader
    model: nn.Module  # NormalizedModel, uncompiled: what is saved and evaluated
    train_model: nn.Module  # what the method trains through (compiled / DDP-wrapped)
    optimizer: torch.optim.Optimizer
    method: Method
    scaler: torch.amp.GradScaler | None

    @property
    def updates_per_epoch(self) -> int:
        return self.batches_per_epoch * self.method.replays

    @property
    def batches_per_epoch(self) -> int:
        """Minibatches per epoch-equivalent: Free AT replays each of them ``replays`` times."""
        return batches_per_epoch(len(self.loader), self.method.replays)


def batches_per_epoch(loader_batches: int, replays: int) -> int:
    """``ceil(loader_batches / replays)``: one epoch-equivalent of gradient work."""
    return -(-loader_batches // replays)


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA where available, else CPU; asking for absent CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def make_method(cfg: TrainConfig, **kwargs: Any) -> Method:
    """The configured method; ``kwargs`` (amp, scaler, generator) pass through."""
    cls = METHODS[cfg.method]
    if cls is FreeMethod:
        return FreeMethod(cfg.eps, replays=cfg.num_replays, pgd_steps=cfg.pgd_steps, **kwargs)
    return cls(cfg.eps, pgd_steps=cfg.pgd_steps, **kwargs)


def check_extras(cfg: TrainConfig) -> None:
    """Raise :class:`~accelat_train.extras.MissingExtra` naming the flag, the package and
    the extra, before any work, if the run ``cfg`` needs an optional package that is missing
    (its dataset's reader, its method's or its attacks' library, its optimizer)."""
    optimizer = optimizer_name(cfg)
    dataset = choices.DATASETS.get(cfg.dataset)  # None: a user's own
    wanted = [
        (f"--method {cfg.method}", choices.METHODS[cfg.method].needs),
        (f"--dataset {cfg.dataset}", dataset.needs if dataset else ()),
        (f"--optimizer {optimizer}" if cfg.optimizer else f"--policy {cfg.policy}",
         choices.OPTIMIZERS[optimizer].needs),
        *((f"--attacks {a}", choices.ATTACKS[choices.canonical_attack(a)].needs)
          for a in cfg.attacks),
    ]  # fmt: skip
    for what, needs in wanted:
        require(needs, what)


def build(
    cfg: TrainConfig,
    *,
    dist_info: distributed.DistInfo | None = None,
    model: nn.Module | None = None,
    data: Splits | None = None,
) -> Setup:
    """Load the data and build model, optimizer and method for ``cfg`` (seeded); ``model``
    and ``data`` are a user's own (``dataset`` / ``model`` ``"given"``), as ``fit`` passes them.
    A missing optional package is an error before anything is loaded (:func:`check_extras`)."""
    check_extras(cfg)
    for name, given in (("dataset", data), ("model", model)):
        if (getattr(cfg, name) == GIVEN) != (given is not None):
            raise ValueError(
                f"{name} {GIVEN!r} means a {name} passed to accelat_train.fit(); "
                f"got {name}={getattr(cfg, name)!r} with {'one' if given is not None else 'none'}"
            )
    device = resolve_device(cfg.device)
    info = dist_info or distributed.DistInfo()
    if info.active and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    amp = cfg.amp
    if amp is not None and device.type != "cuda":
        warnings.warn(f"--amp {amp} needs CUDA; training in float32 on {device}", stacklevel=2)
        amp = None
    splits = data or load_splits(
        cfg.dataset,
        cfg.data_dir,
        train_size=cfg.train_size,
        val_size=cfg.val_size,
        seed=cfg.seed,
        download=cfg.download,
    )
    check_subset_size(cfg.eval_size, len(splits.test))  # before any work, as eval checks it
    loader = make_loader(
        splits.train, cfg.batch_size, device=device, augment=splits.augment, seed=cfg.seed,
        rank=info.rank, world_size=info.world_size,
    )  # fmt: skip
    model, train_model = _models(cfg, splits, device, info, model)
    batches = batches_per_epoch(len(loader), cfg.num_replays)
    optimizer = _optimizer(cfg, model, total_updates=cfg.epochs * batches * cfg.num_replays)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    method = make_method(cfg, amp=amp, scaler=scaler, generator=generator)
    return Setup(cfg, device, info, splits, loader, model, train_model, optimizer, method, scaler)


def _optimizer(cfg: TrainConfig, model: nn.Module, *, total_updates: int) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay, Nesterov from ``cfg``), or a peer's own optimizer."""
    name = optimizer_name(cfg)
    if name != "sgd":
        return make_optimizer(
            name, model.parameters(), momentum=cfg.momentum,
            weight_decay=cfg.weight_decay, total_updates=total_updates,
            warmup=cfg.schedulefree_warmup,
        )  # fmt: skip
    return torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr_max if isinstance(cfg.lr_max, float) else 0.1,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
    )


def _models(
    cfg: TrainConfig,
    splits: Splits,
    device: torch.device,
    info: distributed.DistInfo,
    given: nn.Module | None,
) -> tuple[nn.Module, nn.Module]:
    """The seeded model (or the given one, which takes [0, 1] images as it is), and what
    training runs through (compiled, DDP-wrapped)."""
    torch.manual_seed(cfg.seed)
    if given is None:
        _, height, _, channels = splits.val.x.shape
        net = build_model(cfg.model, len(splits.classes), in_channels=channels, image_size=height)
        given = NormalizedModel(net, splits.mean, splits.std)
    name = "the model given to fit()" if cfg.model == GIVEN else f"model {cfg.model}"
    check_materialized(given, name)
    model = given.to(device)
    # Before anything reads the parameters: lazy layers get their shapes (and seeded weights).
    check_splits_network(model, splits, device, name)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    train_model: nn.Module = model
    if cfg.compile:
        # The compiled network shares the parameters; the plain model is what is saved.
        if isinstance(model, NormalizedModel):
            compiled = torch.compile(model.net)
            train_model = NormalizedModel(compiled, splits.mean, splits.std).to(device)  # type: ignore[arg-type]
        else:
            train_model = torch.compile(model)  # type: ignore[assignment]
    if info.active:
        ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(train_model, device_ids=ids)
    return model, train_model
